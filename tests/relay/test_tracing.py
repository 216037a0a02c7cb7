"""A batch's Sentry transaction continues the trace of the request that wrote its events."""

from __future__ import annotations

import asyncio

import aiohttp
import asyncpg
import sentry_sdk

from relay.clickhouse import ClickHouseSink
from relay.doorbell import Doorbell
from relay.forwarder import Forwarder, ForwarderConfig
from relay.metrics import RelayMetrics
from relay.outbox import OutboxQueries
from relay.retry import Backoff
from relay.status import RelayStatus
from shared.outbox import OUTBOX_TABLE
from tests.conftest import ClickHouse
from tests.relay.conftest import Outbox, delivered
from tests.sentry import CapturingTransport, sentry_capture  # noqa: F401  (fixture)

TRACE_ID = "771a43a4192642f0b136d5159a501700"
SENTRY_TRACE = f"{TRACE_ID}-b2d4c2b6a5f8e1d3-1"
BAGGAGE = f"sentry-trace_id={TRACE_ID},sentry-sample_rate=1.0,sentry-sampled=true"


async def deliver_one_batch(outbox: Outbox, clickhouse: ClickHouse) -> int:
    pool = await asyncpg.create_pool(outbox.url, min_size=1, max_size=1)
    try:
        async with aiohttp.ClientSession() as session:
            forwarder = Forwarder(
                name="forwarder-test",
                pool=pool,
                sink=ClickHouseSink(
                    session,
                    url=clickhouse.url,
                    user=clickhouse.user,
                    password=clickhouse.password,
                    database=clickhouse.database,
                    timeout=10,
                ),
                queries=OutboxQueries(timestamp_precision=0),
                config=ForwarderConfig(
                    batch_size=100,
                    max_bytes=1024 * 1024,
                    poll_interval=1,
                    recheck_delay=0.05,
                    backoff=Backoff(initial=0.1, maximum=1),
                ),
                doorbell=Doorbell(),
                metrics=RelayMetrics(),
                status=RelayStatus(),
            )
            return await forwarder.deliver_batch()
    finally:
        await pool.close()


def test_the_batch_transaction_continues_the_trace_stored_with_the_event(
    outbox: Outbox,
    clickhouse: ClickHouse,
    sentry_capture: CapturingTransport,  # noqa: F811
) -> None:
    outbox.produce(3)
    with outbox.connect() as connection:
        connection.execute(
            f"UPDATE {OUTBOX_TABLE} SET sentry_trace = %s, baggage = %s"
            f" WHERE id = (SELECT min(id) FROM {OUTBOX_TABLE})",
            (SENTRY_TRACE, BAGGAGE),
        )

    assert asyncio.run(deliver_one_batch(outbox, clickhouse)) == 3
    sentry_sdk.flush()

    assert delivered(clickhouse) == 3
    [transaction] = sentry_capture.transactions()
    assert transaction["contexts"]["trace"]["trace_id"] == TRACE_ID
    assert transaction["contexts"]["trace"]["op"] == "relay.batch"
    assert transaction["contexts"]["trace"]["data"]["linked_trace_ids"] == [TRACE_ID]
    assert [span["op"] for span in transaction["spans"]] == ["db.clickhouse.insert"]


def test_without_trace_context_a_batch_starts_a_trace_of_its_own(
    outbox: Outbox,
    clickhouse: ClickHouse,
    sentry_capture: CapturingTransport,  # noqa: F811
) -> None:
    outbox.produce(2)

    assert asyncio.run(deliver_one_batch(outbox, clickhouse)) == 2
    sentry_sdk.flush()

    [transaction] = sentry_capture.transactions()
    assert transaction["contexts"]["trace"]["trace_id"] != TRACE_ID
    assert transaction["contexts"]["trace"]["data"]["linked_trace_ids"] == []
