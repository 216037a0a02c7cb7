"""ClickHouse goes away for a while: the relay waits it out, keeps everything, delivers it all after."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiochclient import ChClient

from relay.core import schema
from tests.support.clickhouse import ClickHouse
from tests.support.outbox_tables import Outbox
from tests.support.processes import Children
from tests.support.relays import RelayFactory, visible
from tests.support.scratch_clickhouse import ScratchClickHouse
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def disposable_clickhouse(tmp_path: Path) -> Iterator[ScratchClickHouse]:
    """A ClickHouse server with the relay's schema in `default`, removed after the test."""
    children = Children()
    server = ScratchClickHouse(children, log=tmp_path / "clickhouse.log", name=f"test-{uuid.uuid4().hex[:8]}")
    try:
        server.start()
        asyncio.run(_apply_schema(server.url))
        yield server
    finally:
        server.remove()
        children.stop_all()


async def _apply_schema(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        await schema.apply(ChClient(session, url=url), "default")


def test_events_wait_in_the_outbox_while_clickhouse_is_down_and_all_arrive_after(
    outbox: Outbox, disposable_clickhouse: ScratchClickHouse, start_relay: RelayFactory
) -> None:
    relay = start_relay(
        CLICKHOUSE_PORT=disposable_clickhouse.http_port, CLICKHOUSE_DATABASE="default", clickhouse_timeout=2
    )
    outbox.produce(100)
    wait_until(lambda: visible(ClickHouse(disposable_clickhouse.url)) == 100, timeout=10)

    disposable_clickhouse.stop()
    outbox.produce(250)
    wait_until(lambda: relay.metric("relay_delivery_errors_total", kind="unavailable") >= 3, timeout=15)
    assert outbox.pending() == 250
    assert relay.process.poll() is None
    assert relay.get("/livez")[0] == 200
    # /readyz answers from its last probe round, at most 1.5 s old.
    wait_until(lambda: relay.get("/readyz")[0] == 503, timeout=5)
    status, body = relay.get("/readyz")
    assert status == 503
    assert '"clickhouse": "unavailable"' in body
    assert '"postgres": "ok"' in body

    disposable_clickhouse.start()
    wait_until(lambda: outbox.pending() == 0, timeout=20)
    assert visible(ClickHouse(disposable_clickhouse.url)) == 350
    wait_until(lambda: relay.get("/readyz")[0] == 200, timeout=5)
