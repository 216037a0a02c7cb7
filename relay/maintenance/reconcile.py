"""Reconciliation: prove ClickHouse holds every archived event once, and send again what it lost.

For each closed hour of event time and each event type the archive covers,
both sides are summarised the same way, as the number of distinct `event_id`s
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
two reads can only look "extra", never "missing".
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

import asyncpg
import structlog

from relay.core import outbox
from relay.core.clickhouse import ClickHouseSink, DeliveryError
from relay.core.outbox import POSTGRES_ERRORS, Connection
from relay.core.waits import sleep_unless
from relay.maintenance import archive
from relay.ops.metrics import RelayMetrics
from relay.ops.status import RelayStatus
from shared.outbox import ARCHIVE_TABLE, EVENT_LOG_TABLE, RECONCILE_LOCK

log = structlog.get_logger("relay.reconcile")

BUCKET: Final = timedelta(hours=1)
# Reconciliation reads whole hours on both sides: give its queries more time
# than a batch insert gets.
QUERY_TIMEOUT: Final = 120.0
# Events whose delivery was recorded a little before their own time (the web
# host's clock runs ahead of PostgreSQL's) are still looked for.
CLOCK_SKEW: Final = timedelta(minutes=5)
# How many extra event ids one log line names.
SAMPLE_IDS: Final = 10

_STAMP = "%Y-%m-%d %H:%M:%S"
_PG_HASH = "('x' || left(md5(event_id::text), 15))::bit(60)::bigint"
_CH_HASH = "reinterpretAsUInt64(reverse(unhex(concat('0', substring(hex(MD5(toString(event_id))), 1, 15)))))"

ARCHIVE_SUMMARY: Final = f"""
    SELECT event_type,
           to_char(date_trunc('hour', event_date_time AT TIME ZONE 'UTC'), 'YYYY-MM-DD HH24:MI:SS') AS bucket,
           count(DISTINCT event_id) AS events,
           bit_xor(DISTINCT {_PG_HASH}) AS digest
      FROM {ARCHIVE_TABLE}
     WHERE delivered_at >= $1::timestamptz - interval '{int(CLOCK_SKEW.total_seconds())} seconds'
       AND event_date_time >= $1 AND event_date_time < $2
     GROUP BY 1, 2
"""
ARCHIVE_IDS: Final = f"""
    SELECT DISTINCT event_id::text AS event_id
      FROM {ARCHIVE_TABLE}
     WHERE delivered_at >= $1::timestamptz - interval '{int(CLOCK_SKEW.total_seconds())} seconds'
       AND event_type = $3 AND event_date_time >= $1 AND event_date_time < $2
"""


def _clickhouse_window(start: datetime, end: datetime) -> str:
    return f"event_date_time >= '{start:{_STAMP}}' AND event_date_time < '{end:{_STAMP}}'"


def clickhouse_summary(start: datetime, end: datetime) -> str:
    """The same summary as `ARCHIVE_SUMMARY`, of what `event_log` holds (copies counted once)."""
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


def resend_query(precision: int, ids: Iterable[str], *, delivered_since: datetime) -> str:
    """`COPY` source: the archived events with these ids, as the TSV lines the relay sends."""
    literal = ",".join(str(uuid.UUID(event_id)) for event_id in ids)  # ids, never text from outside
    return (
        f"SELECT DISTINCT ON (event_id) {outbox.OutboxQueries(timestamp_precision=precision).tsv_columns}"
        f" FROM {ARCHIVE_TABLE}"
        f" WHERE delivered_at >= '{(delivered_since - CLOCK_SKEW).isoformat()}'"
        f" AND event_id = ANY('{{{literal}}}'::uuid[])"
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
        return {
            "buckets_checked": self.buckets_checked,
            "missing": self.missing,
            "resent": self.resent,
            "extra": self.extra,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Reconciliation:
    """Compares the archive with `event_log` and repairs what ClickHouse lost."""

    connection: Connection
    sink: ClickHouseSink
    precision: int
    batch_size: int

    async def run(self, *, since: datetime | None = None, now: datetime | None = None) -> Report:
        """Check the closed hours from `since` (default: all the archive covers) and repair them."""
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
        end = archive.hour_of(now)  # closed buckets only
        report.checked_from, report.checked_until = start, end
        if start >= end:
            return report
        archived = await self._archive_summary(start, end)  # first: see the module's docstring
        stored = await self._clickhouse_summary(start, end)
        report.buckets_checked = len(archived.keys() | stored.keys())
        for bucket in sorted(archived.keys() | stored.keys(), key=lambda b: (b.start, b.event_type)):
            if archived.get(bucket) == stored.get(bucket):
                continue
            await self._repair(bucket, report, in_clickhouse=bucket in stored, in_archive=bucket in archived)
        return report

    async def _repair(self, bucket: Bucket, report: Report, *, in_clickhouse: bool, in_archive: bool) -> None:
        archived = await self._archive_ids(bucket) if in_archive else set()
        stored = await self._clickhouse_ids(bucket) if in_clickhouse else set()
        missing = archived - stored
        extra = stored - archived
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
        report.resent += await self._resend(sorted(missing), delivered_since=bucket.start)
        still = missing - await self._clickhouse_ids(bucket)
        report.still_missing += len(still)

    async def _resend(self, ids: list[str], *, delivered_since: datetime) -> int:
        sent = 0
        for first in range(0, len(ids), self.batch_size):
            chunk = ids[first : first + self.batch_size]
            body = await outbox.copy_out(
                self.connection, resend_query(self.precision, chunk, delivered_since=delivered_since)
            )
            if body:
                await self.sink.insert(body)
                sent += body.count(b"\n")
        return sent

    async def _archive_summary(self, start: datetime, end: datetime) -> dict[Bucket, Summary]:
        rows = await self.connection.fetch(ARCHIVE_SUMMARY, start, end, timeout=QUERY_TIMEOUT)
        return {
            _bucket(row["event_type"], row["bucket"]): Summary(row["events"], row["digest"]) for row in rows
        }

    async def _clickhouse_summary(self, start: datetime, end: datetime) -> dict[Bucket, Summary]:
        rows = await self.sink.call(
            self.sink.client.fetch(clickhouse_summary(start, end)), within=QUERY_TIMEOUT
        )
        return {
            _bucket(row["event_type"], row["bucket"]): Summary(int(row["events"]), int(row["digest"]))
            for row in rows
        }

    async def _archive_ids(self, bucket: Bucket) -> set[str]:
        rows = await self.connection.fetch(
            ARCHIVE_IDS, bucket.start, bucket.end, bucket.event_type, timeout=QUERY_TIMEOUT
        )
        return {row["event_id"] for row in rows}

    async def _clickhouse_ids(self, bucket: Bucket) -> set[str]:
        rows = await self.sink.call(
            self.sink.client.fetch(
                clickhouse_ids(bucket.start, bucket.end), params={"event_type": bucket.event_type}
            ),
            within=QUERY_TIMEOUT,
        )
        return {row["event_id"] for row in rows}


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
        lines.append("No closed hour to check yet.")
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


@dataclass(frozen=True, slots=True, kw_only=True)
class Reconciler:
    """Runs a reconciliation every `interval` while the relay runs; one relay at a time."""

    pool: asyncpg.Pool
    sink: ClickHouseSink
    precision: int
    batch_size: int
    interval: float
    metrics: RelayMetrics
    status: RelayStatus

    async def run(self, stop: asyncio.Event) -> None:
        """Reconcile every `interval` seconds until `stop` is set."""
        while not stop.is_set():
            await sleep_unless(stop, self.interval)
            if not stop.is_set():
                await self.run_once()

    async def run_once(self) -> Report | None:
        """One reconciliation unless another relay is at it; failures are logged and retried next time."""
        started = time.monotonic()
        try:
            async with self.pool.acquire() as connection:
                if not await try_lock(connection):
                    log.info("reconcile_skipped", reason="another relay is reconciling")
                    return None
                try:
                    report = await Reconciliation(
                        connection=connection,
                        sink=self.sink,
                        precision=self.precision,
                        batch_size=self.batch_size,
                    ).run()
                finally:
                    await unlock(connection)
        except (*POSTGRES_ERRORS, DeliveryError) as error:
            log.warning(
                "reconcile_failed",
                error_kind=getattr(error, "kind", type(error).__name__),
                error_code=getattr(error, "code", None),
                sqlstate=getattr(error, "sqlstate", None),
            )
            self.status.reconcile_failed()
            return None
        self.record(report, seconds=time.monotonic() - started)
        return report

    def record(self, report: Report, *, seconds: float) -> None:
        """Count the findings in metrics, `/status` and one log line."""
        self.metrics.reconcile_missing.inc(report.missing)
        self.metrics.reconcile_resent.inc(report.resent)
        self.metrics.reconcile_extra.set(report.extra)  # the same extras are found again each run
        if report.complete:
            self.metrics.reconcile_last_success.set_to_current_time()
        self.status.reconciled(report.summary(), complete=report.complete)
        emit = log.info if report.complete and not report.missing else log.error
        emit(
            "reconcile_finished",
            **report.summary(),
            complete=report.complete,
            covered_since=report.covered_since.isoformat() if report.covered_since else None,
            duration_ms=round(seconds * 1000, 1),
        )
