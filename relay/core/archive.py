"""Every statement on the archive of delivered events (`event_outbox_delivered`).

A forwarder copies each delivered event into the archive in the statement that
deletes it from the outbox (`ArchiveQueries.moving`), so "delivered", "gone
from the outbox" and "archived" commit together. The archive is partitioned by
delivery hour; the partitions are made and dropped through functions the
site's migrations create (they run as the archive's owner), by the relay's
upkeep (`relay.maintenance.partitions`). Reconciliation reads it back, hour by
hour, and re-sends from it what ClickHouse lost (`relay.maintenance.reconcile`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

import asyncpg

from relay.core.postgres import Connection, tsv_columns
from shared.outbox import (
    ARCHIVE_ADD_PARTITION,
    ARCHIVE_DROP_PARTITION,
    ARCHIVE_EXPIRE_DEFAULT,
    ARCHIVE_PARTITION_PREFIX,
    ARCHIVE_TABLE,
    EVENT_LOG_COLUMNS,
)

HOUR: Final = timedelta(hours=1)
_PARTITION = re.compile(rf"{ARCHIVE_PARTITION_PREFIX}(?P<hour>\d{{10}})")
_LOG_COLUMNS = ", ".join(EVENT_LOG_COLUMNS)
# The 60-bit hash of an event id reconciliation sums up an hour with (ClickHouse
# computes the same one: see `relay.maintenance.reconcile`).
_ID_HASH = "('x' || left(md5(event_id::text), 15))::bit(60)::bigint"


def hour_of(moment: datetime) -> datetime:
    """The start of the UTC hour `moment` falls in."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def partition_name(hour: datetime) -> str:
    """The partition holding events delivered in the hour starting at `hour`."""
    return f"{ARCHIVE_PARTITION_PREFIX}{hour.astimezone(UTC):%Y%m%d%H}"


def partition_hour(name: str) -> datetime | None:
    """The hour a partition covers, from its name; `None` for any other table."""
    match = _PARTITION.fullmatch(name)
    if match is None:
        return None
    return datetime.strptime(match["hour"], "%Y%m%d%H").replace(tzinfo=UTC)


_PARTITIONS: Final = f"""
      FROM pg_inherits
      JOIN pg_class parent ON parent.oid = pg_inherits.inhparent
      JOIN pg_class child ON child.oid = pg_inherits.inhrelid
     WHERE parent.relname = '{ARCHIVE_TABLE}' AND parent.relnamespace = to_regnamespace(current_schema())
"""
LIST_PARTITIONS: Final = f"SELECT child.relname {_PARTITIONS}"
# PostgreSQL's estimate (kept by autovacuum and ANALYZE): counting a day of
# deliveries exactly on every refresh would cost a scan of the whole archive.
ESTIMATE_ROWS: Final = f"SELECT coalesce(sum(greatest(child.reltuples, 0)), 0)::bigint {_PARTITIONS}"
# Partition DDL takes the archive's owner: functions that run as their owner
# (created by the site's migrations) do it for the relay's unprivileged role.
ADD_PARTITION: Final = f"SELECT {ARCHIVE_ADD_PARTITION}($1)"
DROP_PARTITION: Final = f"SELECT {ARCHIVE_DROP_PARTITION}($1)"
EXPIRE_DEFAULT: Final = f"SELECT {ARCHIVE_EXPIRE_DEFAULT}($1)"
# Reconciliation's summary of one window of event time ($1 to $2) among the
# events delivered since $3: distinct events and the XOR of their hashes, per
# event type and hour.
SUMMARY: Final = f"""
    SELECT event_type,
           to_char(date_trunc('hour', event_date_time AT TIME ZONE 'UTC'), 'YYYY-MM-DD HH24:MI:SS') AS bucket,
           count(DISTINCT event_id) AS events,
           bit_xor(DISTINCT {_ID_HASH}) AS digest
      FROM {ARCHIVE_TABLE}
     WHERE delivered_at >= $3 AND event_date_time >= $1 AND event_date_time < $2
     GROUP BY 1, 2
"""
# The distinct ids of one event type ($4) in a window, delivered since $3, each
# with whether it was first delivered before $5 (settled).
IDS: Final = f"""
    SELECT event_id::text AS event_id, min(delivered_at) < $5 AS settled
      FROM {ARCHIVE_TABLE}
     WHERE delivered_at >= $3 AND event_type = $4 AND event_date_time >= $1 AND event_date_time < $2
     GROUP BY event_id
"""


class ArchiveQueries:
    """The archive's statements that render events as ClickHouse TSV, for one timestamp precision."""

    def __init__(self, *, timestamp_precision: int) -> None:
        self.tsv_columns = tsv_columns(timestamp_precision)
        # A recently delivered event, to check whether ClickHouse still takes
        # what it took before (see `relay.core.isolation`).
        self.canary = (
            f"SELECT {self.tsv_columns} FROM {ARCHIVE_TABLE}"
            " WHERE delivered_at > now() - interval '1 hour' LIMIT 1"
        )

    @staticmethod
    def moving(delete: str, *, returning: str | None, stamp: str | None = None) -> str:
        """`delete` (a DELETE from the outbox without RETURNING) that also copies its rows into the archive.

        One statement: the rows leave the outbox and enter the archive in the
        same transaction, still with no per-event round trip. `returning` is
        what the statement returns (nothing when `None`); `stamp`, a one-row
        CTE named `stamp` over `moved`, is joined to it.
        """
        moved = f"moved AS ({delete} RETURNING {_LOG_COLUMNS})"
        archive = f"INSERT INTO {ARCHIVE_TABLE} ({_LOG_COLUMNS}) SELECT {_LOG_COLUMNS} FROM moved"
        if returning is None:
            return f"WITH {moved} {archive}"
        if stamp is not None:
            return f"WITH {moved}, archived AS ({archive}), {stamp} SELECT {returning} FROM moved, stamp"
        return f"WITH {moved}, archived AS ({archive}) SELECT {returning} FROM moved"

    def resend(self, ids: Iterable[str], *, delivered_since: datetime) -> str:
        """`COPY` source: the archived events with these ids, as the TSV lines the relay sends."""
        literal = ",".join(str(uuid.UUID(event_id)) for event_id in ids)  # ids, never text from outside
        return (
            f"SELECT DISTINCT ON (event_id) {self.tsv_columns}"
            f" FROM {ARCHIVE_TABLE}"
            f" WHERE delivered_at >= '{delivered_since.isoformat()}'"
            f" AND event_id = ANY('{{{literal}}}'::uuid[])"
        )

    def replay(
        self,
        *,
        delivered: tuple[datetime, datetime],
        events: tuple[datetime, datetime],
        event_types: tuple[str, ...] = (),
    ) -> tuple[str, list[object]]:
        """`COPY` source and its arguments: archived events delivered in one window whose time is in another.

        The delivery window lets PostgreSQL read only the partitions it covers;
        `event_types` (all when empty) narrows the events.
        """
        query = (
            f"SELECT {self.tsv_columns} FROM {ARCHIVE_TABLE}"
            " WHERE delivered_at >= $1 AND delivered_at < $2"
            " AND event_date_time >= $3 AND event_date_time < $4"
            " AND (cardinality($5::text[]) = 0 OR event_type = ANY($5::text[]))"
        )
        return query, [*delivered, *events, list(event_types)]


async def hourly_partitions(connection: Connection) -> dict[datetime, str]:
    """The hourly partitions that exist, by the hour each covers."""
    names = [row["relname"] for row in await connection.fetch(LIST_PARTITIONS)]
    return {hour: name for name in names if (hour := partition_hour(name)) is not None}


async def covered_since(connection: Connection) -> datetime | None:
    """The earliest delivery time the archive still holds every event from (`None`: nothing kept).

    That is the start of the oldest hourly partition: older ones were dropped
    by expiry (or never made, before the archive was switched on).
    """
    partitions = await hourly_partitions(connection)
    return min(partitions) if partitions else None


async def estimated_rows(connection: Connection) -> int:
    """About how many events the archive holds."""
    return int(await connection.fetchval(ESTIMATE_ROWS))


async def create_partition(connection: Connection, hour: datetime) -> str:
    """Make the partition for the hour `hour` falls in: `created`, `exists` or `blocked`.

    `blocked`: the default partition already holds rows of that hour.
    """
    return str(await connection.fetchval(ADD_PARTITION, hour))


async def drop_partition(connection: Connection, name: str) -> None:
    """Drop one hourly partition, its events with it."""
    await connection.execute(DROP_PARTITION, name)


async def expire_default(connection: Connection, cutoff: datetime) -> int:
    """Delete the default partition's rows delivered before `cutoff`; how many there were."""
    return int(await connection.fetchval(EXPIRE_DEFAULT, cutoff))


@dataclass(frozen=True, slots=True)
class Window:
    """Event times from `start` to `end`, among the events delivered since `delivered_since`."""

    start: datetime
    end: datetime
    delivered_since: datetime


async def summary(connection: Connection, window: Window, *, within: float) -> list[asyncpg.Record]:
    """Rows of (event_type, bucket, events, digest): reconciliation's summary of `window`."""
    return await connection.fetch(SUMMARY, window.start, window.end, window.delivered_since, timeout=within)


async def ids(
    connection: Connection, window: Window, event_type: str, *, settled_before: datetime, within: float
) -> dict[str, bool]:
    """The distinct ids of the archived events of `event_type` in `window`, each with whether
    it was delivered before `settled_before`."""
    rows = await connection.fetch(
        IDS, window.start, window.end, window.delivered_since, event_type, settled_before, timeout=within
    )
    return {row["event_id"]: row["settled"] for row in rows}
