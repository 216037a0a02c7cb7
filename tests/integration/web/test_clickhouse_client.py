"""The site's ClickHouse client: a statement the site gave up on does not run on in ClickHouse."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.support.clickhouse import ClickHouse
from tests.support.waiting import free_port
from webapp.core.clickhouse import ClickHouseClient, ClickHouseRefused, ClickHouseUnavailable

# Minutes of work for ClickHouse: only a server-side limit ends it within seconds.
ENDLESS = "SELECT count() FROM numbers(1000000000000) WHERE NOT ignore('{marker}')"


def client_of(clickhouse: ClickHouse, *, timeout: float) -> ClickHouseClient:
    return ClickHouseClient(
        url=clickhouse.url,
        user=clickhouse.user,
        password=clickhouse.password,
        timeout=timeout,
        database=clickhouse.database,
    )


def running(clickhouse: ClickHouse, marker: str) -> int:
    mine = f"query LIKE '%{marker}%' AND query NOT LIKE '%system.processes%'"
    return int(clickhouse.value(f"SELECT count() FROM system.processes WHERE {mine}"))


def test_a_query_past_its_time_is_stopped_by_clickhouse_itself(clickhouse: ClickHouse) -> None:
    marker = uuid.uuid4().hex
    started = time.monotonic()

    with pytest.raises((ClickHouseRefused, ClickHouseUnavailable)):
        client_of(clickhouse, timeout=1.0).execute(ENDLESS.format(marker=marker))

    # The server's own max_execution_time (1 s) ends it; without it the scan runs for minutes.
    deadline = time.monotonic() + 3
    while running(clickhouse, marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running(clickhouse, marker) == 0
    assert time.monotonic() - started < 4


def test_a_refused_statement_names_the_servers_code_but_not_its_message(clickhouse: ClickHouse) -> None:
    with pytest.raises(ClickHouseRefused) as refused:
        client_of(clickhouse, timeout=5).execute("SELECT secret_column_name FROM no_such_table")

    assert refused.value.code == 60
    assert "secret_column_name" not in str(refused.value)


def test_a_server_that_does_not_listen_is_unavailable() -> None:
    client = ClickHouseClient(url=f"http://127.0.0.1:{free_port()}/", user="default", password="", timeout=1)

    with pytest.raises(ClickHouseUnavailable):
        client.value("SELECT 1")
