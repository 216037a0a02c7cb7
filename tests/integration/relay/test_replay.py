"""`relay replay` fills an empty or rebuilt ClickHouse from the archive: the window asked for, once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from relay.core import archive
from tests.support.clickhouse import ClickHouse
from tests.support.outbox_tables import Outbox
from tests.support.relays import RelayFactory, make_archive_partition, run_relay_command, visible
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("clean_partitions")]

NOW = datetime.now(UTC)
EARLIER = NOW - timedelta(hours=5)  # before the window
INSIDE = NOW - timedelta(hours=3)
LATER = NOW - timedelta(hours=1)  # after the window
WINDOW = (
    "--since",
    (NOW - timedelta(hours=4)).isoformat(),
    "--until",
    (NOW - timedelta(hours=2)).isoformat(),
)


def deliver_and_lose_everything(
    outbox: Outbox, clickhouse: ClickHouse, start_relay: RelayFactory, **events: list[str]
) -> None:
    """Deliver what is in the outbox, then empty `event_log`, as a new or rebuilt cluster would be."""
    relay = start_relay(reconcile_interval="0")
    wait_until(lambda: outbox.pending() == 0, timeout=30)
    assert relay.stop() == 0
    assert visible(clickhouse) == sum(len(ids) for ids in events.values())
    clickhouse.query("TRUNCATE TABLE event_log")
    assert visible(clickhouse) == 0


def ids_in_clickhouse(clickhouse: ClickHouse) -> set[str]:
    return {row[0] for row in clickhouse.rows("SELECT toString(event_id) FROM event_log_dedup")}


def test_a_replay_sends_the_windows_events_again_and_nothing_else_once_however_often_it_runs(
    outbox: Outbox, clickhouse: ClickHouse, start_relay: RelayFactory
) -> None:
    make_archive_partition(outbox, EARLIER - timedelta(hours=1))  # the archive has been on since then
    before = outbox.produce(30, event_date_time=EARLIER)
    inside = outbox.produce(250, event_date_time=INSIDE)
    after = outbox.produce(20, event_date_time=LATER)
    deliver_and_lose_everything(outbox, clickhouse, start_relay, before=before, inside=inside, after=after)

    result = run_relay_command(outbox, clickhouse, "replay", *WINDOW, "--batch-size", "100")

    assert result.exit_code == 0, result.stderr[-2000:]
    assert result.summary["events"] == 250
    assert result.summary["inserts"] == 3  # batches of at most 100 events
    assert result.summary["complete"] is True
    assert ids_in_clickhouse(clickhouse) == set(inside)
    # Progress as it goes: a line per delivery hour that held events, with the running total.
    progress = [
        json.loads(line)
        for line in (result.stdout + result.stderr).splitlines()
        if line.startswith("{") and '"replay_progress"' in line
    ]
    assert progress
    assert sum(line["events"] for line in progress) == progress[-1]["total"] == 250

    again = run_relay_command(outbox, clickhouse, "replay", *WINDOW)

    assert again.summary["events"] == 250
    assert visible(clickhouse) == 250
    assert clickhouse.value("SELECT uniqExact(event_id) FROM event_log") == "250"


def test_a_replay_can_be_narrowed_to_event_types(
    outbox: Outbox, clickhouse: ClickHouse, start_relay: RelayFactory
) -> None:
    make_archive_partition(outbox, EARLIER - timedelta(hours=1))
    sign_ups = outbox.produce(15, event_date_time=INSIDE)
    sign_ins = outbox.produce(25, event_date_time=INSIDE, event_type="user_logged_in")
    deliver_and_lose_everything(outbox, clickhouse, start_relay, sign_ups=sign_ups, sign_ins=sign_ins)

    result = run_relay_command(outbox, clickhouse, "replay", *WINDOW, "--event-type", "user_logged_in")

    assert result.summary["events"] == 25
    assert result.summary["event_types"] == ["user_logged_in"]
    assert ids_in_clickhouse(clickhouse) == set(sign_ins)


def test_a_window_older_than_the_archive_is_replayed_as_far_as_it_goes_and_said_to_be_incomplete(
    outbox: Outbox, clickhouse: ClickHouse, start_relay: RelayFactory
) -> None:
    # No partition from before the window: the archive has kept deliveries only since this hour.
    started = archive.hour_of(datetime.now(UTC))
    inside = outbox.produce(10, event_date_time=INSIDE)
    deliver_and_lose_everything(outbox, clickhouse, start_relay, inside=inside)

    result = run_relay_command(outbox, clickhouse, "replay", *WINDOW)

    assert result.exit_code == 1
    assert result.summary["complete"] is False
    assert result.summary["archive_covers_since"] in {
        started.isoformat(),
        archive.hour_of(datetime.now(UTC)).isoformat(),  # the hour turned meanwhile
    }
    assert result.summary["events"] == 10  # what it still holds is sent all the same
    assert "The archive holds deliveries only from" in result.stdout
