"""`event_log`'s definition: the same statements on ClickHouse 18.16 and on current ClickHouse.

Current ClickHouse runs here in-process (chdb); the columns check needs no server.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from relay.core.schema import (
    CURRENT,
    DISTRIBUTED_TABLE,
    LEGACY,
    SHARDING_KEY,
    SchemaError,
    ServerFeatures,
    check_columns,
    create_statements,
    expire_statement,
    has_retention,
)
from tests.support.current_clickhouse import CurrentClickHouse


def test_the_schema_statements_are_idempotent_on_current_clickhouse(
    current_clickhouse: CurrentClickHouse,
) -> None:
    for statement in create_statements(CURRENT, "analytics"):
        current_clickhouse.query(statement)

    # event_log, its deduplicated view, the per-account copy and the view that fills it.
    assert current_clickhouse.count("SELECT count() FROM system.tables WHERE database = 'analytics'") == 4


def test_legacy_schema_has_no_features_the_old_server_lacks() -> None:
    ddl = "\n".join(create_statements(LEGACY, "analytics"))

    assert "DateTime64" not in ddl
    assert "non_replicated_deduplication_window" not in ddl
    assert "fsync" not in ddl
    assert "ReplacingMergeTree" in ddl


def test_where_the_server_can_fsync_inserts_the_table_acknowledges_only_what_is_on_disk(
    current_clickhouse: CurrentClickHouse,
) -> None:
    engine = current_clickhouse.query(
        "SELECT engine_full FROM system.tables WHERE database = 'analytics' AND name = 'event_log'"
    )

    assert "fsync_after_insert = 1" in engine
    assert "fsync_part_directory = 1" in engine


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


@pytest.fixture
def retaining_clickhouse() -> Iterator[Any]:
    """A chdb session whose `event_log` keeps events for 30 days."""
    from chdb.session import Session

    with tempfile.TemporaryDirectory() as path:
        session = Session(path)
        for statement in create_statements(CURRENT, "analytics", retention_days=30):
            session.query(statement)
        yield session
        session.close()


def test_current_clickhouse_drops_events_past_the_retention_period_by_itself(
    retaining_clickhouse: Any,
) -> None:
    retaining_clickhouse.query(
        "INSERT INTO analytics.event_log VALUES"
        " (generateUUIDv4(), 'user_created', now64(6) - INTERVAL 40 DAY, 'Local', '{}', 1),"
        " (generateUUIDv4(), 'user_created', now64(6) - INTERVAL 1 DAY, 'Local', '{}', 1)"
    )
    retaining_clickhouse.query("OPTIMIZE TABLE analytics.event_log FINAL")

    assert str(retaining_clickhouse.query("SELECT count() FROM analytics.event_log", "TSV")).strip() == "1"


def test_an_existing_ttl_is_recognised_as_the_server_prints_it(retaining_clickhouse: Any) -> None:
    ddl = str(
        retaining_clickhouse.query(
            "SELECT create_table_query FROM system.tables"
            " WHERE database = 'analytics' AND name = 'event_log'",
            "TSV",
        )
    )

    assert has_retention(ddl, 30)
    assert not has_retention(ddl, 3)
    assert not has_retention(ddl, 300)


def test_legacy_clickhouse_has_no_ttl_so_the_table_is_created_without_one() -> None:
    ddl = "\n".join(create_statements(LEGACY, "analytics", retention_days=30))

    assert "TTL" not in ddl


@pytest.mark.parametrize("features", [LEGACY, CURRENT], ids=["18.16", "current"])
def test_every_statement_on_a_cluster_runs_on_every_replica(features: ServerFeatures) -> None:
    statements = create_statements(features, "analytics", "die_hard")

    assert all(" ON CLUSTER die_hard" in statement for statement in statements)


def test_on_a_cluster_the_table_is_replicated_per_shard_and_spread_by_a_hash_of_the_event_id() -> None:
    ddl = "\n".join(create_statements(CURRENT, "analytics", "die_hard"))

    assert (
        "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/analytics/event_log', '{replica}')" in ddl
    )
    assert f"Distributed(die_hard, analytics, event_log, {SHARDING_KEY})" in ddl
    assert SHARDING_KEY == "cityHash64(event_id)"
    assert f"FROM analytics.{DISTRIBUTED_TABLE} FINAL" in ddl
    # Replicated tables deduplicate retried blocks by themselves.
    assert "non_replicated_deduplication_window" not in ddl


def test_without_a_cluster_the_schema_is_the_single_server_one() -> None:
    ddl = "\n".join(create_statements(CURRENT, "analytics"))

    assert "ON CLUSTER" not in ddl
    assert "Replicated" not in ddl
    assert DISTRIBUTED_TABLE not in ddl


def test_current_clickhouse_parses_the_cluster_schema(current_clickhouse: CurrentClickHouse) -> None:
    for statement in create_statements(CURRENT, "analytics", "die_hard"):
        quoted = "'" + statement.replace("\\", "\\\\").replace("'", "\\'") + "'"

        assert "ON CLUSTER die_hard" in current_clickhouse.query(f"SELECT formatQuery({quoted})")


def test_expiry_on_a_cluster_runs_on_every_shard() -> None:
    assert " ON CLUSTER die_hard DELETE" in expire_statement("analytics", 30, "die_hard")
    assert "ON CLUSTER" not in expire_statement("analytics", 30)
