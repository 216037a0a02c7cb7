"""The relay carries outbox events into ClickHouse: quickly, once, whatever the timing."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from shared.outbox import EVENT_LOG_COLUMNS, OUTBOX_TABLE
from tests.support.clickhouse import ClickHouse
from tests.support.faulty_proxy import FaultyProxy
from tests.support.outbox_tables import Outbox
from tests.support.relays import RelayFactory, delivered, visible
from tests.support.waiting import free_port, wait_until

pytestmark = pytest.mark.slow


def test_events_in_the_outbox_arrive_in_event_log_once_and_leave_the_outbox(
    outbox: Outbox, clickhouse: ClickHouse, start_relay: RelayFactory
) -> None:
    ids = outbox.produce(1200)
    start_relay(batch_size=500)

    wait_until(lambda: delivered(clickhouse) == 1200, timeout=15)
    # ClickHouse acknowledges a batch before its outbox transaction commits.
    wait_until(lambda: outbox.pending() == 0, timeout=5)
    assert clickhouse.value("SELECT uniqExact(event_id) FROM event_log") == "1200"
    assert set(ids) == {row[0] for row in clickhouse.rows("SELECT toString(event_id) FROM event_log")}


def test_rows_arrive_with_the_contract_columns_unchanged(
    outbox: Outbox, clickhouse: ClickHouse, start_relay: RelayFactory
) -> None:
    # JSON escapes (a tab, a backslash), a quote and non-ASCII: bytes COPY and TSV both escape.
    context = '{"email":"tab\\there@example.com","first_name":"Zoë","last_name":"O\'Brien\\\\"}'
    with outbox.connect() as connection:
        connection.execute(
            f"INSERT INTO {OUTBOX_TABLE} ({', '.join(EVENT_LOG_COLUMNS)})"
            " VALUES (%s, 'user_created', '2026-01-02 03:04:05.678+00', 'Local', %s, 1)",
            ("6f1c1a8e-3a3c-4c1e-9d35-0a4f0b1d2c3e", context),
        )
    start_relay()

    wait_until(lambda: delivered(clickhouse) == 1, timeout=15)
    [row] = clickhouse.rows(
        "SELECT toString(event_id), event_type, toString(event_date_time), environment, hex(event_context),"
        " metadata_version FROM event_log"
    )
    assert row == [
        "6f1c1a8e-3a3c-4c1e-9d35-0a4f0b1d2c3e",
        "user_created",
        "2026-01-02 03:04:05",
        "Local",
        context.encode().hex().upper(),
        "1",
    ]


def test_a_notification_wakes_an_idle_relay_within_a_second(
    outbox: Outbox, clickhouse: ClickHouse, start_relay: RelayFactory
) -> None:
    relay = start_relay(poll_interval=30)
    wait_until(lambda: relay.status()["listener_connected"], timeout=10)

    outbox.produce(1)
    started = time.monotonic()
    wait_until(lambda: delivered(clickhouse) == 1, timeout=1.0, interval=0.02)

    assert time.monotonic() - started < 1.0
    assert relay.metric("relay_wakeups_total", cause="poll") == 0


def test_events_arrive_within_the_poll_interval_when_nobody_wakes_the_relay(
    outbox: Outbox, clickhouse: ClickHouse, start_relay: RelayFactory
) -> None:
    relay = start_relay(poll_interval=1)
    wait_until(lambda: relay.status()["listener_connected"], timeout=10)

    outbox.produce(3, wake=False)  # a writer that never rings (a script, psql)

    wait_until(lambda: delivered(clickhouse) == 3, timeout=5)  # a few poll intervals
    assert relay.metric("relay_wakeups_total", cause="notify") == 0


def test_a_transaction_that_began_first_and_commits_last_is_still_delivered(
    outbox: Outbox, clickhouse: ClickHouse, start_relay: RelayFactory
) -> None:
    start_relay(poll_interval=0.2)
    slow = outbox.connect(autocommit=False)
    try:
        [late_id] = outbox.produce(1, connection=slow)  # takes the lower id, not yet committed
        outbox.produce(5)
        wait_until(lambda: delivered(clickhouse) == 5, timeout=10)
        slow.commit()
    finally:
        slow.close()

    wait_until(lambda: delivered(clickhouse) == 6, timeout=10)
    assert clickhouse.value(f"SELECT count() FROM event_log WHERE event_id = toUUID('{late_id}')") == "1"


def test_the_relay_reconnects_its_listener_after_the_connection_is_terminated(
    outbox: Outbox, clickhouse: ClickHouse, start_relay: RelayFactory
) -> None:
    relay = start_relay(poll_interval=60)
    wait_until(lambda: relay.status()["listener_connected"], timeout=10)

    terminated = outbox.value(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE application_name = 'die-hard-relay-listener' AND datname = current_database()"
    )
    assert terminated == 1
    outbox.produce(4)  # written while the listener is down or reconnecting

    wait_until(lambda: delivered(clickhouse) == 4, timeout=10)
    wait_until(lambda: relay.metric("relay_listener_reconnects_total") >= 1, timeout=10)
    outbox.produce(2)  # and the new connection hears notifications again (the poll is 60 s)
    wait_until(lambda: delivered(clickhouse) == 6, timeout=5)


def test_three_relays_at_once_deliver_20000_events_exactly_once(
    outbox: Outbox, clickhouse: ClickHouse, start_relay: RelayFactory
) -> None:
    relays = [start_relay(batch_size=250, concurrency=2) for _ in range(3)]
    writers = [threading.Thread(target=outbox.produce, args=(2000,)) for _ in range(10)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()

    wait_until(lambda: outbox.pending() == 0, timeout=60)
    wait_until(lambda: delivered(clickhouse) >= 20_000, timeout=10)
    assert delivered(clickhouse) == 20_000  # none delivered a row another had, not even once
    assert clickhouse.value("SELECT uniqExact(event_id) FROM event_log") == "20000"
    shares = [int(relay.status()["events_delivered"]) for relay in relays]
    assert sum(shares) == 20_000
    assert sum(1 for share in shares if share > 0) >= 2, f"the work was not shared: {shares}"


def test_a_poison_event_is_dead_lettered_with_its_error_and_the_others_arrive(
    outbox: Outbox, clickhouse: ClickHouse, start_relay: RelayFactory
) -> None:
    outbox.produce(300)
    [poison] = outbox.produce(1, metadata_version=-1)  # UInt64 cannot hold it: ClickHouse refuses the row
    outbox.produce(300)
    relay = start_relay(batch_size=1000)

    wait_until(lambda: delivered(clickhouse) == 600, timeout=15)
    wait_until(lambda: outbox.pending() == 0, timeout=5)
    [(event_id, error, attempts)] = outbox.dead_letters()
    assert event_id == poison
    assert "Code: 27" in error
    assert attempts == 1
    assert relay.metric("relay_dead_letters_total") == 1
    assert relay.metric("relay_delivery_errors_total", kind="rejected") >= 1


def test_a_flood_of_poison_events_costs_about_one_insert_per_poisoned_event(
    outbox: Outbox, clickhouse: ClickHouse, start_relay: RelayFactory
) -> None:
    bad = outbox.produce(600, metadata_version=-1)
    outbox.produce(400)
    # One forwarder, so one batch holds the refused head and the good tail: the
    # batch's own last event tells poison from a changed ClickHouse, and no copy
    # of an event ClickHouse already holds is sent to find out. (Two forwarders
    # may split off a batch of refused events only, which is then checked against
    # a line ClickHouse took before: a copy the deduplicated view hides.)
    relay = start_relay(batch_size=5000, concurrency=1)

    wait_until(lambda: outbox.pending() == 0, timeout=60)
    assert delivered(clickhouse) == 400
    assert sorted(event_id for event_id, _, _ in outbox.dead_letters()) == sorted(bad)
    # The summary line comes just after the commit that emptied the outbox.
    wait_until(
        lambda: sum(int(entry["dead_lettered"]) for entry in relay.log_events("batch_isolated")) == 600,
        timeout=5,
    )
    isolations = relay.log_events("batch_isolated")
    # ClickHouse names the row it stopped at: each refusal costs one insert, not a bisection.
    assert sum(int(entry["inserts"]) for entry in isolations) <= 600 + 20


def test_a_relay_killed_between_clickhouse_ack_and_commit_leaves_no_visible_duplicate(
    outbox: Outbox, clickhouse: ClickHouse, start_relay: RelayFactory
) -> None:
    outbox.produce(1000)
    doomed = start_relay(batch_size=400, concurrency=1, fault="kill_after_ack", wait=False)
    assert doomed.wait(timeout=15) == -9
    assert delivered(clickhouse) == 400  # ClickHouse has the batch...
    assert outbox.pending() == 1000  # ...and the outbox still has it too

    start_relay(batch_size=400)
    wait_until(lambda: outbox.pending() == 0, timeout=15)

    assert delivered(clickhouse) == 1400  # the first batch went twice
    assert visible(clickhouse) == 1000  # but analysts see every event once
    assert clickhouse.value("SELECT uniqExact(event_id) FROM event_log_dedup") == "1000"


def test_sigterm_during_a_batch_finishes_it_and_exits_0_within_the_grace_period(
    outbox: Outbox, clickhouse: ClickHouse, start_relay: RelayFactory
) -> None:
    outbox.produce(500)
    relay = start_relay(batch_size=500, concurrency=1, fault="pause_after_ack:1.5", shutdown_grace=10)
    wait_until(lambda: relay.log_events("fault_pause_after_ack"), timeout=10)

    started = time.monotonic()
    exit_code = relay.stop()

    assert exit_code == 0
    assert time.monotonic() - started < 10
    assert outbox.pending() == 0
    assert visible(clickhouse) == 500


def test_sigterm_past_the_grace_period_rolls_the_batch_back_and_loses_nothing(
    outbox: Outbox, clickhouse: ClickHouse, start_relay: RelayFactory
) -> None:
    outbox.produce(500)
    relay = start_relay(batch_size=500, concurrency=1, fault="pause_after_ack:30", shutdown_grace=0.5)
    wait_until(lambda: relay.log_events("fault_pause_after_ack"), timeout=10)

    assert relay.stop() == 0
    assert outbox.pending() == 500  # rolled back: still there for the next relay

    start_relay(batch_size=500)
    wait_until(lambda: outbox.pending() == 0, timeout=15)
    assert visible(clickhouse) == 500


@pytest.fixture
def slow_hang_up_proxy(outbox: Outbox) -> Iterator[str]:
    """The test database behind a proxy that passes a server's last words at once, its hang-up 3 s later."""
    address = urlsplit(outbox.url)
    proxy = FaultyProxy(upstream_port=address.port or 5432, port=free_port(), eof_delay=3.0)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(proxy.start(), loop).result(timeout=5)
    try:
        yield urlunsplit(
            address._replace(netloc=f"{address.netloc.rsplit('@', 1)[0]}@127.0.0.1:{proxy.port}")
        )
    finally:
        asyncio.run_coroutine_threadsafe(proxy.close(), loop).result(timeout=5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=5)
        loop.close()


def test_a_relay_whose_connection_is_terminated_mid_batch_retries_instead_of_exiting(
    outbox: Outbox, clickhouse: ClickHouse, start_relay: RelayFactory, slow_hang_up_proxy: str
) -> None:
    outbox.produce(300)
    relay = start_relay(
        DATABASE_URL=slow_hang_up_proxy,
        batch_size=300,
        concurrency=1,
        fault="pause_after_ack:1.5",
    )
    wait_until(lambda: relay.log_events("fault_pause_after_ack"), timeout=10)

    # The batch is in ClickHouse; the session that must commit it is killed. The
    # relay reads the server's "terminating connection" before the socket closes.
    with outbox.connect() as connection:
        terminated = connection.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = 'die-hard-relay' AND state = 'idle in transaction'"
            " AND datname = current_database()"
        ).fetchone()[0]  # type: ignore[index]
    assert terminated == 1

    wait_until(lambda: relay.process.poll() is not None or outbox.pending() == 0, timeout=30)
    assert relay.process.poll() is None, relay.log()[-3000:]
    assert relay.metric("relay_delivery_errors_total", kind="postgres") >= 1
    assert delivered(clickhouse) == 600  # once before the commit failed, once after
    assert visible(clickhouse) == 300


def test_a_relay_keeps_looking_while_events_arrive_without_notifications(
    outbox: Outbox, clickhouse: ClickHouse, start_relay: RelayFactory
) -> None:
    relay = start_relay(poll_interval=60)  # a poll cannot help within this test
    wait_until(lambda: relay.status()["listener_connected"], timeout=10)
    silent = outbox.connect()
    try:
        outbox.produce(1)  # one writer rings once: the relay wakes and follows up
        for _ in range(40):  # then 40 silent events, 25 ms apart: longer than the quiet period in all
            outbox.produce(1, connection=silent, wake=False)
            time.sleep(0.025)
    finally:
        silent.close()

    wait_until(lambda: delivered(clickhouse) == 41, timeout=5)
    assert relay.metric("relay_wakeups_total", cause="poll") == 0


def test_an_idle_relay_stops_its_follow_up_looks(
    outbox: Outbox, clickhouse: ClickHouse, start_relay: RelayFactory
) -> None:
    relay = start_relay(poll_interval=60)
    wait_until(lambda: relay.status()["listener_connected"], timeout=10)
    outbox.produce(1)
    wait_until(lambda: delivered(clickhouse) == 1, timeout=5)
    time.sleep(0.5)  # five quiet periods (two debounce windows each) with nothing to find

    settled = relay.metric("relay_wakeups_total", cause="recheck")
    time.sleep(1.0)  # a hundred recheck intervals

    assert settled > 0  # it did follow the wake-up with short looks,
    assert relay.metric("relay_wakeups_total", cause="recheck") == settled  # and then stopped
