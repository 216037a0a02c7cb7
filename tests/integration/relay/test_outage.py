"""ClickHouse goes away for a while: the relay waits it out, keeps everything, delivers it all after."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiochclient import ChClient

from relay.core import schema
from tests.support.clickhouse import ClickHouse
from tests.support.outbox_tables import Outbox
from tests.support.project import ROOT
from tests.support.relays import RelayFactory, visible
from tests.support.waiting import free_port, wait_until

pytestmark = pytest.mark.slow

SCRIPT = ROOT / "scripts" / "clickhouse.sh"


@dataclass
class DisposableClickHouse:
    """A ClickHouse server of the test's own, which it may stop and start."""

    name: str
    http_port: int
    tcp_port: int

    def start(self) -> None:
        """Start the server and wait until it answers."""
        subprocess.run(
            [
                SCRIPT,
                "start",
                "--name",
                self.name,
                "--http-port",
                str(self.http_port),
                "--tcp-port",
                str(self.tcp_port),
            ],
            check=True,
            capture_output=True,
        )

    def stop(self) -> None:
        """Stop the server (data is kept)."""
        subprocess.run([SCRIPT, "stop", "--name", self.name], check=True, capture_output=True)

    @property
    def client(self) -> ClickHouse:
        """A client for its `default` database."""
        return ClickHouse(f"http://127.0.0.1:{self.http_port}/")


@pytest.fixture
def disposable_clickhouse() -> Iterator[DisposableClickHouse]:
    """A ClickHouse server with the relay's schema in `default`, removed after the test."""
    server = DisposableClickHouse(f"test-{uuid.uuid4().hex[:8]}", free_port(), free_port())
    server.start()
    try:
        asyncio.run(_apply_schema(server.client.url))
        yield server
    finally:
        server.stop()
        subprocess.run(
            ["rm", "-rf", str(SCRIPT.parents[1] / ".services" / "clickhouse" / server.name)], check=True
        )


async def _apply_schema(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        await schema.apply(ChClient(session, url=url), "default")


def test_events_wait_in_the_outbox_while_clickhouse_is_down_and_all_arrive_after(
    outbox: Outbox, disposable_clickhouse: DisposableClickHouse, start_relay: RelayFactory
) -> None:
    relay = start_relay(
        CLICKHOUSE_PORT=disposable_clickhouse.http_port, CLICKHOUSE_DATABASE="default", clickhouse_timeout=2
    )
    outbox.produce(100)
    wait_until(lambda: visible(disposable_clickhouse.client) == 100, timeout=10)

    disposable_clickhouse.stop()
    outbox.produce(250)
    wait_until(lambda: relay.metric("relay_delivery_errors_total", kind="unavailable") >= 3, timeout=15)
    assert outbox.pending() == 250
    assert relay.process.poll() is None
    assert relay.get("/livez")[0] == 200
    status, body = relay.get("/readyz")
    assert status == 503
    assert '"clickhouse": "unavailable"' in body
    assert '"postgres": "ok"' in body

    disposable_clickhouse.start()
    wait_until(lambda: outbox.pending() == 0, timeout=20)
    assert visible(disposable_clickhouse.client) == 350
    assert relay.get("/readyz")[0] == 200
