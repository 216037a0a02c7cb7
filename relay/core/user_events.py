"""`event_log_by_user`: every event about an account, sorted by account, for the site's reads.

`event_log` is sorted for analysts (`event_type, event_date_time, event_id`)
and keeps the account inside the JSON payload, so finding one account's events
(the activity page, erasure) reads the whole table: about 5 s at ten million
events on one core. This table holds the same events with `user_id` as a
column and `(environment, user_id, event_date_time, event_id)` as its sorting
key, so ClickHouse reads only the account's granules. It has no partitions
(one account's events are then in few parts, however old; expiry is a
mutation or a TTL either way) and small granules (1,024 rows).

A materialized view fills it from every insert into `event_log` (the relay's,
reconciliation's, anyone's), in the same insert; `relay migrate` copies what
`event_log` already held when it creates the table. It is a
`ReplacingMergeTree` like `event_log`, keyed on the event: a copy the
at-least-once delivery leaves there leaves one here too, and `FINAL` hides both.
Events about no account (`user_id` absent, null or 0) are not copied.

On a cluster the table is replicated like `event_log`, and the view runs on
the replica that takes an insert (replicas fetch the result, not the insert),
so each shard's copy stays whole. Retention follows `event_log`: the same TTL,
or the same `relay expire` on servers without one. The same statements run on
ClickHouse 18.16 and current servers.
"""

from __future__ import annotations

from typing import Final

from aiochclient import ChClient

from shared.outbox import EVENT_LOG_TABLE, USER_EVENTS_TABLE

USER_EVENTS_VIEW: Final = f"{USER_EVENTS_TABLE}_mv"
INDEX_GRANULARITY: Final = 1024
# `"user_id":N` of the compact JSON payload (18.16 has no JSONExtract).
USER_ID: Final = "visitParamExtractUInt(event_context, 'user_id')"


def columns(event_date_time: str) -> dict[str, str]:
    """The table's columns and types, in order; `event_date_time` is `event_log`'s type for it."""
    return {
        "environment": "String",
        "user_id": "UInt64",
        "event_date_time": event_date_time,
        "event_id": "UUID",
        "event_type": "String",
        "event_context": "String",
    }


def select_from_event_log(database: str) -> str:
    """The rows of `event_log` this table holds, as its columns."""
    return (
        f"SELECT environment, {USER_ID} AS user_id, event_date_time, event_id, event_type, event_context"
        f"\nFROM {database}.{EVENT_LOG_TABLE}\nWHERE {USER_ID} != 0"
    )


def create_statements(
    database: str, event_date_time: str, cluster: str | None = None, *, ttl: str = "", settings: str = ""
) -> list[str]:
    """The table and the view that fills it, idempotent; `ttl` and `settings` as `event_log` has them."""
    on_cluster = f" ON CLUSTER {cluster}" if cluster else ""
    # Small granules: a page reads one account's ~100 rows, not 8192 of its neighbours' with them.
    granules = f"index_granularity = {INDEX_GRANULARITY}"
    settings = f"{settings}, {granules}" if settings else f"\nSETTINGS {granules}"
    engine = (
        f"ReplicatedReplacingMergeTree('/clickhouse/tables/{{shard}}/{database}/{USER_EVENTS_TABLE}',"
        " '{replica}')"
        if cluster
        else "ReplacingMergeTree"
    )
    body = ",\n".join(f"    {name} {kind}" for name, kind in columns(event_date_time).items())
    table = f"""CREATE TABLE IF NOT EXISTS {database}.{USER_EVENTS_TABLE}{on_cluster}
(
{body}
)
ENGINE = {engine}
ORDER BY (environment, user_id, event_date_time, event_id){ttl}{settings}"""
    view = (
        f"CREATE MATERIALIZED VIEW IF NOT EXISTS {database}.{USER_EVENTS_VIEW}{on_cluster}"
        f" TO {database}.{USER_EVENTS_TABLE}\nAS {select_from_event_log(database)}"
    )
    return [table, view]


def backfill_statement(database: str) -> str:
    """Copy what `event_log` holds (run once, when the table is new)."""
    return f"INSERT INTO {database}.{USER_EVENTS_TABLE}\n{select_from_event_log(database)}"


def expire_statement(database: str, retention_days: int, cluster: str | None = None) -> str:
    """Delete copies older than the retention period (servers without TTL: `relay expire`)."""
    on_cluster = f" ON CLUSTER {cluster}" if cluster else ""
    return (
        f"ALTER TABLE {database}.{USER_EVENTS_TABLE}{on_cluster} DELETE"
        f" WHERE event_date_time < now() - INTERVAL {int(retention_days)} DAY"
    )


async def exists(client: ChClient, database: str) -> bool:
    """Whether the table is there already (a new one is filled from `event_log` once)."""
    count = await client.fetchval(
        "SELECT count() FROM system.tables WHERE database = {db} AND name = {table}",
        params={"db": database, "table": USER_EVENTS_TABLE},
    )
    return bool(count)
