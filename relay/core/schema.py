"""The analysts' table, `event_log`: its schema, applied and checked in one place.

Deliveries are at least once, so the same event may reach ClickHouse twice (a
crash after ClickHouse acknowledged a batch but before PostgreSQL committed its
deletion). The table makes that invisible:

* `ReplacingMergeTree` collapses rows with the same sorting key. The key ends in
  `event_id`, and a duplicate carries the very same type and time, so copies of
  one event always collapse; merges do it in the background and `FINAL` (the
  `event_log_dedup` view) does it at read time.
* Where the server has it (not 18.16), `non_replicated_deduplication_window`
  also drops a retried insert whose block is identical at insert time.

On a cluster (`CLICKHOUSE_CLUSTER`) every statement runs `ON CLUSTER`:
`event_log` becomes a `ReplicatedReplacingMergeTree` on every replica, whose
inserts are deduplicated natively (an identical retried block is dropped, even
on 18.16), and `event_log_distributed` spreads reads and, when there are
several shards, writes over the shards by a hash of `event_id`, so all copies of
one event meet on one shard, where `FINAL` collapses them. The view reads
through it.

The same statements run on the ClickHouse 18.16 these machines have and on a
current server; features are detected, not assumed from version numbers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from aiochclient import ChClient

from relay.core import event_views, user_events
from relay.core.clickhouse import (
    ACCESS_CODES,
    MISSING_SCHEMA_CODES,
    ClickHouseSink,
    TransientError,
)
from shared.outbox import EVENT_LOG_COLUMNS, EVENT_LOG_DEDUP_VIEW, EVENT_LOG_TABLE, USER_EVENTS_TABLE

DEDUP_VIEW: Final = EVENT_LOG_DEDUP_VIEW
DISTRIBUTED_TABLE: Final = f"{EVENT_LOG_TABLE}_distributed"
SHARDING_KEY: Final = "cityHash64(event_id)"
INSERT_DEDUP_WINDOW: Final = 1000


class SchemaError(RuntimeError):
    """`event_log` is missing or cannot take what the relay sends."""


@dataclass(frozen=True, slots=True)
class ServerFeatures:
    """What the ClickHouse server can do that the schema cares about."""

    datetime64: bool
    insert_deduplication: bool
    # MergeTree's `fsync_after_insert`: an acknowledged part is on disk.
    durable_insert: bool = False
    # Table TTL (ClickHouse 19.6 and later): the server drops expired rows itself.
    ttl: bool = False


LEGACY: Final = ServerFeatures(datetime64=False, insert_deduplication=False, ttl=False)
CURRENT: Final = ServerFeatures(datetime64=True, insert_deduplication=True, durable_insert=True, ttl=True)


def ttl_clause(retention_days: int) -> str:
    """The table TTL that drops events older than the retention period."""
    return f"TTL toDateTime(event_date_time) + INTERVAL {int(retention_days)} DAY"


def has_retention(create_table_query: str, retention_days: int) -> bool:
    """Whether a table's DDL (as `system.tables` shows it) already has this retention's TTL."""
    days = int(retention_days)
    pattern = rf"TTL toDateTime\(event_date_time\) \+ (toIntervalDay\({days}\)|INTERVAL {days} DAY)(?!\w)"
    return re.search(pattern, create_table_query) is not None


def expire_statement(database: str, retention_days: int, cluster: str | None = None) -> str:
    """Delete events older than the retention period (for servers without TTL: `relay expire`).

    On a `cluster`, on every shard (each shard's replicas share the deletion).
    """
    on_cluster = f" ON CLUSTER {cluster}" if cluster else ""
    return (
        f"ALTER TABLE {database}.{EVENT_LOG_TABLE}{on_cluster} DELETE"
        f" WHERE event_date_time < now() - INTERVAL {int(retention_days)} DAY"
    )


def event_log_columns(features: ServerFeatures) -> dict[str, str]:
    """`event_log`'s columns and their ClickHouse types, in `EVENT_LOG_COLUMNS` order."""
    return {
        "event_id": "UUID",
        "event_type": "String",
        "event_date_time": "DateTime64(6, 'UTC')" if features.datetime64 else "DateTime('UTC')",
        "environment": "String",
        "event_context": "String",
        "metadata_version": "UInt64",
    }


def create_statements(
    features: ServerFeatures, database: str, cluster: str | None = None, *, retention_days: int = 0
) -> list[str]:
    """DDL for the database, the table and its deduplicated view, idempotent (`IF NOT EXISTS`).

    With `retention_days` (and a server with TTL) the table drops older events by itself.
    With a `cluster`, each statement runs on every replica of it, the table is
    replicated, and a `Distributed` table over the shards is created for the view.
    """
    on_cluster = f" ON CLUSTER {cluster}" if cluster else ""
    columns = ",\n".join(f"    {name} {kind}" for name, kind in event_log_columns(features).items())
    if cluster:
        # {shard} and {replica} are each server's macros; the path names the table once per shard.
        engine = (
            f"ReplicatedReplacingMergeTree('/clickhouse/tables/{{shard}}/{database}/{EVENT_LOG_TABLE}',"
            " '{replica}')"
        )
    else:
        engine = "ReplacingMergeTree"
    table_settings = []
    # Replicated tables deduplicate retried blocks by default.
    if features.insert_deduplication and not cluster:
        table_settings.append(f"non_replicated_deduplication_window = {INSERT_DEDUP_WINDOW}")
    if features.durable_insert:
        # ClickHouse acknowledges an insert only once its part is on disk.
        table_settings += ["fsync_after_insert = 1", "fsync_part_directory = 1"]
    settings = f"\nSETTINGS {', '.join(table_settings)}" if table_settings else ""
    ttl = f"\n{ttl_clause(retention_days)}" if features.ttl and retention_days else ""
    table = f"""CREATE TABLE IF NOT EXISTS {database}.{EVENT_LOG_TABLE}{on_cluster}
(
{columns}
)
ENGINE = {engine}
PARTITION BY toYYYYMM(event_date_time)
ORDER BY (event_type, event_date_time, event_id){ttl}{settings}"""
    statements = [f"CREATE DATABASE IF NOT EXISTS {database}{on_cluster}", table]
    source = EVENT_LOG_TABLE
    if cluster:
        source = DISTRIBUTED_TABLE
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {database}.{DISTRIBUTED_TABLE}{on_cluster}"
            f" AS {database}.{EVENT_LOG_TABLE}"
            f"\nENGINE = Distributed({cluster}, {database}, {EVENT_LOG_TABLE}, {SHARDING_KEY})"
        )
    statements += user_events.create_statements(
        database, event_log_columns(features)["event_date_time"], cluster, ttl=ttl, settings=settings
    )
    statements.append(f"""CREATE VIEW IF NOT EXISTS {database}.{DEDUP_VIEW}{on_cluster} AS
SELECT {", ".join(EVENT_LOG_COLUMNS)}
FROM {database}.{source} FINAL""")
    return statements


@dataclass(frozen=True, slots=True)
class TableShape:
    """What the relay learns from the existing table: how precise its timestamps are."""

    timestamp_precision: int  # 0 for DateTime, 6 for DateTime64(6)
    # The server has `async_insert` (a profile could make it acknowledge before
    # writing): the relay then pins it off on its inserts.
    async_insert: bool = False


_EXPECTED: Final = {
    "event_id": re.compile(r"UUID"),
    "event_type": re.compile(r"(LowCardinality\()?String\)?"),
    "event_date_time": re.compile(r"DateTime(64\((?P<precision>\d+)(, *'[^']*')?\)|\('[^']*'\))?"),
    "environment": re.compile(r"(LowCardinality\()?String\)?"),
    "event_context": re.compile(r"String"),
    "metadata_version": re.compile(r"UInt(8|16|32|64)"),
}


def check_columns(columns: dict[str, str]) -> TableShape:
    """Raise `SchemaError` unless the columns take the relay's rows; return their shape."""
    if not columns:
        raise SchemaError(f"table {EVENT_LOG_TABLE} does not exist: run `relay migrate`")
    problems = []
    precision = 0
    for name in EVENT_LOG_COLUMNS:
        pattern = _EXPECTED[name]
        actual = columns.get(name)
        match = pattern.fullmatch(actual.replace("\\'", "'")) if actual else None
        if match is None:
            problems.append(f"{name} is {actual or 'missing'}")
        elif name == "event_date_time" and match.group("precision"):
            precision = int(match.group("precision"))
    if problems:
        raise SchemaError(f"table {EVENT_LOG_TABLE} is incompatible: {'; '.join(problems)}")
    if precision not in (0, 6):
        raise SchemaError(f"{EVENT_LOG_TABLE}.event_date_time must be DateTime or DateTime64(6)")
    return TableShape(timestamp_precision=precision)


async def detect_features(client: ChClient) -> ServerFeatures:
    """Ask the server which of the optional features it has."""
    datetime64 = await client.fetchval("SELECT count() FROM system.functions WHERE name = 'toDateTime64'")
    names = {
        row["name"]
        for row in await client.fetch(
            "SELECT name FROM system.merge_tree_settings WHERE name IN"
            " ('non_replicated_deduplication_window', 'fsync_after_insert', 'merge_with_ttl_timeout')"
        )
    }
    return ServerFeatures(
        datetime64=bool(datetime64),
        insert_deduplication="non_replicated_deduplication_window" in names,
        durable_insert="fsync_after_insert" in names,
        ttl="merge_with_ttl_timeout" in names,
    )


async def apply(
    client: ChClient, database: str, cluster: str | None = None, *, retention_days: int = 0
) -> ServerFeatures:
    """Create the database, the table and its views unless they exist; set the table's retention.

    The views: the deduplicated one, and a typed one per published event type (`event_views`).

    With a `cluster`, on every replica of it.

    `client` must not be bound to `database`, which may not exist yet.
    """
    features = await detect_features(client)
    # The database may not exist yet: then neither does the table.
    new_user_events = not await user_events.exists(client, database)
    for statement in create_statements(features, database, cluster, retention_days=retention_days):
        await client.execute(statement)
    if new_user_events:
        # After its view exists: an insert in between is copied twice, which FINAL hides.
        await client.execute(user_events.backfill_statement(database))
    await event_views.apply(client, database, cluster)
    if features.ttl and retention_days:
        # A table created before (or with another period): set its TTL, only when it differs,
        # since changing a TTL rewrites the table's parts.
        for table in (EVENT_LOG_TABLE, USER_EVENTS_TABLE):
            ddl = await client.fetchval(
                "SELECT create_table_query FROM system.tables WHERE database = {db} AND name = {table}",
                params={"db": database, "table": table},
            )
            if not has_retention(str(ddl), retention_days):
                on_cluster = f" ON CLUSTER {cluster}" if cluster else ""
                await client.execute(
                    f"ALTER TABLE {database}.{table}{on_cluster} MODIFY {ttl_clause(retention_days)}"
                )
    return features


async def inspect(sink: ClickHouseSink, database: str) -> TableShape:
    """Check the existing table at start-up; a clear `SchemaError` if it will not do.

    ClickHouse being unreachable or slow raises `TransientError` (wait and
    retry); a missing database or table, or refused credentials, raise
    `SchemaError`, since no retry will fix them.
    """
    try:
        rows = await sink.fetch(
            "SELECT name, type FROM system.columns WHERE database = {db} AND table = {table}",
            {"db": database, "table": EVENT_LOG_TABLE},
        )
    except TransientError as error:
        if error.code in MISSING_SCHEMA_CODES:
            raise SchemaError(f"database {database} does not exist: run `relay migrate`") from error
        if error.code in ACCESS_CODES:
            raise SchemaError(f"ClickHouse refused the configured user (code {error.code})") from error
        raise
    shape = check_columns({row["name"]: row["type"] for row in rows})
    [async_insert] = await sink.fetch(
        "SELECT count() AS settings FROM system.settings WHERE name = 'async_insert'"
    )
    return TableShape(
        timestamp_precision=shape.timestamp_precision, async_insert=bool(async_insert["settings"])
    )


@dataclass(frozen=True, slots=True)
class Topology:
    """The cluster the relay writes to, as the servers describe it."""

    shards: int
    replicas: int  # in the smallest shard: the largest quorum every insert can reach


async def inspect_cluster(sink: ClickHouseSink, database: str, cluster: str) -> Topology:
    """Check that the server knows `cluster` and has the tables a clustered relay writes to."""
    rows = await sink.fetch(
        "SELECT shard_num, count() AS replicas FROM system.clusters WHERE cluster = {cluster}"
        " GROUP BY shard_num",
        {"cluster": cluster},
    )
    if not rows:
        raise SchemaError(f"ClickHouse knows no cluster {cluster} (see its remote_servers)")
    topology = Topology(shards=len(rows), replicas=min(int(row["replicas"]) for row in rows))
    engines = {
        row["name"]: row["engine"]
        for row in await sink.fetch(
            "SELECT name, engine FROM system.tables WHERE database = {db} AND name IN ({local}, {spread})",
            {"db": database, "local": EVENT_LOG_TABLE, "spread": DISTRIBUTED_TABLE},
        )
    }
    if not engines.get(EVENT_LOG_TABLE, "").startswith("Replicated"):
        raise SchemaError(
            f"{EVENT_LOG_TABLE} is not replicated on cluster {cluster}:"
            " run `relay migrate` with CLICKHOUSE_CLUSTER set"
        )
    if topology.shards > 1 and engines.get(DISTRIBUTED_TABLE) != "Distributed":
        raise SchemaError(f"{DISTRIBUTED_TABLE} is missing: run `relay migrate` with CLICKHOUSE_CLUSTER")
    return topology
