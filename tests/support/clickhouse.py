"""ClickHouse for tests: a small HTTP client for assertions, and a database per test run.

The test run gets a ClickHouse database of its own, with the relay's schema, on
the server the settings name.
"""

from __future__ import annotations

import asyncio
import os
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import aiohttp
import pytest
from aiochclient import ChClient

from relay.core import schema
from relay.core.user_events import USER_EVENTS_VIEW
from relay.settings import RelaySettings
from shared.outbox import USER_EVENTS_TABLE
from shared.settings import CommonSettings, load


class ClickHouse:
    """A small synchronous ClickHouse HTTP client for assertions."""

    def __init__(
        self, url: str, database: str = "default", user: str = "default", password: str = ""
    ) -> None:
        self.url = url
        self.database = database
        self.user = user
        self.password = password

    def query(
        self,
        sql: str,
        *,
        data: bytes | None = None,
        timeout: float = 30,
        settings: dict[str, str] | None = None,
    ) -> str:
        """Run a statement (with these ClickHouse `settings`); return the answer."""
        params = {"database": self.database, **(settings or {})}
        if data is not None:
            params["query"] = sql
        request = urllib.request.Request(
            f"{self.url}?{urllib.parse.urlencode(params)}",
            data=data if data is not None else sql.encode(),
            headers={"X-ClickHouse-User": self.user, "X-ClickHouse-Key": self.password},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                answer: bytes = response.read()
                return answer.decode()
        except urllib.error.HTTPError as error:
            raise AssertionError(f"ClickHouse refused {sql!r}: {error.read().decode()[:500]}") from error

    def rows(self, sql: str) -> list[list[str]]:
        """Rows of a SELECT as lists of TSV fields."""
        return [line.split("\t") for line in self.query(f"{sql} FORMAT TSV").splitlines()]

    def value(self, sql: str) -> str:
        """The single value a SELECT returns."""
        return self.query(f"{sql} FORMAT TSV").strip()


@pytest.fixture(scope="session")
def common_settings() -> CommonSettings:
    """Connection settings from the environment (and `.env`)."""
    return load(CommonSettings)


@pytest.fixture(scope="session")
def clickhouse_server(common_settings: CommonSettings) -> ClickHouse:
    """The ClickHouse server, seen from its default database, as the user that may create databases."""
    user, password = load(RelaySettings).clickhouse_admin
    return ClickHouse(common_settings.clickhouse_url, user=user, password=password.get_secret_value())


@pytest.fixture(scope="session")
def clickhouse_database(clickhouse_server: ClickHouse) -> Iterator[str]:
    """A ClickHouse database for this test run, dropped at the end."""
    name = f"test_diehard_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    clickhouse_server.query(f"CREATE DATABASE {name}")
    yield name
    clickhouse_server.query(f"DROP DATABASE IF EXISTS {name}")


@pytest.fixture
def clickhouse(clickhouse_server: ClickHouse, clickhouse_database: str) -> ClickHouse:
    """The test run's ClickHouse database with a fresh, empty `event_log` and its view."""
    client = ClickHouse(
        clickhouse_server.url, clickhouse_database, clickhouse_server.user, clickhouse_server.password
    )
    client.query("DROP TABLE IF EXISTS event_log_dedup")
    client.query(f"DROP TABLE IF EXISTS {USER_EVENTS_VIEW}")
    client.query(f"DROP TABLE IF EXISTS {USER_EVENTS_TABLE}")
    client.query("DROP TABLE IF EXISTS event_log")
    migrate(client)
    return client


def migrate(client: ClickHouse) -> None:
    """Apply the relay's schema to the client's database, exactly as `relay migrate` does."""
    # In a thread of its own: the browser tests keep an event loop running in this one.
    with ThreadPoolExecutor(max_workers=1) as thread:
        thread.submit(asyncio.run, _apply_schema(client)).result()


async def _apply_schema(client: ClickHouse) -> None:
    """Create the schema exactly as `relay migrate` does."""
    async with aiohttp.ClientSession() as session:
        server = ChClient(session, url=client.url, user=client.user, password=client.password or None)
        await schema.apply(server, client.database)
