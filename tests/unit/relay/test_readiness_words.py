"""What readiness calls each state of PostgreSQL, without a server: the pool is a fake."""

from __future__ import annotations

from typing import Any, cast

import asyncpg
import pytest

from relay.core.clickhouse import ClickHouseSink
from relay.core.observer import Observer
from relay.core.postgres import ReadOnlyServer
from relay.core.readiness import Readiness


class FailingPool:
    """A pool whose every connection fails to come with `error`."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def acquire(self) -> FailingPool:
        return self

    async def __aenter__(self) -> Any:
        raise self.error

    async def __aexit__(self, *exc: object) -> None:
        return None


class AnsweringClickHouse:
    async def ping(self, *, within: float | None = None) -> None:
        return None


def readiness(error: Exception) -> Readiness:
    return Readiness(
        pool=cast(asyncpg.Pool, FailingPool(error)),
        sink=cast(ClickHouseSink, AnsweringClickHouse()),
        observer=Observer(),
        timeout=1.0,
    )


@pytest.mark.parametrize(
    ("error", "word"),
    [
        (ReadOnlyServer("a standby"), "read-only"),
        # Every host of a multi-host URL is a standby or fenced: none takes writes.
        (asyncpg.TargetServerAttributeNotMatched("no host is read-write"), "read-only"),
        (ConnectionRefusedError(), "unavailable"),
    ],
)
async def test_postgres_that_takes_no_writes_reads_read_only_and_one_that_is_down_unavailable(
    error: Exception, word: str
) -> None:
    assert await readiness(error).check() == {"postgres": word, "clickhouse": "ok"}
