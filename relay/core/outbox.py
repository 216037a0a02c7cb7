"""Every SQL statement the relay runs against the outbox tables.

Rows are claimed with `FOR UPDATE SKIP LOCKED`: no cursor, no "last id seen",
so a transaction that commits late is claimed whenever it becomes visible, and
any number of relays share the work without waiting on each other. A claimed
row is deleted in the same transaction that delivered it, so "delivered" and
"gone from the outbox" commit together.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

import asyncpg

from relay.core.archive import ArchiveQueries
from relay.core.observer import TraceContext
from relay.core.postgres import POSTGRES_ERRORS, Connection, copy_out, tsv_columns
from shared.outbox import (
    BACKLOG,
    DEAD_LETTER_TABLE,
    EVENT_COLUMNS,
    EVENT_LOG_COLUMNS,
    OUTBOX_TABLE,
    TRACE_COLUMNS,
    Backlog,
)

_CARRIED_COLUMNS = ", ".join((*EVENT_LOG_COLUMNS, *TRACE_COLUMNS))

# Dead letters, any number in one statement: each keeps every column the event
# had, counts one more time set aside, and records its own error.
DEAD_LETTER = f"""
    WITH refused AS (SELECT * FROM unnest($1::bigint[], $2::text[]) AS r(id, error)),
    moved AS (
        DELETE FROM {OUTBOX_TABLE} USING refused WHERE {OUTBOX_TABLE}.id = refused.id
        RETURNING {", ".join(f"{OUTBOX_TABLE}.{column}" for column in EVENT_COLUMNS)}, refused.error
    )
    INSERT INTO {DEAD_LETTER_TABLE} ({_CARRIED_COLUMNS}, attempts, error, dead_lettered_at)
    SELECT {_CARRIED_COLUMNS}, attempts + 1, error, now() FROM moved
"""
DELETE_IDS = f"DELETE FROM {OUTBOX_TABLE} WHERE id = ANY($1::bigint[])"
# Bytes a TSV line takes besides the payload, type and environment: the id,
# the timestamp, the version, the tabs and the newline.
_LINE_OVERHEAD = 72

# The statements that remove delivered events also note, on their session, when
# the oldest of them happened, to the microsecond (epoch seconds): the TSV a
# `DateTime` column takes has whole seconds, and the lag operators see
# (`relay_event_lag_seconds`) must not read a second too old. `stamp` is one
# row, joined to every output row, so it costs no per-event work.
TAKEN_SETTING = "die_hard.oldest_taken"
STAMP = (
    f"stamp AS (SELECT set_config('{TAKEN_SETTING}',"
    " coalesce(extract(epoch FROM min(event_date_time))::text, ''), false) FROM moved)"
)
OLDEST_TAKEN = f"SELECT nullif(current_setting('{TAKEN_SETTING}', true), '')::float8"


class OutboxQueries:
    """The statements that render events as ClickHouse TSV, for a table of one timestamp precision.

    COPY takes no bind parameters, so limits and ids are written into these
    statements as integers (asyncpg would otherwise spend a round trip
    inlining them). COPY's text escaping is ClickHouse's TSV escaping.
    """

    def __init__(self, *, timestamp_precision: int, archive: bool = False) -> None:
        self.tsv_columns = tsv_columns(timestamp_precision)
        # With the archive on, every statement that removes delivered events
        # also copies them there, in the same statement.
        self.archive = ArchiveQueries(timestamp_precision=timestamp_precision) if archive else None
        self.delete_ids = ArchiveQueries.moving(DELETE_IDS, returning=None) if archive else DELETE_IDS
        # A recently delivered event, to check whether ClickHouse still takes
        # what it took before (see `relay.core.isolation`); none without the archive.
        self.canary = self.archive.canary if self.archive else None

    def _removing(self, delete: str) -> str:
        if self.archive:
            return ArchiveQueries.moving(delete, returning=self.tsv_columns, stamp=STAMP)
        moved = f"moved AS ({delete} RETURNING {', '.join(EVENT_LOG_COLUMNS)})"
        return f"WITH {moved}, {STAMP} SELECT {self.tsv_columns} FROM moved, stamp"

    def batch(self, limit: int, max_bytes: int) -> str:
        """The hot path's statement: claim, delete and render up to `limit` events (about `max_bytes`)."""
        return self._removing(f"DELETE FROM {OUTBOX_TABLE} WHERE id IN ({_claim(limit, max_bytes)})")

    def removal(self, ids: Iterable[int]) -> str:
        """The statement that deletes and renders the events with these outbox ids (already claimed)."""
        id_list = ", ".join(str(int(outbox_id)) for outbox_id in ids)
        return self._removing(f"DELETE FROM {OUTBOX_TABLE} WHERE id IN ({id_list})")

    def traced_ids(self, limit: int, max_bytes: int) -> str:
        """The statement that claims the next batch's ids with the trace headers of their events."""
        return (
            f"SELECT id, sentry_trace, baggage FROM {OUTBOX_TABLE}"
            f" WHERE id IN ({_claim(limit, max_bytes)}) ORDER BY id"
        )

    def lines(self, limit: int, max_bytes: int) -> str:
        """The isolation path's statement: claim up to `limit` events, not deleted, each led by its id."""
        return (
            f"SELECT id, {self.tsv_columns} FROM {OUTBOX_TABLE}"
            f" WHERE id IN ({_claim(limit, max_bytes)}) ORDER BY id"
        )


def _claim(limit: int, max_bytes: int) -> str:
    """The lowest `limit` pending events, locked, cut where their TSV would pass `max_bytes`.

    The first one always comes, whatever its size, so that an oversized event
    is seen and set aside rather than skipped forever.
    """
    return f"""SELECT id FROM (
        SELECT id, size, sum(size) OVER (ORDER BY id) - size AS before
          FROM (SELECT id, octet_length(event_context::text) + octet_length(event_type)
                       + octet_length(environment) + {_LINE_OVERHEAD} AS size
                  FROM {OUTBOX_TABLE} ORDER BY id LIMIT {int(limit)} FOR UPDATE SKIP LOCKED) AS claimed
    ) AS sized WHERE before = 0 OR before + size <= {int(max_bytes)}"""


@dataclass(frozen=True, slots=True)
class PostgresOutbox:
    """The outbox a forwarder works on (`relay.core.forwarder.Outbox`), over a pool of connections."""

    pool: asyncpg.Pool
    queries: OutboxQueries

    @contextlib.asynccontextmanager
    async def claim(self) -> AsyncIterator[PostgresClaim]:
        """One transaction on a pooled connection, committed when the block ends without an error.

        Once it committed, the claim knows when the oldest event it removed
        happened (`happened`), read after the commit, off the events' path.
        """
        async with self.pool.acquire() as connection:
            claim = PostgresClaim(connection, self.queries)
            async with connection.transaction():
                yield claim
            if claim.took:
                try:
                    claim.happened = await connection.fetchval(OLDEST_TAKEN)
                except POSTGRES_ERRORS:  # delivered and committed: only the lag sample is lost
                    claim.happened = None

    async def canary(self) -> bytes | None:
        """A recently delivered event, as TSV, to test ClickHouse with (`None` without the archive)."""
        if self.queries.canary is None:
            return None
        async with self.pool.acquire() as connection:
            body = await copy_out(connection, self.queries.canary)
        return body or None


@dataclass(slots=True)
class PostgresClaim:
    """What a forwarder does inside one outbox transaction (`relay.core.forwarder.Claim`)."""

    connection: Connection
    queries: OutboxQueries
    took: bool = False  # a statement that removes events ran (and noted the oldest's time)
    happened: float | None = None  # epoch seconds of the oldest event removed, once committed

    async def take_batch(
        self, limit: int, max_bytes: int, *, traced: bool = False
    ) -> tuple[bytes, list[TraceContext]]:
        """Claim and delete up to `limit` events (about `max_bytes`); return them as ClickHouse TSV.

        A traced batch also returns the trace headers its events were written
        with, at the price of one more statement.
        """
        self.took = True
        if not traced:
            return await copy_out(self.connection, self.queries.batch(limit, max_bytes)), []
        rows = await self.connection.fetch(self.queries.traced_ids(limit, max_bytes))
        if not rows:
            return b"", []
        body = await copy_out(self.connection, self.queries.removal(row["id"] for row in rows))
        traces = [TraceContext(row["sentry_trace"], row["baggage"]) for row in rows if row["sentry_trace"]]
        return body, traces

    async def claim_lines(self, limit: int, max_bytes: int) -> list[tuple[int, bytes]]:
        """Claim up to `limit` events (about `max_bytes`) without deleting them: (id, TSV line) pairs."""
        data = await copy_out(self.connection, self.queries.lines(limit, max_bytes))
        lines = []
        for line in data.splitlines(keepends=True):
            outbox_id, _, rest = line.partition(b"\t")
            lines.append((int(outbox_id), rest))
        return lines

    async def settle(self, *, delivered: list[int], refused: list[tuple[int, str]]) -> None:
        """Remove delivered events (into the archive when it is on); set refused ones aside, with errors."""
        if delivered:
            await self.connection.execute(self.queries.delete_ids, delivered)
        if refused:
            await self.connection.execute(
                DEAD_LETTER, [outbox_id for outbox_id, _ in refused], [error for _, error in refused]
            )


async def backlog(connection: Connection) -> Backlog:
    """Count pending events and dead letters, and the age of the oldest pending event."""
    row = await connection.fetchrow(BACKLOG)
    assert row is not None, "an aggregate answers one row"
    return Backlog.from_row(row["pending_events"], row["oldest_pending_age_seconds"], row["dead_letters"])
