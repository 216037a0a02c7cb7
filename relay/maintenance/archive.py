"""The archive of delivered events: hourly partitions made ahead, dropped whole when expired.

Forwarders copy each delivered event into `event_outbox_delivered` in the
transaction that deletes it from the outbox (see `relay.core.outbox`). This module
keeps the partitions: it creates the current and next hours' partitions ahead
of need, drops those older than the retention (a `DROP TABLE`: no dead tuples,
no vacuum), and says which delivery times the archive still covers. One relay
at a time does it (a PostgreSQL advisory lock); the others skip their turn.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

import asyncpg
import structlog

from relay.core.outbox import POSTGRES_ERRORS, Connection
from relay.core.waits import sleep_unless
from shared.outbox import ARCHIVE_TABLE

log = structlog.get_logger("relay.archive")

HOUR: Final = timedelta(hours=1)
# Partitions made ahead of the current hour: a relay that cannot reach
# PostgreSQL for this long still finds its partitions when it comes back.
PARTITIONS_AHEAD: Final = 3
# How often the partitions are looked after.
MAINTENANCE_INTERVAL: Final = 300.0
# Advisory lock key (pg_try_advisory_xact_lock) held while partitions change.
MAINTENANCE_LOCK: Final = 0x64_68_61_72  # "dhar"
# DDL on a partitioned table briefly locks it against deliveries: never wait long.
LOCK_TIMEOUT: Final = "2s"
_PARTITION = re.compile(rf"{ARCHIVE_TABLE}_p(?P<hour>\d{{10}})")
DEFAULT_PARTITION: Final = f"{ARCHIVE_TABLE}_default"


def hour_of(moment: datetime) -> datetime:
    """The start of the UTC hour `moment` falls in."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def partition_name(hour: datetime) -> str:
    """The partition holding events delivered in the hour starting at `hour`."""
    return f"{ARCHIVE_TABLE}_p{hour.astimezone(UTC):%Y%m%d%H}"


def partition_hour(name: str) -> datetime | None:
    """The hour a partition covers, from its name; `None` for any other table."""
    match = _PARTITION.fullmatch(name)
    if match is None:
        return None
    return datetime.strptime(match["hour"], "%Y%m%d%H").replace(tzinfo=UTC)


LIST_PARTITIONS: Final = f"""
    SELECT child.relname
      FROM pg_inherits
      JOIN pg_class parent ON parent.oid = pg_inherits.inhparent
      JOIN pg_class child ON child.oid = pg_inherits.inhrelid
     WHERE parent.relname = '{ARCHIVE_TABLE}' AND parent.relnamespace = to_regnamespace(current_schema())
"""
# PostgreSQL's estimate (kept by autovacuum and ANALYZE): counting a day of
# deliveries exactly on every refresh would cost a scan of the whole archive.
ESTIMATE_ROWS: Final = f"""
    SELECT coalesce(sum(greatest(child.reltuples, 0)), 0)::bigint
      FROM pg_inherits
      JOIN pg_class parent ON parent.oid = pg_inherits.inhparent
      JOIN pg_class child ON child.oid = pg_inherits.inhrelid
     WHERE parent.relname = '{ARCHIVE_TABLE}' AND parent.relnamespace = to_regnamespace(current_schema())
"""


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


# Partition DDL takes the archive's owner: functions that run as their owner
# (created by the site's migrations) do it for the relay's unprivileged role.
ADD_PARTITION: Final = f"SELECT {ARCHIVE_TABLE}_add_partition($1)"
DROP_PARTITION: Final = f"SELECT {ARCHIVE_TABLE}_drop_partition($1)"
EXPIRE_DEFAULT: Final = f"SELECT {ARCHIVE_TABLE}_expire_default($1)"


async def create_partition(connection: Connection, hour: datetime) -> str:
    """Make the partition for the hour `hour` falls in: `created`, `exists` or `blocked`.

    `blocked`: the default partition already holds rows of that hour.
    """
    return str(await connection.fetchval(ADD_PARTITION, hour))


@dataclass(slots=True)
class Maintenance:
    """What one look after the partitions did."""

    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    # Partitions that could not be made: the default partition already holds
    # rows of their hour (delivered while the partition was missing).
    blocked: list[str] = field(default_factory=list)
    expired_default_rows: int = 0
    skipped: bool = False


async def maintain(connection: Connection, *, retention: timedelta, now: datetime) -> Maintenance:
    """Create the partitions due soon and drop the expired ones, unless another relay is at it.

    A partition is dropped once its whole hour is older than `retention`, so an
    event is kept between `retention` and `retention` + 1 hour. Rows in the
    default partition (deliveries no hourly partition covered) expire with a
    `DELETE`; normally there are none.
    """
    cutoff = now - retention
    done = Maintenance()
    async with connection.transaction():
        if not await connection.fetchval("SELECT pg_try_advisory_xact_lock($1)", MAINTENANCE_LOCK):
            return Maintenance(skipped=True)
        await connection.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        current = hour_of(now)
        for ahead in range(PARTITIONS_AHEAD + 1):
            hour = current + ahead * HOUR
            made = await create_partition(connection, hour)
            if made == "created":
                done.created.append(partition_name(hour))
            elif made == "blocked":
                done.blocked.append(partition_name(hour))
        for hour, name in sorted((await hourly_partitions(connection)).items()):
            if hour + HOUR <= cutoff:
                await connection.execute(DROP_PARTITION, name)
                done.dropped.append(name)
        done.expired_default_rows = int(await connection.fetchval(EXPIRE_DEFAULT, cutoff))
    return done


async def estimated_rows(connection: Connection) -> int:
    """About how many events the archive holds."""
    return int(await connection.fetchval(ESTIMATE_ROWS))


@dataclass(frozen=True, slots=True, kw_only=True)
class ArchiveKeeper:
    """Looks after the archive's partitions every few minutes while the relay runs."""

    pool: asyncpg.Pool
    retention: timedelta
    interval: float = MAINTENANCE_INTERVAL

    async def run(self, stop: asyncio.Event) -> None:
        """Maintain every `interval` seconds until `stop` is set (the first round is the caller's)."""
        while not stop.is_set():
            await sleep_unless(stop, self.interval)
            if not stop.is_set():
                await self.maintain_once()

    async def maintain_once(self) -> Maintenance | None:
        """One round; a failure is logged and retried next round (deliveries never depend on it)."""
        try:
            async with self.pool.acquire() as connection:
                done = await maintain(connection, retention=self.retention, now=datetime.now(UTC))
        except POSTGRES_ERRORS as error:
            log.warning(
                "archive_maintenance_failed",
                error_kind=type(error).__name__,
                sqlstate=getattr(error, "sqlstate", None),
            )
            return None
        if done.blocked:
            log.warning("archive_partition_blocked", partitions=done.blocked)
        if done.created or done.dropped or done.expired_default_rows:
            log.info(
                "archive_maintained",
                created=done.created,
                dropped=done.dropped,
                expired_default_rows=done.expired_default_rows,
            )
        return done
