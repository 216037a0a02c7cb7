"""Delivered events are kept for a while, in hourly partitions that expire whole."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from relay.core import archive
from relay.maintenance import partitions
from shared.outbox import ARCHIVE_TABLE
from tests.support.clickhouse import ClickHouse
from tests.support.outbox_tables import Outbox
from tests.support.relays import RelayFactory, archive_partitions, delivered
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


def archived_ids(outbox: Outbox) -> list[str]:
    """Event ids in the archive, one per archived row."""
    with outbox.connect() as connection:
        return [row[0] for row in connection.execute(f"SELECT event_id::text FROM {ARCHIVE_TABLE}")]


def test_delivered_events_are_archived_in_the_transaction_that_removes_them(
    outbox: Outbox, clickhouse: ClickHouse, start_relay: RelayFactory, clean_partitions: None
) -> None:
    ids = outbox.produce(700)
    start_relay(batch_size=300)

    wait_until(lambda: outbox.pending() == 0, timeout=15)
    assert sorted(archived_ids(outbox)) == sorted(ids)
    assert delivered(clickhouse) == 700
    hour = archive.hour_of(datetime.now(UTC))
    assert archive.partition_name(hour) in archive_partitions(outbox)  # made at start-up, ahead of need
    assert archive.partition_name(hour + partitions.PARTITIONS_AHEAD * archive.HOUR) in archive_partitions(
        outbox
    )


def test_events_delivered_around_a_poison_event_are_archived_and_the_poison_is_not(
    outbox: Outbox, clickhouse: ClickHouse, start_relay: RelayFactory, clean_partitions: None
) -> None:
    good = outbox.produce(100)
    outbox.produce(1, metadata_version=-1)
    start_relay()

    wait_until(lambda: outbox.pending() == 0, timeout=15)
    assert sorted(archived_ids(outbox)) == sorted(good)
    assert len(outbox.dead_letters()) == 1


def test_a_relay_with_retention_zero_keeps_nothing_and_makes_no_partitions(
    outbox: Outbox, clickhouse: ClickHouse, start_relay: RelayFactory, clean_partitions: None
) -> None:
    outbox.produce(50)
    start_relay(archive_retention="0")

    wait_until(lambda: delivered(clickhouse) == 50, timeout=15)
    assert archived_ids(outbox) == []
    assert archive_partitions(outbox) == set()


def test_expiry_drops_whole_partitions_past_the_retention_and_keeps_the_rest(
    outbox: Outbox, clean_partitions: None
) -> None:
    done = asyncio.run(_expire(outbox.url, now=datetime(2026, 11, 26, 13, 0, tzinfo=UTC)))

    assert done.dropped == [
        archive.partition_name(datetime(2026, 11, 25, 11, tzinfo=UTC)),  # ended 25 h ago
        archive.partition_name(datetime(2026, 11, 25, 12, tzinfo=UTC)),  # ended exactly 24 h ago
    ]
    kept = archive_partitions(outbox)
    assert archive.partition_name(datetime(2026, 11, 25, 13, tzinfo=UTC)) in kept  # still inside
    assert archive.partition_name(datetime(2026, 11, 26, 16, tzinfo=UTC)) in kept  # made ahead
    assert done.expired_default_rows == 1  # the stray old row no hourly partition held
    with outbox.connect() as connection:
        rows = connection.execute(
            f"SELECT to_char(delivered_at AT TIME ZONE 'UTC', 'DD HH24') FROM {ARCHIVE_TABLE} ORDER BY 1"
        ).fetchall()
        dead_tuples = connection.execute(
            "SELECT coalesce(sum(n_dead_tup), 0) FROM pg_stat_user_tables WHERE relname LIKE %s",
            (f"{ARCHIVE_TABLE}_p%",),
        ).fetchone()[0]  # type: ignore[index]
    assert [row[0] for row in rows] == ["25 13", "26 12"]
    assert dead_tuples == 0  # nothing was deleted row by row from the hourly partitions


def test_an_hour_already_in_the_default_partition_does_not_stop_expiry(
    outbox: Outbox, clean_partitions: None
) -> None:
    # Rows delivered while their hour had no partition make that partition
    # impossible to create; the round says so and still does the rest.
    done = asyncio.run(
        _expire(outbox.url, now=datetime(2026, 11, 26, 12, 30, tzinfo=UTC), retention=timedelta(hours=24))
    )

    assert done.blocked == [archive.partition_name(datetime(2026, 11, 26, 12, tzinfo=UTC))]
    assert archive.partition_name(datetime(2026, 11, 26, 13, tzinfo=UTC)) in done.created
    assert done.dropped == [archive.partition_name(datetime(2026, 11, 25, 11, tzinfo=UTC))]


async def _expire(
    url: str, *, now: datetime, retention: timedelta = timedelta(hours=24)
) -> partitions.Maintenance:
    """Partitions for 11, 12 and 13 h yesterday, a row in each, two in the default partition; expire."""
    connection = await asyncpg.connect(url)
    try:
        for hour in (11, 12, 13):
            await archive.create_partition(connection, datetime(2026, 11, 25, hour, tzinfo=UTC))
        deliveries = [
            datetime(2026, 11, 25, 11, 5, tzinfo=UTC),
            datetime(2026, 11, 25, 12, 59, tzinfo=UTC),
            datetime(2026, 11, 25, 13, 1, tzinfo=UTC),
            datetime(2026, 11, 26, 12, 1, tzinfo=UTC),  # its hour has no partition: the default one
            datetime(2026, 11, 20, 0, 0, tzinfo=UTC),  # a stray old row in the default partition
        ]
        await connection.executemany(
            f"INSERT INTO {ARCHIVE_TABLE} (event_id, event_type, event_date_time, environment,"
            " event_context, metadata_version, delivered_at)"
            " VALUES (gen_random_uuid(), 'user_created', $1, 'Local', '{}', 1, $1)",
            [(moment,) for moment in deliveries],
        )
        return await partitions.maintain(connection, retention=retention, now=now)
    finally:
        await connection.close()
