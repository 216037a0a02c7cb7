"""What the relay's PostgreSQL statements share: the connection, the errors, COPY out, TSV rendering."""

from __future__ import annotations

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from shared.outbox import EVENT_LOG_COLUMNS

# Errors that mean PostgreSQL is (for now) unreachable or went away mid-statement.
POSTGRES_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    # What asyncpg raises when the server's "terminating connection" message has
    # arrived but the socket's close has not yet: the next statement (often the
    # COMMIT) finds the protocol still consuming that error.
    asyncpg.InternalClientError,
)

# A connection of its own or one a pool lends: every statement runs on either.
type Connection = asyncpg.Connection | PoolConnectionProxy


def tsv_columns(timestamp_precision: int) -> str:
    """The select list that renders an event row (outbox or archive) as the TSV line ClickHouse takes.

    COPY's text escaping is ClickHouse's TSV escaping; only the timestamp needs
    a format: ClickHouse's DateTime parser takes no fraction, DateTime64(6)
    takes microseconds.
    """
    fmt = "YYYY-MM-DD HH24:MI:SS.US" if timestamp_precision == 6 else "YYYY-MM-DD HH24:MI:SS"
    timestamp = f"to_char(event_date_time AT TIME ZONE 'UTC', '{fmt}')"
    return ", ".join(timestamp if name == "event_date_time" else name for name in EVENT_LOG_COLUMNS)


async def copy_out(connection: Connection, query: str) -> bytes:
    """Run `COPY (query) TO STDOUT` and return its text output."""
    chunks: list[bytes] = []

    async def collect(chunk: bytes) -> None:
        chunks.append(chunk)

    await connection.copy_from_query(query, output=collect)
    return b"".join(chunks)
