"""`event_log` is defined once and works on ClickHouse 18.16 and on current ClickHouse.

The local server is 18.16 (the other tests use it). Current ClickHouse, what
compose runs, cannot run here as a server, so its engine (chdb) executes the
same DDL and the exact insert bodies the relay sends.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator

import asyncpg
import pytest

from relay.clickhouse import insert_query
from relay.outbox import OutboxQueries, take_batch
from relay.schema import CURRENT, LEGACY, SchemaError, check_columns, create_statements
from tests.relay.conftest import Outbox

chdb_session = pytest.importorskip("chdb.session")


@pytest.fixture
def current_clickhouse() -> Iterator[object]:
    """An in-process current ClickHouse with the relay's schema in database `analytics`."""
    with tempfile.TemporaryDirectory() as path:
        session = chdb_session.Session(path)
        for statement in create_statements(CURRENT, "analytics"):
            session.query(statement)
        session.query("USE analytics")
        yield session
        session.close()


def relay_bodies(outbox: Outbox, *, precision: int, batch_size: int) -> list[bytes]:
    """Drain the outbox exactly as the relay's hot path does, one TSV body per batch."""

    async def drain() -> list[bytes]:
        connection = await asyncpg.connect(outbox.url)
        bodies = []
        try:
            queries = OutboxQueries(timestamp_precision=precision)
            while True:
                async with connection.transaction():
                    body = await take_batch(connection, queries, batch_size, 16 * 1024 * 1024)
                if not body:
                    return bodies
                bodies.append(body)
        finally:
            await connection.close()

    return asyncio.run(drain())


def count(session: object, sql: str) -> int:
    return int(str(session.query(sql, "TSV")).strip())  # type: ignore[attr-defined]


def insert(session: object, body: bytes) -> None:
    session.query(f"{insert_query()}\n{body.decode()}")  # type: ignore[attr-defined]


def test_current_clickhouse_takes_the_relays_insert_bodies_with_microsecond_timestamps(
    outbox: Outbox, current_clickhouse: object
) -> None:
    outbox.produce(50)
    [body] = relay_bodies(outbox, precision=6, batch_size=100)

    insert(current_clickhouse, body)

    assert count(current_clickhouse, "SELECT count() FROM event_log_dedup") == 50
    fraction = current_clickhouse.query(  # type: ignore[attr-defined]
        "SELECT countIf(toUnixTimestamp64Micro(event_date_time) % 1000000 != 0) FROM event_log", "TSV"
    )
    assert int(str(fraction).strip()) > 0, "microseconds were lost"
    assert count(current_clickhouse, "SELECT countIf(event_type = 'user_created') FROM event_log") == 50


def test_current_clickhouse_drops_a_retried_insert_at_insert_time(
    outbox: Outbox, current_clickhouse: object
) -> None:
    outbox.produce(20)
    [body] = relay_bodies(outbox, precision=6, batch_size=100)

    insert(current_clickhouse, body)
    insert(current_clickhouse, body)  # a retry after a lost acknowledgement

    assert count(current_clickhouse, "SELECT count() FROM event_log") == 20


def test_current_clickhouse_hides_redelivered_events_in_the_deduplicated_view(
    outbox: Outbox, current_clickhouse: object
) -> None:
    outbox.produce(30)
    first, second = relay_bodies(outbox, precision=6, batch_size=15)

    insert(current_clickhouse, first)
    insert(current_clickhouse, first + second)  # a re-claimed batch with other rows: not the same block

    assert count(current_clickhouse, "SELECT count() FROM event_log") == 45
    assert count(current_clickhouse, "SELECT count() FROM event_log_dedup") == 30


def test_the_schema_statements_are_idempotent_on_current_clickhouse(current_clickhouse: object) -> None:
    for statement in create_statements(CURRENT, "analytics"):
        current_clickhouse.query(statement)  # type: ignore[attr-defined]

    assert count(current_clickhouse, "SELECT count() FROM system.tables WHERE database = 'analytics'") == 2


def test_legacy_schema_has_no_features_the_old_server_lacks() -> None:
    ddl = "\n".join(create_statements(LEGACY, "analytics"))

    assert "DateTime64" not in ddl
    assert "non_replicated_deduplication_window" not in ddl
    assert "ReplacingMergeTree" in ddl


def test_a_datetime_column_means_second_timestamps() -> None:
    shape = check_columns(_columns(event_date_time="DateTime(\\'UTC\\')"))

    assert shape.timestamp_precision == 0


def test_a_datetime64_column_means_microsecond_timestamps() -> None:
    shape = check_columns(_columns(event_date_time="DateTime64(6, 'UTC')"))

    assert shape.timestamp_precision == 6


def test_a_missing_table_is_reported_with_the_command_that_creates_it() -> None:
    with pytest.raises(SchemaError, match="does not exist: run `relay migrate`"):
        check_columns({})


def test_an_incompatible_column_is_named() -> None:
    with pytest.raises(SchemaError, match="metadata_version is Int8"):
        check_columns(_columns(metadata_version="Int8"))


def test_a_missing_column_is_named() -> None:
    columns = _columns()
    del columns["environment"]

    with pytest.raises(SchemaError, match="environment is missing"):
        check_columns(columns)


def _columns(**overrides: str) -> dict[str, str]:
    return {
        "event_id": "UUID",
        "event_type": "String",
        "event_date_time": "DateTime",
        "environment": "String",
        "event_context": "String",
        "metadata_version": "UInt64",
    } | overrides
