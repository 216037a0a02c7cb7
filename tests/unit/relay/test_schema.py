"""`event_log`'s definition: the same statements on ClickHouse 18.16 and on current ClickHouse.

Current ClickHouse runs here in-process (chdb); the columns check needs no server.
"""

from __future__ import annotations

import pytest

from relay.schema import CURRENT, LEGACY, SchemaError, check_columns, create_statements
from tests.support.current_clickhouse import CurrentClickHouse


def test_the_schema_statements_are_idempotent_on_current_clickhouse(
    current_clickhouse: CurrentClickHouse,
) -> None:
    for statement in create_statements(CURRENT, "analytics"):
        current_clickhouse.query(statement)

    assert current_clickhouse.count("SELECT count() FROM system.tables WHERE database = 'analytics'") == 2


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
