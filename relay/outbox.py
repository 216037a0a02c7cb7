"""Every SQL statement the relay runs against the outbox tables.

Rows are claimed with `FOR UPDATE SKIP LOCKED`: no cursor, no "last id seen",
so a transaction that commits late is claimed whenever it becomes visible, and
any number of relays share the work without waiting on each other. A claimed
row is deleted in the same transaction that delivered it, so "delivered" and
"gone from the outbox" commit together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from shared.outbox import (
    ARCHIVE_TABLE,
    DEAD_LETTER_TABLE,
    EVENT_COLUMNS,
    EVENT_LOG_COLUMNS,
    OUTBOX_TABLE,
    WAKEUP_TABLE,
)

_EVENT_COLUMNS = ", ".join(EVENT_COLUMNS)
_LOG_COLUMNS = ", ".join(EVENT_LOG_COLUMNS)


def _timestamp(precision: int) -> str:
    # ClickHouse's DateTime parser takes no fraction; DateTime64(6) takes microseconds.
    fmt = "YYYY-MM-DD HH24:MI:SS.US" if precision == 6 else "YYYY-MM-DD HH24:MI:SS"
    return f"to_char(event_date_time AT TIME ZONE 'UTC', '{fmt}')"


def tsv_columns(precision: int) -> str:
    """The event columns rendered as ClickHouse TSV fields, in `event_log`'s order."""
    columns = [_timestamp(precision) if name == "event_date_time" else name for name in EVENT_LOG_COLUMNS]
    return ", ".join(columns)


def _archiving(delete: str, output: str | None) -> str:
    """`delete` (a DELETE without RETURNING) that also copies the rows into the archive.

    One statement: the rows leave the outbox and enter the archive in the same
    transaction, still with no per-event round trip. `output` is what the
    statement returns (none when `None`).
    """
    moved = f"moved AS ({delete} RETURNING {_LOG_COLUMNS})"
    archive = f"INSERT INTO {ARCHIVE_TABLE} ({_LOG_COLUMNS}) SELECT {_LOG_COLUMNS} FROM moved"
    if output is None:
        return f"WITH {moved} {archive}"
    return f"WITH {moved}, archived AS ({archive}) SELECT {output} FROM moved"


@dataclass(frozen=True, slots=True)
class TraceContext:
    """Sentry trace headers an event was written with."""

    sentry_trace: str
    baggage: str


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """How much is waiting, and for how long."""

    pending_events: int
    oldest_pending_age_seconds: float
    oldest_pending_at: datetime | None
    dead_letters: int


# Bytes a TSV line takes besides the payload, type and environment: the id,
# the timestamp, the version, the tabs and the newline.
_LINE_OVERHEAD = 72
# The lowest `{limit}` pending events, locked, cut where their TSV would pass
# `{max_bytes}` (the first one always comes, whatever its size, so that an
# oversized event is seen and set aside rather than skipped forever).
_CLAIM = f"""SELECT id FROM (
        SELECT id, size, sum(size) OVER (ORDER BY id) - size AS before
          FROM (SELECT id, octet_length(event_context::text) + octet_length(event_type)
                       + octet_length(environment) + {_LINE_OVERHEAD} AS size
                  FROM {OUTBOX_TABLE} ORDER BY id LIMIT {{limit}} FOR UPDATE SKIP LOCKED) AS claimed
    ) AS sized WHERE before = 0 OR before + size <= {{max_bytes}}"""


class OutboxQueries:
    """The relay's statements, specialised once for the table's timestamp precision."""

    def __init__(self, *, timestamp_precision: int, archive: bool = False) -> None:
        columns = tsv_columns(timestamp_precision)
        # COPY takes no bind parameters: `{limit}` and `{ids}` are filled with
        # integers by the functions below (asyncpg would otherwise spend a round
        # trip inlining them).
        claim = _CLAIM
        # The hot path: claim, delete and render as ClickHouse TSV in one
        # statement; COPY's text escaping is ClickHouse's TSV escaping.
        # With the archive on, the same statement also copies the rows there.
        take_batch = f"DELETE FROM {OUTBOX_TABLE} WHERE id IN ({claim})"
        take_ids = f"DELETE FROM {OUTBOX_TABLE} WHERE id = ANY('{{{{{{ids}}}}}}'::bigint[])"
        delete_ids = f"DELETE FROM {OUTBOX_TABLE} WHERE id = ANY($1::bigint[])"
        # A recently delivered event, to check whether ClickHouse still takes
        # what it took before (see `relay.isolation`).
        self.canary: str | None = None
        if archive:
            self.canary = (
                f"SELECT {columns} FROM {ARCHIVE_TABLE}"
                " WHERE delivered_at > now() - interval '1 hour' LIMIT 1"
            )
            self.take_batch = _archiving(take_batch, columns)
            self.take_ids = _archiving(take_ids, columns)
            self.delete_ids = _archiving(delete_ids, None)
        else:
            self.take_batch = f"{take_batch} RETURNING {columns}"
            self.take_ids = f"{take_ids} RETURNING {columns}"
            self.delete_ids = delete_ids
        self.claim_traced = (
            f"SELECT id, sentry_trace, baggage FROM {OUTBOX_TABLE} WHERE id IN ({claim}) ORDER BY id"
        )
        # The isolation path: the same rows, each line prefixed with its id.
        self.claim_lines = f"SELECT id, {columns} FROM {OUTBOX_TABLE} WHERE id IN ({claim}) ORDER BY id"
        # Many refused events in one statement: each keeps every column it had,
        # counts one more time set aside, and records its own error.
        self.dead_letter = f"""
            WITH refused AS (SELECT * FROM unnest($1::bigint[], $2::text[]) AS r(id, error)),
            moved AS (
                DELETE FROM {OUTBOX_TABLE} USING refused WHERE {OUTBOX_TABLE}.id = refused.id
                RETURNING {", ".join(f"{OUTBOX_TABLE}.{c}" for c in EVENT_COLUMNS)}, refused.error
            )
            INSERT INTO {DEAD_LETTER_TABLE} ({_EVENT_COLUMNS}, error, dead_lettered_at)
            SELECT {_EVENT_COLUMNS.replace("attempts", "attempts + 1")}, error, now() FROM moved
        """


async def copy_out(connection: asyncpg.Connection, query: str) -> bytes:
    """Run `COPY (query) TO STDOUT` and return its text output."""
    chunks: list[bytes] = []

    async def collect(chunk: bytes) -> None:
        chunks.append(chunk)

    await connection.copy_from_query(query, output=collect)
    return b"".join(chunks)


async def take_batch(
    connection: asyncpg.Connection, queries: OutboxQueries, limit: int, max_bytes: int
) -> bytes:
    """Claim and delete up to `limit` events (about `max_bytes` of TSV); return them as ClickHouse TSV."""
    return await copy_out(connection, queries.take_batch.format(limit=int(limit), max_bytes=int(max_bytes)))


async def take_traced_batch(
    connection: asyncpg.Connection, queries: OutboxQueries, limit: int, max_bytes: int
) -> tuple[bytes, list[TraceContext]]:
    """Like `take_batch`, also returning the trace headers of the claimed events."""
    rows = await connection.fetch(queries.claim_traced.format(limit=int(limit), max_bytes=int(max_bytes)))
    if not rows:
        return b"", []
    ids = ",".join(str(int(row["id"])) for row in rows)
    body = await copy_out(connection, queries.take_ids.format(ids=ids))
    traces = [TraceContext(row["sentry_trace"], row["baggage"]) for row in rows if row["sentry_trace"]]
    return body, traces


async def claim_lines(
    connection: asyncpg.Connection, queries: OutboxQueries, limit: int, max_bytes: int
) -> list[tuple[int, bytes]]:
    """Claim up to `limit` events (about `max_bytes`) without deleting them: (id, TSV line) pairs."""
    data = await copy_out(connection, queries.claim_lines.format(limit=int(limit), max_bytes=int(max_bytes)))
    lines = []
    for line in data.splitlines(keepends=True):
        outbox_id, _, rest = line.partition(b"\t")
        lines.append((int(outbox_id), rest))
    return lines


async def delete(connection: asyncpg.Connection, queries: OutboxQueries, ids: list[int]) -> None:
    """Remove delivered events (into the archive when it is on)."""
    if ids:
        await connection.execute(queries.delete_ids, ids)


async def dead_letter(
    connection: asyncpg.Connection, queries: OutboxQueries, refused: list[tuple[int, str]]
) -> None:
    """Move events to the dead-letter table, each with the error that refused it: (outbox id, error)."""
    if refused:
        await connection.execute(
            queries.dead_letter, [outbox_id for outbox_id, _ in refused], [error for _, error in refused]
        )


RESTORE_WAKEUP = (
    f"INSERT INTO {WAKEUP_TABLE} (id, notified_at) VALUES (1, '-infinity') ON CONFLICT DO NOTHING"
)
STATS = f"""
    SELECT
        (SELECT count(*) FROM {OUTBOX_TABLE}) AS pending_events,
        (SELECT event_date_time FROM {OUTBOX_TABLE} ORDER BY id LIMIT 1) AS oldest_pending_at,
        (SELECT count(*) FROM {DEAD_LETTER_TABLE}) AS dead_letters,
        now() AS now
"""


async def stats(connection: asyncpg.Connection) -> OutboxStats:
    """Count pending events and dead letters, and the age of the oldest pending event.

    Also puts the wake-up trigger's single row back if it went missing (a
    TRUNCATE): without it every producer notifies, which costs them throughput.
    """
    await connection.execute(RESTORE_WAKEUP)
    row = await connection.fetchrow(STATS)
    oldest = row["oldest_pending_at"]
    age = (row["now"] - oldest).total_seconds() if oldest is not None else 0.0
    return OutboxStats(
        pending_events=row["pending_events"],
        oldest_pending_age_seconds=max(age, 0.0),
        oldest_pending_at=oldest,
        dead_letters=row["dead_letters"],
    )
