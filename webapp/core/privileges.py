"""The site's start-up check that it runs with no more rights than it needs (docs/SECURITY.md)."""

from __future__ import annotations

import structlog
from django.db import DatabaseError, connection

from shared.privileges import (
    CLICKHOUSE_GRANTS_QUERY,
    CLICKHOUSE_SETTINGS_QUERY,
    POSTGRES_ROLE_QUERY,
    clickhouse_may_change_schema,
    postgres_excess,
)
from webapp.core.clickhouse import ClickHouseError, ClickHouseRefused, site_reader

logger = structlog.get_logger(__name__)

_TIMEOUT = 5.0


def privileges_warn(*, component: str) -> list[str]:
    """Warn (one log line each) where this process could change the schema; what was found.

    A server that does not answer is not a reason to stop starting: the check
    is skipped for it, with a line saying so.
    """
    excesses = []
    try:
        with connection.cursor() as cursor:
            cursor.execute(POSTGRES_ROLE_QUERY)
            row = cursor.fetchone()
    except DatabaseError as error:
        logger.info(
            "privileges_unchecked", component=component, server="postgres", error=type(error).__name__
        )
    else:
        reason = postgres_excess(superuser=bool(row and row[0]), owns_tables=bool(row and row[1]))
        if reason:
            excesses.append(f"postgres: {reason}")
            logger.warning(
                "running_with_excess_privileges",
                component=component,
                server="postgres",
                role=connection.settings_dict["USER"],
                reason=reason,
                advice="run the site as its own role (DATABASE_URL with diehard_web): docs/SECURITY.md",
            )
    reader = site_reader(timeout=_TIMEOUT)
    try:
        settings = {row["name"]: str(row["value"]) for row in reader.rows(CLICKHOUSE_SETTINGS_QUERY)}
        try:
            grants: list[str] | None = reader.execute(CLICKHOUSE_GRANTS_QUERY).decode().splitlines()
        except ClickHouseRefused:
            grants = None  # no SQL access control (18.16): the profile decides
    except ClickHouseError as error:
        logger.info("privileges_unchecked", component=component, server="clickhouse", error=str(error))
    else:
        if clickhouse_may_change_schema(settings, grants):
            excesses.append("clickhouse: may change the schema")
            logger.warning(
                "running_with_excess_privileges",
                component=component,
                server="clickhouse",
                user=reader.user,
                reason="may change the schema",
                advice="read ClickHouse as a read-only user (CLICKHOUSE_READER_USER): docs/SECURITY.md",
            )
    return excesses
