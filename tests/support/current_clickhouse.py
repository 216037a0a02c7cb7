"""Current ClickHouse in this process (chdb), for what the 18.16 server cannot show."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

import pytest

from relay.core.clickhouse import insert_query
from relay.core.schema import CURRENT, create_statements


class CurrentClickHouse:
    """A chdb session holding the relay's schema in database `analytics`."""

    def __init__(self, path: str) -> None:
        from chdb.session import Session  # 180 MB of engine: loaded only by the tests that use it

        self._session = Session(path)
        for statement in create_statements(CURRENT, "analytics"):
            self.query(statement)
        self.query("USE analytics")

    def query(self, sql: str, output_format: str = "TSV") -> str:
        """Run a statement; return its answer (TSV unless another format is named)."""
        return str(self._session.query(sql, output_format))

    def count(self, sql: str) -> int:
        """The number a `SELECT count…` answers."""
        return int(self.query(sql).strip())

    def insert(self, body: bytes) -> None:
        """Insert a TSV body exactly as the relay sends it to a server that has `async_insert`."""
        self.query(f"{insert_query(synchronous=True)}\n{body.decode()}")

    def close(self) -> None:
        """Release the session."""
        self._session.close()


@pytest.fixture
def current_clickhouse() -> Iterator[CurrentClickHouse]:
    """An empty current ClickHouse with the relay's schema."""
    with tempfile.TemporaryDirectory() as path:
        server = CurrentClickHouse(path)
        yield server
        server.close()
