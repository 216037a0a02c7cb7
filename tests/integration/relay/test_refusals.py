"""What ClickHouse refuses: a few bad events are set aside, a changed ClickHouse is waited out."""

from __future__ import annotations

import re
import time

import psycopg
import pytest

from shared.events import Envelope, UserCreated
from shared.outbox import EVENT_CONTEXT_MAX_BYTES, OUTBOX_TABLE
from tests.support.clickhouse import ClickHouse
from tests.support.outbox_tables import Outbox
from tests.support.relays import RelayFactory, visible
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

# `event_log` as it is, but with a payload column no event fits: ClickHouse
# refuses every row, old or new, with a data error (131, too large).
NARROWED = """
CREATE TABLE event_log (
    event_id UUID, event_type String, event_date_time DateTime('UTC'), environment String,
    event_context FixedString(4), metadata_version UInt64
) ENGINE = ReplacingMergeTree PARTITION BY toYYYYMM(event_date_time)
ORDER BY (event_type, event_date_time, event_id)
"""


def test_a_systemic_refusal_keeps_every_event_in_the_outbox_until_clickhouse_takes_them_again(
    outbox: Outbox, clickhouse: ClickHouse, start_relay: RelayFactory
) -> None:
    relay = start_relay(batch_size=100)
    outbox.produce(50)
    wait_until(lambda: visible(clickhouse) == 50, timeout=15)

    clickhouse.query("RENAME TABLE event_log TO event_log_kept")
    clickhouse.query(NARROWED)
    outbox.produce(300)
    wait_until(lambda: relay.metric("relay_systemic_refusal") == 1, timeout=20)
    status, body = relay.get("/readyz")
    time.sleep(1.0)  # a few more rounds of refusals

    assert status == 503
    assert '"clickhouse_accepts_events": "refusing"' in body
    assert relay.log_events("clickhouse_refuses_all_events")
    assert outbox.dead_letters() == []
    assert outbox.pending() == 300

    clickhouse.query("DROP TABLE event_log")
    clickhouse.query("RENAME TABLE event_log_kept TO event_log")
    wait_until(lambda: outbox.pending() == 0, timeout=30)

    assert outbox.dead_letters() == []
    assert visible(clickhouse) == 350
    assert clickhouse.value("SELECT uniqExact(event_id) FROM event_log") == "350"
    wait_until(lambda: relay.metric("relay_systemic_refusal") == 0, timeout=5)
    assert relay.get("/readyz")[0] == 200


def test_one_percent_poison_among_100k_events_is_set_aside_and_the_rest_delivered_once(
    outbox: Outbox, clickhouse: ClickHouse, start_relay: RelayFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    poisoned = write_events(outbox, 100_000, poison_every=100)
    started = time.monotonic()
    relay = start_relay(wait=False)
    wait_until(lambda: outbox.pending() == 0, timeout=150, interval=0.2)
    seconds = time.monotonic() - started

    dead = outbox.dead_letters()
    assert sorted(event_id for event_id, _, _ in dead) == sorted(poisoned)
    assert all("Code: 27" in error and attempts == 1 for _, error, attempts in dead)
    errors = "\n".join(error for _, error, _ in dead)
    # No error quotes a good event (ClickHouse's message shows the rows around the refused one).
    assert set(re.findall(UUID, errors)) <= set(poisoned)
    assert all(int(number) % 100 == 50 for number in re.findall(r"person(\d+)@example\.com", errors))
    # Refused for one cause, they are set aside together: a few inserts per batch, not one each.
    isolations = relay.log_events("batch_isolated")
    assert isolations
    assert sum(int(entry["inserts"]) for entry in isolations) <= 3 * len(isolations)
    # And each of the two forwarders fails a poisoned batch whole only once:
    # while poison keeps coming, the next batch is isolated straight away.
    failed_whole = [entry for entry in relay.log_events("batch_failed") if entry["error_kind"] == "rejected"]
    assert len(failed_whole) <= 2 < len(isolations)
    assert visible(clickhouse) == 99_000
    assert clickhouse.value("SELECT uniqExact(event_id) FROM event_log") == "99000"
    assert relay.metric("relay_dead_letters_total") == 1000
    with capsys.disabled():
        print(
            f"\n1% poison: 100,000 events in {seconds:.2f} s"
            f" ({100_000 / seconds:,.0f} events/s, start-up included)"
        )


def test_an_event_over_the_byte_cap_is_dead_lettered_with_its_reason_and_the_rest_flow(
    outbox: Outbox, clickhouse: ClickHouse, start_relay: RelayFactory
) -> None:
    outbox.produce(40)
    [huge] = outbox.produce(1, event_context='{"note":"' + "x" * 10_000 + '"}')
    outbox.produce(40)
    relay = start_relay(batch_max_bytes=4096)

    wait_until(lambda: outbox.pending() == 0, timeout=15)

    [(event_id, error, _)] = outbox.dead_letters()
    assert event_id == huge
    assert "Event too large" in error
    assert "RELAY_BATCH_MAX_BYTES (4096)" in error
    assert visible(clickhouse) == 80
    assert all(int(line["bytes"]) <= 4096 for line in relay.log_events("batch_delivered"))
    assert len(relay.log_events("batch_delivered")) >= 3  # 80 events of ~150 bytes, 4 KiB at a time


def test_the_outbox_refuses_a_payload_over_its_size_limit_in_the_producers_transaction(
    outbox: Outbox,
) -> None:
    with pytest.raises(psycopg.errors.CheckViolation, match="event_context_size"):
        outbox.produce(1, event_context='"' + "x" * EVENT_CONTEXT_MAX_BYTES + '"')
    assert outbox.pending() == 0


def write_events(outbox: Outbox, count: int, *, poison_every: int) -> list[str]:
    """Sign-up events in one COPY, every `poison_every`-th one refused by ClickHouse; the poisoned ids."""
    poisoned = []
    with (
        outbox.connect() as connection,
        connection.cursor() as cursor,
        cursor.copy(
            f"COPY {OUTBOX_TABLE} (event_id, event_type, event_date_time, environment,"
            " event_context, metadata_version) FROM STDIN"
        ) as copy,
    ):
        for number in range(count):
            envelope = Envelope.wrap(
                UserCreated(
                    user_id=number, email=f"person{number}@example.com", first_name="Ada", last_name="L"
                ),
                environment="Local",
            )
            bad = number % poison_every == poison_every // 2
            if bad:
                poisoned.append(str(envelope.event_id))
            copy.write_row(
                (
                    str(envelope.event_id),
                    envelope.event_type,
                    envelope.event_date_time,
                    envelope.environment,
                    envelope.event_context,
                    -1 if bad else envelope.metadata_version,
                )
            )
    return poisoned
