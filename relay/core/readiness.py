"""Readiness: do PostgreSQL and ClickHouse answer? Asked by `/readyz` and on a timer for `/metrics`.

Each dependency is probed with a read-only trivial query within its own
timeout, concurrently. The answer is one word per dependency (`ok`,
`unavailable`, `timeout`, and for PostgreSQL `read-only`: a standby or a
fenced primary, which the relay never writes to), never an error text. Every answer is also told to
the observer (the ops side sets the `relay_dependency_up` gauge from it), so
Prometheus can alert on readiness without calling `/readyz` itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from relay.core.clickhouse import ClickHouseSink, DeliveryError
from relay.core.observer import Observer
from relay.core.postgres import POSTGRES_ERRORS, ReadOnlyServer
from relay.core.waits import sleep_unless


@dataclass(frozen=True, slots=True, kw_only=True)
class Readiness:
    """Probes the relay's two dependencies."""

    pool: asyncpg.Pool
    sink: ClickHouseSink
    observer: Observer
    timeout: float

    async def check(self) -> dict[str, str]:
        """Probe both dependencies at once; `{"postgres": "ok", "clickhouse": "timeout"}` and the like."""
        probes = {"postgres": self._postgres, "clickhouse": self._clickhouse}
        results = await asyncio.gather(*(self._probe(probe) for probe in probes.values()))
        report = dict(zip(probes, results, strict=True))
        self.observer.probed(report)
        return report

    async def run(self, stop: asyncio.Event, *, interval: float) -> None:
        """Probe every `interval` seconds until `stop` is set, keeping the gauge current."""
        while not stop.is_set():
            await self.check()
            await sleep_unless(stop, interval)

    async def _probe(self, probe: Callable[[], Awaitable[None]]) -> str:
        try:
            async with asyncio.timeout(self.timeout):
                await probe()
        except TimeoutError:
            return "timeout"
        except (ReadOnlyServer, asyncpg.TargetServerAttributeNotMatched):
            # The second: a new connection found no host that takes writes
            # (`target_session_attrs=read-write`), each a standby or fenced.
            return "read-only"
        except (*POSTGRES_ERRORS, DeliveryError):
            return "unavailable"
        return "ok"

    async def _postgres(self) -> None:
        async with self.pool.acquire() as connection:
            # Read-only itself, and answered by a standby too, which says what it is.
            if await connection.fetchval(
                "SELECT pg_is_in_recovery() OR current_setting('transaction_read_only')::bool"
            ):
                raise ReadOnlyServer("the PostgreSQL server takes no writes")

    async def _clickhouse(self) -> None:
        await self.sink.ping(within=self.timeout)
