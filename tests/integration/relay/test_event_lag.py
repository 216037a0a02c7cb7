"""The lag operators see runs from the event's own time to the microsecond, whatever ClickHouse keeps."""

from __future__ import annotations

import time

import pytest

from tests.support.clickhouse import ClickHouse
from tests.support.outbox_tables import Outbox
from tests.support.relays import RelayFactory, delivered
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


def sleep_until_late_in_a_second(fraction: float = 0.85) -> None:
    """Wait until the wall clock's fraction of a second reaches `fraction` (and is not past 0.9)."""
    while not fraction <= time.time() % 1 < 0.9:
        time.sleep(0.005)


def test_an_event_delivered_in_tens_of_milliseconds_shows_a_lag_well_under_half_a_second(
    outbox: Outbox, clickhouse: ClickHouse, start_relay: RelayFactory
) -> None:
    # The premise: this ClickHouse keeps whole seconds, so the timestamp the
    # relay sends it is up to a second older than the event.
    column = "SELECT type FROM system.columns WHERE table = 'event_log' AND name = 'event_date_time'"
    relay = start_relay(poll_interval=30)
    wait_until(lambda: relay.status()["listener_connected"], timeout=10)
    assert clickhouse.value(f"{column} AND database = currentDatabase()").startswith("DateTime(")

    # Late in a second: a lag read from the truncated timestamp would be at least 0.85 s.
    sleep_until_late_in_a_second()
    committed = time.time()
    outbox.produce(1)  # stamped and committed after `committed`, then the relay is woken
    wait_until(lambda: delivered(clickhouse) == 1, timeout=5, interval=0.005)
    wait_until(lambda: relay.metric("relay_event_lag_seconds_count") == 1, timeout=5, interval=0.005)
    # The relay stamps its acknowledgement after ClickHouse's answer reaches it,
    # which may be a moment after the row shows in a query: the bound from
    # outside is the moment the metric is seen.
    recorded = time.time() - committed

    lag = relay.metric("relay_event_lag_seconds_sum")
    assert 0 <= lag <= recorded  # never more than the time seen from outside
    assert relay.metric("relay_event_lag_seconds_bucket", le="0.5") == 1
