"""Producers and the history they write: which events surely exist, which might.

Like a Jepsen client, a producer records the outcome of every transaction:
`ok` (COMMIT answered: the events exist and must reach analysts exactly once),
`failed` (the transaction never reached COMMIT: the events must never appear)
or `indeterminate` (the connection broke during COMMIT: the events may or may
not exist, and either is correct). The checker holds the relay to exactly that.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import asyncpg

from shared.events import Envelope, Event, UserCreated, UserLoggedIn, UserLoginFailed
from shared.outbox import OUTBOX_TABLE

CONNECTION_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)

INSERT = f"""
    INSERT INTO {OUTBOX_TABLE} (event_id, event_type, event_date_time, environment, event_context,
                                metadata_version)
    SELECT id, type, at, environment, context::json, version
    FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::int[])
        AS event (id, type, at, environment, context, version)
"""


@dataclass
class History:
    """What the producers know about the events they wrote."""

    ok: set[uuid.UUID] = field(default_factory=set)
    indeterminate: set[uuid.UUID] = field(default_factory=set)
    failed: int = 0
    # Events ClickHouse must refuse: they belong in the dead-letter table.
    poison: set[uuid.UUID] = field(default_factory=set)

    @property
    def attempted(self) -> int:
        return len(self.ok) + len(self.indeterminate) + self.failed


def make_events(count: int, rng: random.Random, *, poison_share: float = 0.0) -> list[tuple[Envelope, bool]]:
    """`count` events like the site's, each with whether it is poison."""
    events = []
    for number in range(count):
        draw = rng.random()
        event: Event
        if draw < 0.4:
            event = UserCreated(
                user_id=number, email=f"chaos{number}@example.com", first_name="Ada", last_name="O'Hara\t"
            )
        elif draw < 0.9:
            event = UserLoggedIn(user_id=number, ip_address="10.0.0.1")
        else:
            event = UserLoginFailed(user_id=number, email=f"chaos{number}@example.com", ip_address="10.0.0.2")
        envelope = Envelope.wrap(event, environment="Local")
        events.append((envelope, rng.random() < poison_share))
    return events


def _columns(events: Iterable[tuple[Envelope, bool]]) -> list[list[Any]]:
    ids: list[Any] = []
    types: list[Any] = []
    times: list[Any] = []
    environments: list[Any] = []
    contexts: list[Any] = []
    versions: list[Any] = []
    for envelope, poison in events:
        ids.append(envelope.event_id)
        types.append(envelope.event_type)
        times.append(envelope.event_date_time)
        environments.append(envelope.environment)
        contexts.append(envelope.event_context)
        # UInt64 cannot hold -1: ClickHouse refuses the row, PostgreSQL does not.
        versions.append(-1 if poison else envelope.metadata_version)
    return [ids, types, times, environments, contexts, versions]


@dataclass
class Producer:
    """Writes events to the outbox at a paced rate, reconnecting through outages."""

    dsn: str
    history: History
    rng: random.Random
    per_transaction: int = 10
    poison_share: float = 0.0
    # When given, each event is dated this long ago (one drawn per event) instead of now.
    ages: tuple[timedelta, ...] = ()
    written: int = 0
    errors: int = 0
    last_error: str = ""
    _connection: asyncpg.Connection | None = None

    async def run(self, *, total: int, rate: float, stop: asyncio.Event | None = None) -> None:
        """Write `total` events at about `rate` per second (sooner if `stop` is set)."""
        started = time.monotonic()
        while self.written < total and not (stop and stop.is_set()):
            due = started + self.written / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            count = min(self.per_transaction, total - self.written)
            events = make_events(count, self.rng, poison_share=self.poison_share)
            if self.ages:
                events = [
                    (
                        replace(
                            envelope, event_date_time=envelope.event_date_time - self.rng.choice(self.ages)
                        ),
                        poison,
                    )
                    for envelope, poison in events
                ]
            await self.write(events)
        await self.close()

    async def write(self, events: list[tuple[Envelope, bool]], *, hold: float = 0.0) -> bool:
        """Write events in one transaction (kept open `hold` seconds first); record the outcome."""
        self.written += len(events)
        ids = {envelope.event_id for envelope, _ in events}
        self.history.poison |= {envelope.event_id for envelope, is_poison in events if is_poison}
        committing = False
        try:
            connection = await self._connect()
            transaction = connection.transaction()
            await transaction.start()
            await connection.execute(INSERT, *_columns(events))
            if hold:
                await asyncio.sleep(hold)
            committing = True
            await transaction.commit()
        except CONNECTION_ERRORS as error:
            self.errors += 1
            self.last_error = f"{type(error).__name__}: {error}"
            await self.close()
            if committing:
                self.history.indeterminate |= ids
            else:
                self.history.failed += len(ids)
            await asyncio.sleep(0.05 + self.rng.random() * 0.1)
            return False
        self.history.ok |= ids
        return True

    async def _connect(self) -> asyncpg.Connection:
        if self._connection is None or self._connection.is_closed():
            self._connection = await asyncpg.connect(self.dsn, timeout=5, command_timeout=30)
        return self._connection

    async def close(self) -> None:
        """Close the connection; a broken one is dropped without a goodbye."""
        if self._connection is None:
            return
        connection, self._connection = self._connection, None
        try:
            await asyncio.wait_for(connection.close(), timeout=2)
        except CONNECTION_ERRORS:
            connection.terminate()
        except asyncio.CancelledError:
            connection.terminate()
            raise
