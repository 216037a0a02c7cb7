"""What the relay's PostgreSQL statements share: the connection, the errors, COPY out, TSV rendering."""

from __future__ import annotations

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from shared.outbox import EVENT_LOG_COLUMNS


class ReadOnlyServer(Exception):
    """The PostgreSQL server takes no writes: a standby, or one set read-only (fenced)."""


# Errors that mean PostgreSQL is (for now) unreachable, went away mid-statement,
# or takes no writes.
POSTGRES_ERRORS = (
    ReadOnlyServer,
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


def read_only(connection: Connection) -> bool:
    """Whether the server said it takes no writes, without a round trip.

    PostgreSQL (14 and later) reports `in_hot_standby` and
    `default_transaction_read_only` to every session when they change: a
    promoted standby, a primary fenced with `default_transaction_read_only`.
    """
    settings = connection.get_settings()
    return "on" in (
        getattr(settings, "in_hot_standby", "off"),
        getattr(settings, "default_transaction_read_only", "off"),
    )


async def require_writable(connection: Connection) -> None:
    """The pool's `setup`: a connection to a server that takes no writes is closed, never used.

    The pool then connects anew, and a `DATABASE_URL` naming several hosts
    with `target_session_attrs=read-write` finds the one that takes writes.
    """
    if read_only(connection):
        raise ReadOnlyServer("the PostgreSQL server takes no writes (a standby, or read-only)")


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
