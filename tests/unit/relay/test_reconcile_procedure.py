"""The one reconciliation procedure skips a turn another relay takes and reports a failure, not raises it.

What it finds and repairs is proved against the real databases in
`tests/integration/relay/test_reconcile.py`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

from relay.core.archive import ArchiveQueries
from relay.core.clickhouse import ClickHouseSink
from relay.core.observer import Observer, Reconciled
from relay.core.postgres import Connection
from relay.maintenance.reconcile import Failed, Reconciler, Skipped


@dataclass
class Heard(Observer):
    results: list[Reconciled] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def reconciled(self, result: Reconciled) -> None:
        self.results.append(result)

    def reconcile_failed(self, kind: str) -> None:
        self.failures.append(kind)


class LockHeldElsewhere:
    """A connection on which the reconciliation lock is always taken."""

    async def fetchval(self, query: str, *args: Any) -> bool:
        assert "pg_try_advisory_lock" in query
        return False


def reconciler(connect: Any, heard: Heard) -> Reconciler:
    return Reconciler(
        connect=connect,
        sink=cast(ClickHouseSink, None),  # never reached in these tests
        queries=ArchiveQueries(timestamp_precision=0),
        batch_size=100,
        settle=timedelta(minutes=1),
        observer=heard,
    )


async def test_a_turn_another_relay_is_taking_is_skipped_and_reports_nothing() -> None:
    @contextlib.asynccontextmanager
    async def connect() -> AsyncIterator[Connection]:
        yield cast(Connection, LockHeldElsewhere())

    heard = Heard()

    result = await reconciler(connect, heard).once()

    assert result == Skipped()
    assert heard.results == []
    assert heard.failures == []


async def test_postgres_going_away_is_reported_as_a_failed_run() -> None:
    def connect() -> contextlib.AbstractAsyncContextManager[Connection]:
        raise ConnectionRefusedError("PostgreSQL is down")

    heard = Heard()

    result = await reconciler(connect, heard).once(wait=True)

    assert result == Failed("ConnectionRefusedError")
    assert heard.failures == ["ConnectionRefusedError"]
    assert heard.results == []
