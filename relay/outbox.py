"""Every SQL statement the relay runs against the outbox tables.

Rows are claimed with `FOR UPDATE SKIP LOCKED`: no cursor, no "last id seen",
so a transaction that commits late is claimed whenever it becomes visible, and
any number of relays share the work without waiting on each other. A claimed
row is deleted in the same transaction that delivered it, so "delivered" and
"gone from the outbox" commit together.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from shared.outbox import (
    BACKLOG,
    DEAD_LETTER_TABLE,
    EVENT_LOG_COLUMNS,
    OUTBOX_TABLE,
    RESTORE_WAKEUP_ROW,
    TRACE_COLUMNS,
    Backlog,
)

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

_CARRIED_COLUMNS = ", ".join((*EVENT_LOG_COLUMNS, *TRACE_COLUMNS))

# A dead letter keeps every column the event had, counts one more time set
# aside, and records ClickHouse's error.
DEAD_LETTER = f"""
    WITH moved AS (DELETE FROM {OUTBOX_TABLE} WHERE id = $1 RETURNING {_CARRIED_COLUMNS}, attempts)
    INSERT INTO {DEAD_LETTER_TABLE} ({_CARRIED_COLUMNS}, attempts, error, dead_lettered_at)
    SELECT {_CARRIED_COLUMNS}, attempts + 1, $2, now() FROM moved
"""
CLAIM_TRACED = (
    f"SELECT id, sentry_trace, baggage FROM {OUTBOX_TABLE} ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED"
)
DELETE_IDS = f"DELETE FROM {OUTBOX_TABLE} WHERE id = ANY($1::bigint[])"

# A connection of its own or one a pool lends: every statement runs on either.
type Connection = asyncpg.Connection | PoolConnectionProxy


@dataclass(frozen=True, slots=True)
class TraceContext:
    """Sentry trace headers an event was written with."""

    sentry_trace: str
    baggage: str


class OutboxQueries:
    """The statements that render events as ClickHouse TSV, for a table of one timestamp precision.

    COPY takes no bind parameters, so limits and ids are written into these
    statements as integers (asyncpg would otherwise spend a round trip
    inlining them). COPY's text escaping is ClickHouse's TSV escaping.
    """

    def __init__(self, *, timestamp_precision: int) -> None:
        # ClickHouse's DateTime parser takes no fraction; DateTime64(6) takes microseconds.
        fmt = "YYYY-MM-DD HH24:MI:SS.US" if timestamp_precision == 6 else "YYYY-MM-DD HH24:MI:SS"
        timestamp = f"to_char(event_date_time AT TIME ZONE 'UTC', '{fmt}')"
        self.tsv_columns = ", ".join(
            timestamp if name == "event_date_time" else name for name in EVENT_LOG_COLUMNS
        )

    def take_batch(self, limit: int) -> str:
        """The hot path: claim, delete and render up to `limit` events in one statement."""
        return f"DELETE FROM {OUTBOX_TABLE} WHERE id IN ({_claim(limit)}) RETURNING {self.tsv_columns}"

    def take_ids(self, ids: Iterable[int]) -> str:
        """Delete and render the events with these outbox ids (already claimed)."""
        id_list = ", ".join(str(int(outbox_id)) for outbox_id in ids)
        return f"DELETE FROM {OUTBOX_TABLE} WHERE id IN ({id_list}) RETURNING {self.tsv_columns}"

    def claim_lines(self, limit: int) -> str:
        """The isolation path: claim up to `limit` events without deleting them, each line led by its id."""
        return f"SELECT id, {self.tsv_columns} FROM {OUTBOX_TABLE} WHERE id IN ({_claim(limit)}) ORDER BY id"


def _claim(limit: int) -> str:
    return f"SELECT id FROM {OUTBOX_TABLE} ORDER BY id LIMIT {int(limit)} FOR UPDATE SKIP LOCKED"


async def copy_out(connection: Connection, query: str) -> bytes:
    """Run `COPY (query) TO STDOUT` and return its text output."""
    chunks: list[bytes] = []

    async def collect(chunk: bytes) -> None:
        chunks.append(chunk)

    await connection.copy_from_query(query, output=collect)
    return b"".join(chunks)


async def take_batch(
    connection: Connection, queries: OutboxQueries, limit: int, *, traced: bool = False
) -> tuple[bytes, list[TraceContext]]:
    """Claim and delete up to `limit` events; return them as ClickHouse TSV.

    A traced batch also returns the trace headers its events were written with,
    at the price of one more statement.
    """
    if not traced:
        return await copy_out(connection, queries.take_batch(limit)), []
    rows = await connection.fetch(CLAIM_TRACED, limit)
    if not rows:
        return b"", []
    body = await copy_out(connection, queries.take_ids(row["id"] for row in rows))
    traces = [TraceContext(row["sentry_trace"], row["baggage"]) for row in rows if row["sentry_trace"]]
    return body, traces


async def claim_lines(connection: Connection, queries: OutboxQueries, limit: int) -> list[tuple[int, bytes]]:
    """Claim up to `limit` events without deleting them: (id, TSV line) pairs."""
    data = await copy_out(connection, queries.claim_lines(limit))
    lines = []
    for line in data.splitlines(keepends=True):
        outbox_id, _, rest = line.partition(b"\t")
        lines.append((int(outbox_id), rest))
    return lines


async def delete(connection: Connection, ids: list[int]) -> None:
    """Remove delivered events."""
    if ids:
        await connection.execute(DELETE_IDS, ids)


async def dead_letter(connection: Connection, outbox_id: int, error: str) -> None:
    """Move one event to the dead-letter table with the error that refused it."""
    await connection.execute(DEAD_LETTER, outbox_id, error)


async def backlog(connection: Connection) -> Backlog:
    """Count pending events and dead letters, and the age of the oldest pending event.

    Also puts the wake-up trigger's single row back if it went missing.
    """
    await connection.execute(RESTORE_WAKEUP_ROW)
    row = await connection.fetchrow(BACKLOG)
    assert row is not None, "an aggregate answers one row"
    return Backlog.from_row(row["pending_events"], row["oldest_pending_age_seconds"], row["dead_letters"])
