"""The relay's start-up check that it runs with no more rights than it needs (docs/SECURITY.md)."""

from __future__ import annotations

import asyncpg
import structlog

from relay.core.clickhouse import ClickHouseSink, DeliveryError
from relay.core.postgres import POSTGRES_ERRORS
from shared.privileges import (
    CLICKHOUSE_GRANTS_QUERY,
    CLICKHOUSE_SETTINGS_QUERY,
    POSTGRES_ROLE_QUERY,
    clickhouse_may_change_schema,
    postgres_excess,
)

log = structlog.get_logger("relay")


async def privileges_warn(*, pool: asyncpg.Pool, sink: ClickHouseSink) -> list[str]:
    """Warn (one log line each) where the relay could change a schema; what was found.

    A server that does not answer is no reason to stop: the check is skipped
    for it, with a line saying so.
    """
    excesses = []
    try:
        row = await pool.fetchrow(POSTGRES_ROLE_QUERY)
    except POSTGRES_ERRORS as error:
        log.info("privileges_unchecked", server="postgres", error_kind=type(error).__name__)
    else:
        reason = postgres_excess(superuser=bool(row and row[0]), owns_tables=bool(row and row[1]))
        if reason:
            excesses.append(f"postgres: {reason}")
            log.warning(
                "running_with_excess_privileges",
                server="postgres",
                reason=reason,
                advice="run as its own role (RELAY_DATABASE_URL, diehard_relay): docs/SECURITY.md",
            )
    try:
        settings = {row["name"]: str(row["value"]) for row in await sink.fetch(CLICKHOUSE_SETTINGS_QUERY)}
    except DeliveryError as error:
        log.info("privileges_unchecked", server="clickhouse", error_kind=error.kind)
        return excesses
    try:
        grants: list[str] | None = [str(row[0]) for row in await sink.fetch(CLICKHOUSE_GRANTS_QUERY)]
    except DeliveryError:
        grants = None  # no SQL access control (18.16): the profile decides
    if clickhouse_may_change_schema(settings, grants):
        excesses.append("clickhouse: may change the schema")
        log.warning(
            "running_with_excess_privileges",
            server="clickhouse",
            reason="may change the schema",
            advice="insert as a user without DDL rights (CLICKHOUSE_USER diehard_relay): docs/SECURITY.md",
        )
    return excesses
