"""Refreshes the outbox gauges on a timer, so a scrape storm never reaches PostgreSQL."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import structlog

from relay import archive, outbox
from relay.forwarder import POSTGRES_ERRORS
from relay.metrics import RelayMetrics
from relay.status import RelayStatus
from relay.waits import sleep_unless

log = structlog.get_logger("relay.monitor")


class OutboxMonitor:
    """Counts pending events, dead letters (and archived events) every `interval` seconds."""

    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        metrics: RelayMetrics,
        status: RelayStatus,
        interval: float,
        count_archive: bool = False,
    ) -> None:
        self.pool = pool
        self.metrics = metrics
        self.status = status
        self.interval = interval
        self.count_archive = count_archive

    async def run(self, stop: asyncio.Event) -> None:
        """Refresh until `stop` is set; a failed refresh keeps the last values."""
        while not stop.is_set():
            await self.refresh()
            await sleep_unless(stop, self.interval)

    async def refresh(self) -> None:
        """Read the outbox statistics once."""
        try:
            async with self.pool.acquire(timeout=self.interval) as connection:
                stats = await outbox.stats(connection)
                archived = await archive.estimated_rows(connection) if self.count_archive else 0
        except POSTGRES_ERRORS as error:
            log.warning("outbox_stats_failed", error_kind=type(error).__name__)
            return
        self.status.outbox = stats
        self.status.outbox_checked_at = time.time()
        self.metrics.pending_events.set(stats.pending_events)
        self.metrics.oldest_pending_age.set(stats.oldest_pending_age_seconds)
        self.metrics.dead_letter_events.set(stats.dead_letters)
        self.metrics.archive_events.set(archived)
        self.status.archive_events = archived


class Heartbeat:
    """Proves the event loop runs: `/livez` fails when the ticks stop."""

    def __init__(self, *, status: RelayStatus, interval: float = 1.0) -> None:
        self.status = status
        self.interval = interval

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until `stop` is set."""
        while not stop.is_set():
            self.status.tick()
            await sleep_unless(stop, self.interval)
