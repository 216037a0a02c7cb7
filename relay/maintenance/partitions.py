"""The archive's partitions, kept: made ahead of need, dropped whole when expired.

Forwarders copy each delivered event into the archive (see
`relay.core.archive`, which holds every statement on it). This module keeps
its hourly partitions: it creates the current and next hours' partitions ahead
of need, drops those older than the retention (a `DROP TABLE`: no dead tuples,
no vacuum), and expires what the default partition caught. One relay at a
time does it (a PostgreSQL advisory lock); the others skip their turn.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

import asyncpg
import structlog

from relay.core import archive
from relay.core.postgres import POSTGRES_ERRORS, Connection
from relay.core.waits import sleep_unless

log = structlog.get_logger("relay.archive")

# Partitions made ahead of the current hour: a relay that cannot reach
# PostgreSQL for this long still finds its partitions when it comes back.
PARTITIONS_AHEAD: Final = 3
# How often the partitions are looked after.
MAINTENANCE_INTERVAL: Final = 300.0
# Advisory lock key (pg_try_advisory_xact_lock) held while partitions change.
MAINTENANCE_LOCK: Final = 0x64_68_61_72  # "dhar"
# DDL on a partitioned table briefly locks it against deliveries: never wait long.
LOCK_TIMEOUT: Final = "2s"


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
        current = archive.hour_of(now)
        for ahead in range(PARTITIONS_AHEAD + 1):
            hour = current + ahead * archive.HOUR
            made = await archive.create_partition(connection, hour)
            if made == "created":
                done.created.append(archive.partition_name(hour))
            elif made == "blocked":
                done.blocked.append(archive.partition_name(hour))
        for hour, name in sorted((await archive.hourly_partitions(connection)).items()):
            if hour + archive.HOUR <= cutoff:
                await archive.drop_partition(connection, name)
                done.dropped.append(name)
        done.expired_default_rows = await archive.expire_default(connection, cutoff)
    return done


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
