"""Reconciliation: prove ClickHouse holds every archived event once, and send again what it lost.

For each hour of event time and each event type the archive covers, up to
the settling time ago (`settle`: the open hour too, so a loss is found within
one reconciliation interval plus that time), both sides are summarised the
same way, as the number of distinct `event_id`s
and the XOR of a 60-bit hash of each (MD5 of the id's text), so a bucket costs
one aggregate row on each side and duplicates in ClickHouse count once. Only
buckets whose summaries differ are compared id by id:

- **missing**: archived (so ClickHouse acknowledged it once) but not in
  ClickHouse now. It is sent again from the archive, byte for byte, through
  the relay's own insert; `event_log` hides a copy if one survived after all.
- **extra**: in ClickHouse but not in the archive (delivered before the archive
  was switched on, or its archive row expired, or written there by hand). It is
  counted and logged, never deleted.

The archive is read before ClickHouse: everything archived was acknowledged by
ClickHouse before its archive row committed, so a batch delivered between the
two reads can only look "extra", never "missing". An event counts as missing
only once its delivery is older than the settling time too: a replica that
has not caught up yet, or a batch in flight, is not a loss.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

import structlog

from relay.core import archive
from relay.core.archive import ArchiveQueries, Window
from relay.core.clickhouse import ClickHouseSink, DeliveryError
from relay.core.observer import Observer, Reconciled
from relay.core.postgres import POSTGRES_ERRORS, Connection, copy_out
from relay.core.waits import sleep_unless
from shared.outbox import EVENT_LOG_TABLE, RECONCILE_LOCK

log = structlog.get_logger("relay.reconcile")

BUCKET: Final = archive.HOUR
# Reconciliation reads whole hours on both sides: give its queries more time
# than a batch insert gets.
QUERY_TIMEOUT: Final = 120.0
# Events whose delivery was recorded a little before their own time (the web
# host's clock runs ahead of PostgreSQL's) are still looked for.
CLOCK_SKEW: Final = timedelta(minutes=5)
# How many extra event ids one log line names.
SAMPLE_IDS: Final = 10

_STAMP = "%Y-%m-%d %H:%M:%S"
# The archive's id hash (`relay.core.archive`), as ClickHouse computes it.
_CH_HASH = "reinterpretAsUInt64(reverse(unhex(concat('0', substring(hex(MD5(toString(event_id))), 1, 15)))))"


def _clickhouse_window(start: datetime, end: datetime) -> str:
    return f"event_date_time >= '{start:{_STAMP}}' AND event_date_time < '{end:{_STAMP}}'"


def clickhouse_summary(start: datetime, end: datetime) -> str:
    """The archive's summary (`relay.core.archive.SUMMARY`) of what `event_log` holds, copies once."""
    return f"""
        SELECT event_type, toString(toStartOfHour(event_date_time)) AS bucket,
               count() AS events, groupBitXor({_CH_HASH}) AS digest
          FROM (SELECT DISTINCT event_type, event_date_time, event_id
                  FROM {EVENT_LOG_TABLE} WHERE {_clickhouse_window(start, end)})
         GROUP BY event_type, bucket
    """


def clickhouse_ids(start: datetime, end: datetime) -> str:
    """Distinct event ids of one type (the `event_type` parameter) in a window of `event_log`."""
    return (
        f"SELECT DISTINCT toString(event_id) AS event_id FROM {EVENT_LOG_TABLE}"
        f" WHERE event_type = {{event_type}} AND {_clickhouse_window(start, end)}"
    )


@dataclass(frozen=True, slots=True)
class Bucket:
    """One hour of event time, for one event type."""

    event_type: str
    start: datetime

    @property
    def end(self) -> datetime:
        """Where the next bucket starts."""
        return self.start + BUCKET


@dataclass(frozen=True, slots=True)
class Summary:
    """Distinct events in a bucket and the XOR of their hashes."""

    events: int
    digest: int


@dataclass(slots=True)
class Report:
    """What one reconciliation found and did."""

    checked_from: datetime | None = None
    checked_until: datetime | None = None
    # The earliest delivery time the archive still covers; `None`: it holds nothing.
    covered_since: datetime | None = None
    # The start asked for, when it lies before what the archive still covers.
    uncovered_from: datetime | None = None
    buckets_checked: int = 0
    missing: int = 0
    resent: int = 0
    extra: int = 0
    still_missing: int = 0
    missing_buckets: dict[Bucket, int] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """ClickHouse holds every event the archive knows in the buckets checked."""
        return self.covered_since is not None and self.still_missing == 0

    def summary(self) -> dict[str, int]:
        """The command's last line."""
        return self.reconciled().summary()

    def reconciled(self) -> Reconciled:
        """The findings as the core reports them to its observer."""
        return Reconciled(
            buckets_checked=self.buckets_checked,
            missing=self.missing,
            resent=self.resent,
            extra=self.extra,
            complete=self.complete,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Reconciliation:
    """Compares the archive with `event_log` and repairs what ClickHouse lost."""

    connection: Connection
    sink: ClickHouseSink
    queries: ArchiveQueries
    batch_size: int
    # Events dated, and delivered, less than this long ago are not checked yet.
    settle: timedelta

    async def run(self, *, since: datetime | None = None, now: datetime | None = None) -> Report:
        """Check the events from `since` (default: all the archive covers) to `settle` ago; repair them."""
        now = now or datetime.now(UTC)
        report = Report(covered_since=await archive.covered_since(self.connection))
        if report.covered_since is None:
            return report
        start = report.covered_since
        if since is not None:
            asked = archive.hour_of(since)
            if asked < report.covered_since:
                report.uncovered_from = asked
            else:
                start = asked
        # Whole seconds: ClickHouse compares event times at that precision.
        end = (now - self.settle).replace(microsecond=0)
        report.checked_from, report.checked_until = start, end
        if start >= end:
            return report
        archived = await self._archive_summary(start, end)  # first: see the module's docstring
        stored = await self._clickhouse_summary(start, end)
        report.buckets_checked = len(archived.keys() | stored.keys())
        for bucket in sorted(archived.keys() | stored.keys(), key=lambda b: (b.start, b.event_type)):
            if archived.get(bucket) == stored.get(bucket):
                continue
            await self._repair(
                bucket, report, until=end, in_clickhouse=bucket in stored, in_archive=bucket in archived
            )
        return report

    async def _repair(
        self, bucket: Bucket, report: Report, *, until: datetime, in_clickhouse: bool, in_archive: bool
    ) -> None:
        end = min(bucket.end, until)
        archived = await self._archive_ids(bucket, end, settled_before=until) if in_archive else {}
        stored = await self._clickhouse_ids(bucket, end) if in_clickhouse else set()
        # Delivered within the settling time: not yet a loss if ClickHouse lacks it.
        missing = {event_id for event_id, settled in archived.items() if settled} - stored
        extra = stored - archived.keys()
        if extra:
            report.extra += len(extra)
            log.warning(
                "reconcile_extra_events",
                event_type=bucket.event_type,
                bucket=bucket.start.isoformat(),
                events=len(extra),
                sample_event_ids=sorted(extra)[:SAMPLE_IDS],
            )
        if not missing:
            return
        report.missing += len(missing)
        report.missing_buckets[bucket] = len(missing)
        log.error(
            "reconcile_missing_events",
            event_type=bucket.event_type,
            bucket=bucket.start.isoformat(),
            events=len(missing),
        )
        report.resent += await self._resend(sorted(missing), delivered_since=bucket.start - CLOCK_SKEW)
        still = missing - await self._clickhouse_ids(bucket, end)
        report.still_missing += len(still)

    async def _resend(self, ids: list[str], *, delivered_since: datetime) -> int:
        sent = 0
        for first in range(0, len(ids), self.batch_size):
            chunk = ids[first : first + self.batch_size]
            body = await copy_out(
                self.connection, self.queries.resend(chunk, delivered_since=delivered_since)
            )
            if body:
                await self.sink.insert(body)
                sent += body.count(b"\n")
        return sent

    async def _archive_summary(self, start: datetime, end: datetime) -> dict[Bucket, Summary]:
        rows = await archive.summary(self.connection, _window(start, end), within=QUERY_TIMEOUT)
        return {
            _bucket(row["event_type"], row["bucket"]): Summary(row["events"], row["digest"]) for row in rows
        }

    async def _clickhouse_summary(self, start: datetime, end: datetime) -> dict[Bucket, Summary]:
        rows = await self.sink.fetch(clickhouse_summary(start, end), within=QUERY_TIMEOUT)
        return {
            _bucket(row["event_type"], row["bucket"]): Summary(int(row["events"]), int(row["digest"]))
            for row in rows
        }

    async def _archive_ids(
        self, bucket: Bucket, end: datetime, *, settled_before: datetime
    ) -> dict[str, bool]:
        """The bucket's archived ids up to `end`, each with whether delivered before `settled_before`."""
        window = _window(bucket.start, end)
        return await archive.ids(
            self.connection, window, bucket.event_type, settled_before=settled_before, within=QUERY_TIMEOUT
        )

    async def _clickhouse_ids(self, bucket: Bucket, end: datetime) -> set[str]:
        rows = await self.sink.fetch(
            clickhouse_ids(bucket.start, end),
            {"event_type": bucket.event_type},
            within=QUERY_TIMEOUT,
        )
        return {row["event_id"] for row in rows}


def _window(start: datetime, end: datetime) -> Window:
    return Window(start=start, end=end, delivered_since=start - CLOCK_SKEW)


def describe(report: Report, *, retention: timedelta) -> list[str]:
    """The report for people, line by line (the command prints the JSON summary after it)."""
    if report.covered_since is None:
        return [
            "The archive holds no deliveries: nothing to compare"
            " (is RELAY_ARCHIVE_RETENTION 0, or has no relay with the archive on run yet?)."
        ]
    lines = [f"The archive covers events delivered since {report.covered_since.isoformat()}."]
    if report.uncovered_from is not None:
        lines.append(
            f"Hours from {report.uncovered_from.isoformat()} to {report.covered_since.isoformat()} are past"
            f" the archive's retention ({retention}): not checked, not counted as missing."
        )
    if (
        report.checked_from is None
        or report.checked_until is None
        or report.checked_from >= report.checked_until
    ):
        lines.append("Nothing to check yet: events are checked once they are older than the settling time.")
        return lines
    lines.append(
        f"Checked {report.buckets_checked} bucket(s) (event type x hour) from"
        f" {report.checked_from.isoformat()} to {report.checked_until.isoformat()}."
    )
    for bucket, count in report.missing_buckets.items():
        lines.append(f"  missing: {count} {bucket.event_type} event(s) of {bucket.start.isoformat()}")
    lines.append(
        f"Missing from ClickHouse: {report.missing}; sent again: {report.resent};"
        f" in ClickHouse but not in the archive (kept): {report.extra}."
    )
    if report.complete:
        lines.append("ClickHouse holds every archived event of the hours checked.")
    else:
        lines.append(f"ClickHouse still lacks {report.still_missing} archived event(s).")
    return lines


def _bucket(event_type: str, start: str) -> Bucket:
    return Bucket(event_type, datetime.strptime(start, _STAMP).replace(tzinfo=UTC))


async def try_lock(connection: Connection) -> bool:
    """Take the reconciliation lock for this session unless another one holds it."""
    return bool(await connection.fetchval("SELECT pg_try_advisory_lock($1)", RECONCILE_LOCK))


async def lock(connection: Connection) -> None:
    """Take the reconciliation lock for this session, waiting for whoever holds it."""
    await connection.execute("SELECT pg_advisory_lock($1)", RECONCILE_LOCK, timeout=None)


async def unlock(connection: Connection) -> None:
    """Release the reconciliation lock."""
    await connection.execute("SELECT pg_advisory_unlock($1)", RECONCILE_LOCK)


@dataclass(frozen=True, slots=True)
class Skipped:
    """Another relay was reconciling: this turn is skipped."""


@dataclass(frozen=True, slots=True)
class Failed:
    """A database failed mid-way; the next turn tries again."""

    error_kind: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Reconciler:
    """Reconciliation as `relay reconcile` and a running relay's timer both do it: one at a time.

    `connect` lends a PostgreSQL connection for one reconciliation (the
    reconciliation lock is a session lock: it stays on that connection).
    """

    connect: Callable[[], AbstractAsyncContextManager[Connection]]
    sink: ClickHouseSink
    queries: ArchiveQueries
    batch_size: int
    settle: timedelta
    observer: Observer

    async def run(self, stop: asyncio.Event, *, interval: float) -> None:
        """Reconcile every `interval` seconds until `stop` is set, skipping turns another relay takes."""
        while not stop.is_set():
            await sleep_unless(stop, interval)
            if not stop.is_set():
                await self.once()

    async def once(self, *, since: datetime | None = None, wait: bool = False) -> Report | Skipped | Failed:
        """One reconciliation from `since`; reported to the observer and in one log line.

        `wait`: wait while another relay reconciles, instead of skipping the turn.
        """
        started = time.monotonic()
        try:
            async with self.connect() as connection:
                if wait:
                    await lock(connection)
                elif not await try_lock(connection):
                    log.info("reconcile_skipped", reason="another relay is reconciling")
                    return Skipped()
                try:
                    report = await Reconciliation(
                        connection=connection,
                        sink=self.sink,
                        queries=self.queries,
                        batch_size=self.batch_size,
                        settle=self.settle,
                    ).run(since=since)
                finally:
                    await unlock(connection)
        except (*POSTGRES_ERRORS, DeliveryError) as error:
            kind = getattr(error, "kind", type(error).__name__)
            log.warning(
                "reconcile_failed",
                error_kind=kind,
                error_code=getattr(error, "code", None),
                sqlstate=getattr(error, "sqlstate", None),
            )
            self.observer.reconcile_failed(kind)
            return Failed(kind)
        self.observer.reconciled(report.reconciled())
        emit = log.info if report.complete and not report.missing else log.error
        emit(
            "reconcile_finished",
            **report.summary(),
            complete=report.complete,
            covered_since=report.covered_since.isoformat() if report.covered_since else None,
            duration_ms=round((time.monotonic() - started) * 1000, 1),
        )
        return report
