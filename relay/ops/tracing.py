"""Sentry spans for batches, continuing the traces of the requests that wrote the events.

A batch carries events from many requests. Its transaction continues the trace
of the oldest traced event in it, so a sign-up can be followed from the HTTP
request to the ClickHouse insert; the other traces it carries are listed on the
span (`linked_trace_ids`).
"""

from __future__ import annotations

import contextlib
import random
import sys
from collections.abc import Iterator, Sequence

from relay.core.observer import TraceContext

_MAX_LINKED = 100


def sampled(rng: random.Random | None = None) -> bool:
    """Whether to trace the next batch: Sentry is on and the draw falls within its sample rate.

    Only a traced batch pays for reading its events' trace headers (one more
    statement, and its ids in Python), so the draw is made before claiming.
    Without a DSN nothing imported the SDK (`shared.sentry.init_sentry`), and
    nothing is traced.
    """
    sentry_sdk = sys.modules.get("sentry_sdk")
    if sentry_sdk is None:
        return False
    client = sentry_sdk.get_client()
    if not client.is_active():
        return False
    return (rng or random).random() < float(client.options.get("traces_sample_rate") or 0.0)


@contextlib.contextmanager
def batch_insert(traces: Sequence[TraceContext], *, batch_id: str, events: int, size: int) -> Iterator[None]:
    """A Sentry transaction around one batch delivery, with a child span for the ClickHouse insert."""
    import sentry_sdk  # only a sampled batch gets here: Sentry is on

    headers = {"sentry-trace": traces[0].sentry_trace, "baggage": traces[0].baggage} if traces else {}
    transaction = sentry_sdk.continue_trace(
        headers, op="relay.batch", name="relay.deliver_batch", origin="manual"
    )
    transaction.sampled = True  # the relay drew this batch already (`sampled`)
    with sentry_sdk.start_transaction(transaction):
        transaction.set_data("batch_id", batch_id)
        transaction.set_data("events", events)
        linked = sorted({trace.sentry_trace.split("-")[0] for trace in traces})
        transaction.set_data("linked_trace_ids", linked[:_MAX_LINKED])
        with sentry_sdk.start_span(op="db.clickhouse.insert", name="INSERT INTO event_log") as span:
            span.set_data("bytes", size)
            yield
