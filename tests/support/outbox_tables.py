"""The outbox tables of the test database, for tests whose other side runs in another process."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import psycopg
import pytest

from shared.events import Envelope, UserCreated
from shared.outbox import DEAD_LETTER_TABLE, EVENT_LOG_COLUMNS, OUTBOX_TABLE, WAKE_RELAY


@dataclass
class Outbox:
    """The outbox tables of the test database, written and read with plain SQL."""

    url: str

    def connect(self, *, autocommit: bool = True) -> psycopg.Connection:
        """A new connection to the test database (autocommit unless told otherwise)."""
        return psycopg.connect(self.url, autocommit=autocommit)

    def value(self, sql: str) -> Any:
        """The single value a query answers."""
        with self.connect() as connection:
            row = connection.execute(sql).fetchone()
        assert row is not None, f"no row from {sql!r}"
        return row[0]

    def produce(
        self,
        count: int,
        *,
        connection: psycopg.Connection | None = None,
        wake: bool = True,
        **overrides: object,
    ) -> list[str]:
        """Write `count` sign-up events in one transaction; return their event ids.

        Like the site, the writer then wakes the relay (`WAKE_RELAY`) once the
        events have committed: on an autocommit connection, unless `wake` is
        false (a writer that never rings). On a connection in a transaction
        nothing is committed yet, so nothing rings. `overrides` replace
        columns of every event (`metadata_version=-1` makes events ClickHouse
        refuses).
        """
        envelopes = [
            Envelope.wrap(
                UserCreated(
                    user_id=n, email=f"person{n}@example.com", first_name="Ada", last_name="Lovelace"
                ),
                environment="Local",
            )
            for n in range(count)
        ]
        rows = [tuple({**envelope.columns(), **overrides}.values()) for envelope in envelopes]
        own = connection is None
        connection = connection or self.connect()
        try:
            with (
                connection.cursor() as cursor,
                cursor.copy(f"COPY {OUTBOX_TABLE} ({', '.join(EVENT_LOG_COLUMNS)}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
            if wake and connection.autocommit:
                connection.execute(WAKE_RELAY)
        finally:
            if own:
                connection.close()
        return [str(envelope.event_id) for envelope in envelopes]

    def pending(self) -> int:
        """Events still in the outbox."""
        return int(self.value(f"SELECT count(*) FROM {OUTBOX_TABLE}"))

    def dead_letters(self) -> list[tuple[str, str, int]]:
        """(event_id, error, attempts) of every dead letter."""
        with self.connect() as connection:
            rows = connection.execute(f"SELECT event_id::text, error, attempts FROM {DEAD_LETTER_TABLE}")
            return list(rows.fetchall())


@pytest.fixture
def outbox(transactional_db: None) -> Outbox:
    """The test database's outbox, committed for real (relays in other processes see it)."""
    from django.db import connection

    database = connection.settings_dict
    credentials = quote(database["USER"], safe="") + ":" + quote(database["PASSWORD"] or "", safe="")
    address = f"{database['HOST'] or 'localhost'}:{database['PORT'] or 5432}"
    url = f"postgres://{credentials}@{address}/{database['NAME']}"
    return Outbox(url)
