"""A batch's Sentry transaction continues the trace of the request that wrote its events."""

from __future__ import annotations

import asyncio

import sentry_sdk

from shared.outbox import OUTBOX_TABLE
from tests.support.clickhouse import ClickHouse
from tests.support.outbox_tables import Outbox
from tests.support.relays import deliver_one_batch, delivered
from tests.support.sentry import SentrySink

TRACE_ID = "771a43a4192642f0b136d5159a501700"
SENTRY_TRACE = f"{TRACE_ID}-b2d4c2b6a5f8e1d3-1"
BAGGAGE = f"sentry-trace_id={TRACE_ID},sentry-sample_rate=1.0,sentry-sampled=true"


def test_the_batch_transaction_continues_the_trace_stored_with_the_event(
    outbox: Outbox,
    clickhouse: ClickHouse,
    sentry_capture: SentrySink,
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
    sentry_capture: SentrySink,
) -> None:
    outbox.produce(2)

    assert asyncio.run(deliver_one_batch(outbox, clickhouse)) == 2
    sentry_sdk.flush()

    [transaction] = sentry_capture.transactions()
    assert transaction["contexts"]["trace"]["trace_id"] != TRACE_ID
    assert transaction["contexts"]["trace"]["data"]["linked_trace_ids"] == []
