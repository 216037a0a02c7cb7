"""`event_log` is defined once and works on ClickHouse 18.16 and on current ClickHouse.

The local server is 18.16 (the other tests use it). Current ClickHouse, what
compose runs, cannot run here as a server, so its engine (chdb) executes the
same DDL and the exact insert bodies the relay sends.
"""

from __future__ import annotations

import asyncio
import uuid
from urllib.parse import urlsplit

import asyncpg

from relay import app, commands
from relay.core.outbox import OutboxQueries, PostgresClaim
from relay.settings import RelaySettings
from tests.support.clickhouse import ClickHouse
from tests.support.current_clickhouse import CurrentClickHouse
from tests.support.outbox_tables import Outbox
from tests.support.waiting import wait_until


def relay_bodies(outbox: Outbox, *, precision: int, batch_size: int) -> list[bytes]:
    """Drain the outbox exactly as the relay's hot path does, one TSV body per batch."""

    async def drain() -> list[bytes]:
        connection = await asyncpg.connect(outbox.url)
        bodies: list[bytes] = []
        try:
            queries = OutboxQueries(timestamp_precision=precision)
            while True:
                async with connection.transaction():
                    body, _ = await PostgresClaim(connection, queries).take_batch(
                        batch_size, 16 * 1024 * 1024
                    )
                if not body:
                    return bodies
                bodies.append(body)
        finally:
            await connection.close()

    return asyncio.run(drain())


def test_current_clickhouse_takes_the_relays_insert_bodies_with_microsecond_timestamps(
    outbox: Outbox, current_clickhouse: CurrentClickHouse
) -> None:
    outbox.produce(50)
    [body] = relay_bodies(outbox, precision=6, batch_size=100)

    current_clickhouse.insert(body)

    assert current_clickhouse.count("SELECT count() FROM event_log_dedup") == 50
    fraction = current_clickhouse.count(
        "SELECT countIf(toUnixTimestamp64Micro(event_date_time) % 1000000 != 0) FROM event_log"
    )
    assert fraction > 0, "microseconds were lost"
    assert current_clickhouse.count("SELECT countIf(event_type = 'user_created') FROM event_log") == 50


def test_current_clickhouse_drops_a_retried_insert_at_insert_time(
    outbox: Outbox, current_clickhouse: CurrentClickHouse
) -> None:
    outbox.produce(20)
    [body] = relay_bodies(outbox, precision=6, batch_size=100)

    current_clickhouse.insert(body)
    current_clickhouse.insert(body)  # a retry after a lost acknowledgement

    assert current_clickhouse.count("SELECT count() FROM event_log") == 20


def test_current_clickhouse_hides_redelivered_events_in_the_deduplicated_view(
    outbox: Outbox, current_clickhouse: CurrentClickHouse
) -> None:
    outbox.produce(30)
    first, second = relay_bodies(outbox, precision=6, batch_size=15)

    current_clickhouse.insert(first)
    current_clickhouse.insert(first + second)  # a re-claimed batch with other rows: not the same block

    assert current_clickhouse.count("SELECT count() FROM event_log") == 45
    assert current_clickhouse.count("SELECT count() FROM event_log_dedup") == 30


def test_relay_expire_deletes_events_past_the_retention_period_on_the_legacy_server(
    clickhouse: ClickHouse,
) -> None:
    clickhouse.query(
        "INSERT INTO event_log VALUES"
        f" ('{uuid.uuid4()}', 'user_created', now() - INTERVAL 40 DAY, 'Local', '{{}}', 1),"
        f" ('{uuid.uuid4()}', 'user_created', now() - INTERVAL 1 DAY, 'Local', '{{}}', 1)"
    )
    address = urlsplit(clickhouse.url)
    settings = RelaySettings(
        _env_file=None,
        clickhouse_host=address.hostname or "127.0.0.1",
        clickhouse_port=address.port or 8123,
        clickhouse_user=clickhouse.user,
        clickhouse_database=clickhouse.database,
        event_log_retention_days=30,
    )

    assert asyncio.run(commands.expire(settings)) == app.EXIT_OK

    # A mutation: ClickHouse applies it in the background, shortly.
    wait_until(lambda: clickhouse.value("SELECT count() FROM event_log") == "1", timeout=30)
