"""Refreshes the outbox gauges on a timer, so a scrape storm never reaches PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import asyncpg
import structlog

from relay.core import archive, outbox
from relay.core.postgres import POSTGRES_ERRORS
from relay.core.waits import sleep_unless
from relay.ops.metrics import RelayMetrics
from relay.ops.status import RelayStatus

log = structlog.get_logger("relay.monitor")


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboxMonitor:
    """Counts pending events, dead letters (and archived events) every `interval` seconds."""

    pool: asyncpg.Pool
    metrics: RelayMetrics
    status: RelayStatus
    interval: float
    count_archive: bool = False

    async def run(self, stop: asyncio.Event) -> None:
        """Refresh until `stop` is set; a failed refresh keeps the last values."""
        while not stop.is_set():
            await self.refresh()
            await sleep_unless(stop, self.interval)

    async def refresh(self) -> None:
        """Read the outbox statistics once."""
        try:
            async with self.pool.acquire(timeout=self.interval) as connection:
                backlog = await outbox.backlog(connection)
                archived = await archive.estimated_rows(connection) if self.count_archive else 0
        except POSTGRES_ERRORS as error:
            log.warning("outbox_stats_failed", error_kind=type(error).__name__)
            return
        self.status.outbox = backlog
        self.status.outbox_checked_at = time.time()
        self.metrics.pending_events.set(backlog.pending_events)
        self.metrics.oldest_pending_age.set(backlog.oldest_pending_age_seconds)
        self.metrics.dead_letter_events.set(backlog.dead_letters)
        self.metrics.archive_events.set(archived)
        self.status.archive_events = archived


@dataclass(frozen=True, slots=True, kw_only=True)
class Heartbeat:
    """Proves the event loop runs: `/livez` fails when the ticks stop."""

    status: RelayStatus
    interval: float = 1.0

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until `stop` is set."""
        while not stop.is_set():
            self.status.tick()
            await sleep_unless(stop, self.interval)
