"""Replay: send archived events to ClickHouse again, to fill a new, rebuilt or additional cluster.

The archive (`event_outbox_delivered`) keeps every delivered event for
`RELAY_ARCHIVE_RETENTION`. `relay replay --since T [--until T] [--event-type …]`
streams the archived events whose event time falls in the window, byte for
byte as the relay first sent them, through the relay's own insert (the same
sink, settings and quorum), in batches of at most `RELAY_BATCH_SIZE` events and
`RELAY_BATCH_MAX_BYTES`. A replay is idempotent: `event_log`'s deduplicated
view hides a copy of an event ClickHouse already had, so replaying twice, or
into a cluster that lost only part of the window, shows every event once.

The archive is partitioned by delivery hour, so the window is read one delivery
hour at a time (PostgreSQL reads only that hour's partition), each under the
reconciliation lock: an account erased meanwhile is erased from the archive
before or after an hour is read, never while its events are on their way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog

from relay.core import archive
from relay.core.archive import ArchiveQueries
from relay.core.clickhouse import ClickHouseSink
from relay.core.isolation import Sink
from relay.core.postgres import Connection
from relay.maintenance.reconcile import CLOCK_SKEW, lock, unlock

log = structlog.get_logger("relay.replay")


@dataclass(slots=True)
class ReplayReport:
    """What one replay read and sent."""

    since: datetime
    until: datetime
    event_types: tuple[str, ...]
    # The earliest delivery time the archive still holds every event from:
    # events delivered before it are no longer there to replay.
    archive_covers_since: datetime | None
    windows_read: int = 0
    events: int = 0
    inserts: int = 0
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        """Whether the archive still held every event delivered in the window."""
        return self.archive_covers_since is not None and self.archive_covers_since <= self.since - CLOCK_SKEW

    def summary(self) -> dict[str, Any]:
        """The replay as the command's last line prints it."""
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "event_types": list(self.event_types),
            "archive_covers_since": self.archive_covers_since.isoformat()
            if self.archive_covers_since
            else None,
            "complete": self.complete,
            "windows_read": self.windows_read,
            "events": self.events,
            "inserts": self.inserts,
            "seconds": round(self.seconds, 3),
            "events_per_second": round(self.events / self.seconds) if self.seconds else 0,
        }


def delivery_windows(
    start: datetime, covered: datetime | None, now: datetime
) -> list[tuple[datetime, datetime]]:
    """The delivery-time windows a replay reads, one query each, from `start` to past `now`.

    One per hourly partition from `covered` (the oldest) on; before it, and when
    the archive has no hourly partition at all, one window over what the
    default partition may still hold.
    """
    end = archive.hour_of(now) + archive.HOUR
    if covered is None:
        return [(start, end)]
    windows = [(start, covered)] if start < covered else []
    hour = max(archive.hour_of(start), covered)
    while hour < end:
        windows.append((max(hour, start), hour + archive.HOUR))
        hour += archive.HOUR
    return windows


class Batches:
    """Cuts COPY's stream of TSV lines into insert bodies of bounded size, and sends each."""

    def __init__(self, sink: Sink, *, max_events: int, max_bytes: int) -> None:
        self._sink = sink
        self._max_events = max_events
        self._max_bytes = max_bytes
        self._pending = bytearray()
        self._lines = 0
        self.events = 0
        self.inserts = 0

    async def feed(self, chunk: bytes) -> None:
        """Take one chunk of COPY output (any cut); send whole lines once a batch is full."""
        self._pending += chunk
        self._lines += chunk.count(b"\n")
        while self._lines >= self._max_events or len(self._pending) >= self._max_bytes:
            # The body ends on the batch's last whole line: at most `max_events` lines,
            # and at least one line even when a single line exceeds `max_bytes`.
            end = self._cut()
            if end == 0:
                return
            await self._send(end)

    async def flush(self) -> None:
        """Send what is left (COPY's output always ends with a whole line)."""
        if self._pending:
            await self._send(len(self._pending))

    def _cut(self) -> int:
        end, lines = 0, 0
        while lines < self._max_events:
            newline = self._pending.find(b"\n", end)
            if newline < 0 or (lines and newline + 1 > self._max_bytes):
                break
            end, lines = newline + 1, lines + 1
        return end

    async def _send(self, end: int) -> None:
        body = bytes(self._pending[:end])
        del self._pending[:end]
        sent = body.count(b"\n")
        self._lines -= sent
        await self._sink.insert(body)
        self.events += sent
        self.inserts += 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Replay:
    """One replay over one PostgreSQL connection into one sink."""

    connection: Connection
    sink: ClickHouseSink
    queries: ArchiveQueries
    batch_size: int
    batch_max_bytes: int

    async def run(
        self,
        *,
        since: datetime,
        until: datetime | None = None,
        event_types: tuple[str, ...] = (),
        now: datetime | None = None,
    ) -> ReplayReport:
        """Send every archived event of `event_types` (all when empty) whose time is in [since, until)."""
        now = now or datetime.now(UTC)
        until = until or now
        started = time.monotonic()
        covered = await archive.covered_since(self.connection)
        report = ReplayReport(since=since, until=until, event_types=event_types, archive_covers_since=covered)
        batches = Batches(self.sink, max_events=self.batch_size, max_bytes=self.batch_max_bytes)
        for start, end in delivery_windows(since - CLOCK_SKEW, covered, now):
            before = batches.events
            await lock(self.connection)
            try:
                query, args = self.queries.replay(
                    delivered=(start, end), events=(since, until), event_types=event_types
                )
                await self.connection.copy_from_query(query, *args, output=batches.feed)
                await batches.flush()
            finally:
                await unlock(self.connection)
            report.windows_read += 1
            if batches.events > before:
                log.info(
                    "replay_progress",
                    delivered_from=start.isoformat(),
                    events=batches.events - before,
                    total=batches.events,
                )
        report.events, report.inserts = batches.events, batches.inserts
        report.seconds = time.monotonic() - started
        return report
