"""Which PostgreSQL roles and ClickHouse users a process should warn about running as."""

from __future__ import annotations

import pytest

from shared.privileges import clickhouse_may_change_schema, postgres_excess


def test_a_superuser_or_a_tables_owner_is_more_than_a_process_needs() -> None:
    assert postgres_excess(superuser=True, owns_tables=True) == "superuser"
    assert postgres_excess(superuser=False, owns_tables=True) == "owner of the tables"
    assert postgres_excess(superuser=False, owns_tables=False) is None


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        ({"readonly": "0", "allow_ddl": "1"}, True),  # 18.16's default user
        ({"readonly": "1", "allow_ddl": "1"}, False),
        ({"readonly": "2", "allow_ddl": "1"}, False),  # the local reader
        ({"readonly": "0", "allow_ddl": "0"}, False),  # the local relay user
    ],
)
def test_without_sql_grants_the_profile_decides(profile: dict[str, str], expected: bool) -> None:
    assert clickhouse_may_change_schema(profile, None) is expected


@pytest.mark.parametrize(
    ("grants", "expected"),
    [
        (["GRANT ALL ON *.* TO default WITH GRANT OPTION"], True),
        (["GRANT SELECT ON diehard.* TO diehard_reader"], False),
        (
            [
                "GRANT INSERT, SELECT ON diehard.* TO diehard_relay",
                "GRANT SELECT ON system.clusters TO diehard_relay",
            ],
            False,
        ),
        (["GRANT SELECT, ALTER DELETE ON diehard.event_log TO diehard_eraser"], False),
        (["GRANT SELECT, ALTER ADD COLUMN ON diehard.event_log TO someone"], True),
        (["GRANT CREATE TABLE ON diehard.* TO someone"], True),
        (["GRANT DROP TABLE ON diehard.* TO someone"], True),
        (["GRANT TRUNCATE ON diehard.* TO someone"], True),
        (["GRANT analyst TO someone"], False),
    ],
)
def test_with_sql_grants_only_schema_changing_privileges_count(grants: list[str], expected: bool) -> None:
    assert clickhouse_may_change_schema({"readonly": "0", "allow_ddl": "1"}, grants) is expected
