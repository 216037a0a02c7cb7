"""LISTEN on a dedicated connection that reconnects; it only rings the doorbell.

Notifications sent while this connection is down are lost, so every
(re)connection rings the bell too: the forwarders then look at the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

import asyncpg
import structlog

from relay.core.doorbell import Doorbell
from relay.core.observer import Observer
from relay.core.postgres import POSTGRES_ERRORS
from relay.core.retry import Backoff
from relay.core.waits import first_of, sleep_unless

log = structlog.get_logger("relay.listener")

_CONNECT_TIMEOUT = 10.0
_HEALTH_CHECK_INTERVAL = 10.0
_HEALTH_CHECK_TIMEOUT = 5.0


@dataclass(slots=True, kw_only=True)
class Listener:
    """Keeps one LISTEN connection open for as long as the relay runs."""

    dsn: str
    channel: str
    doorbell: Doorbell
    observer: Observer
    backoff: Backoff
    connected: bool = field(default=False, init=False)

    async def run(self, stop: asyncio.Event) -> None:
        """Listen until `stop` is set, reconnecting with backoff whenever the connection drops."""
        failures = 0
        connected_before = False
        while not stop.is_set():
            if failures:
                delay = self.backoff.delay(failures)
                log.warning("listener_reconnecting", attempt=failures, retry_in_s=round(delay, 2))
                await sleep_unless(stop, delay)
                if stop.is_set():
                    break
            try:
                connection = await asyncpg.connect(
                    self.dsn,
                    timeout=_CONNECT_TIMEOUT,
                    server_settings={"application_name": "die-hard-relay-listener"},
                )
            except POSTGRES_ERRORS as error:
                failures += 1
                log.warning("listener_connect_failed", error_kind=type(error).__name__)
                continue
            if connected_before:
                self.observer.listener_reconnected()
            connected_before = True
            try:
                stable = await self._listen(connection, stop)
            except POSTGRES_ERRORS as error:  # lost while subscribing
                log.warning("listener_subscribe_failed", error_kind=type(error).__name__)
                stable = False
            finally:
                self.connected = False
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(connection.close(), timeout=_CONNECT_TIMEOUT)
            # A connection that drops right after connecting must not make the
            # listener reconnect in a tight loop: back off until one holds.
            failures = 0 if stable else failures + 1

    async def _listen(self, connection: asyncpg.Connection, stop: asyncio.Event) -> bool:
        """Hold the subscription until the connection is lost or `stop` is set.

        Returns whether the connection stayed up through at least one health check.
        """
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _connection: lost.set())
        await connection.add_listener(self.channel, self._on_notification)
        self.connected = True
        log.info("listener_connected", channel=self.channel)
        self.doorbell.ring()
        stable = False
        while not stop.is_set() and not lost.is_set():
            await first_of(stop, lost, seconds=_HEALTH_CHECK_INTERVAL)
            if stop.is_set() or lost.is_set():
                break
            # A half-open TCP connection never reports itself: ask it.
            try:
                await connection.fetchval("SELECT 1", timeout=_HEALTH_CHECK_TIMEOUT)
            except POSTGRES_ERRORS:
                break
            stable = True
        if not stop.is_set():
            log.warning("listener_connection_lost", channel=self.channel)
        return stable or stop.is_set()

    def _on_notification(self, _connection: object, _pid: int, _channel: str, _payload: object) -> None:
        self.observer.woke("notify")
        self.doorbell.ring()
