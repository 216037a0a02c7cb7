"""Reconciliation finds what ClickHouse lost after acknowledging it, and sends it again once."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from pytest_django import Settings

from relay.core import archive
from shared.outbox import ARCHIVE_TABLE, RECONCILE_LOCK
from tests.support.clickhouse import ClickHouse
from tests.support.outbox_tables import Outbox
from tests.support.relays import (
    RelayFactory,
    archive_partitions,
    make_archive_partition,
    run_relay_command,
    visible,
)
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("clean_partitions")]

NOW = datetime.now(UTC)
# Past hours: one three hours ago, one in a month long past, which ClickHouse
# can lose as a whole partition.
RECENT = archive.hour_of(NOW) - timedelta(hours=3) + timedelta(minutes=10)
LONG_AGO = archive.hour_of(NOW) - timedelta(days=70) + timedelta(minutes=20)


def deliver(outbox: Outbox, clickhouse: ClickHouse, start_relay: RelayFactory, **settings: object) -> None:
    """Let a relay deliver everything in the outbox, then stop it."""
    relay = start_relay(**settings)
    wait_until(lambda: outbox.pending() == 0, timeout=30)
    assert relay.stop() == 0


def lose(clickhouse: ClickHouse, event_ids: list[str]) -> None:
    """Delete rows from `event_log` as a mutation, and wait for it to finish."""
    listed = ", ".join(f"toUUID('{event_id}')" for event_id in event_ids)
    clickhouse.query(f"ALTER TABLE event_log DELETE WHERE event_id IN ({listed})")
    pending = f"SELECT count() FROM system.mutations WHERE database = '{clickhouse.database}' AND NOT is_done"
    wait_until(lambda: clickhouse.value(pending) == "0", timeout=30)


def forget(outbox: Outbox, count: int) -> None:
    """Delete `count` delivered events from the archive: ClickHouse then holds events it does not know."""
    with outbox.connect() as connection:
        connection.execute(
            f"DELETE FROM {ARCHIVE_TABLE} WHERE event_id IN (SELECT event_id FROM {ARCHIVE_TABLE} LIMIT %s)",
            (count,),
        )


def an_hour_with_room(room: timedelta) -> datetime:
    """The current hour once at least `room` of it is left: now, or after waiting for the next one."""
    now = datetime.now(UTC)
    left = archive.hour_of(now) + archive.HOUR - now
    if left < room:
        time.sleep(left.total_seconds())
    return archive.hour_of(datetime.now(UTC))


def test_events_clickhouse_lost_are_found_resent_and_then_seen_exactly_once(
    outbox: Outbox, clickhouse: ClickHouse, start_relay: RelayFactory
) -> None:
    make_archive_partition(outbox, LONG_AGO - timedelta(hours=1))  # the archive has been on since then
    recent = outbox.produce(300, event_date_time=RECENT)
    old = outbox.produce(200, event_date_time=LONG_AGO)
    deliver(outbox, clickhouse, start_relay, archive_retention="100d", reconcile_interval="0")
    assert visible(clickhouse) == 500

    lose(clickhouse, recent[:40])  # rows deleted by hand
    clickhouse.query(f"ALTER TABLE event_log DROP PARTITION {LONG_AGO:%Y%m}")  # a month dropped
    assert visible(clickhouse) == 260

    first = run_relay_command(outbox, clickhouse, "reconcile", archive_retention="100d")

    assert first.exit_code == 0, first.stderr[-2000:]
    assert first.summary == {"buckets_checked": 2, "missing": 240, "resent": 240, "extra": 0}
    assert visible(clickhouse) == 500
    assert clickhouse.value("SELECT count() FROM event_log FINAL") == "500"
    assert clickhouse.value("SELECT uniqExact(event_id) FROM event_log") == "500"
    assert {row[0] for row in clickhouse.rows("SELECT toString(event_id) FROM event_log")} == {*recent, *old}

    second = run_relay_command(outbox, clickhouse, "reconcile", archive_retention="100d")

    assert second.exit_code == 0
    assert second.summary == {"buckets_checked": 2, "missing": 0, "resent": 0, "extra": 0}
    assert clickhouse.value("SELECT count() FROM event_log") == "500"  # nothing sent the second time


def test_a_resent_event_keeps_its_columns_byte_for_byte(
    outbox: Outbox, clickhouse: ClickHouse, start_relay: RelayFactory
) -> None:
    make_archive_partition(outbox, RECENT - timedelta(hours=1))
    ids = outbox.produce(5, event_date_time=RECENT)
    deliver(outbox, clickhouse, start_relay, reconcile_interval="0")
    columns = "toString(event_id), event_type, toString(event_date_time), environment, hex(event_context)"
    before = sorted(clickhouse.rows(f"SELECT {columns}, metadata_version FROM event_log"))

    lose(clickhouse, ids)
    result = run_relay_command(outbox, clickhouse, "reconcile")

    assert result.summary["resent"] == 5
    assert sorted(clickhouse.rows(f"SELECT {columns}, metadata_version FROM event_log")) == before


def test_sign_ups_lost_from_clickhouse_this_very_hour_are_found_once_they_settle(
    outbox: Outbox, clickhouse: ClickHouse, start_relay: RelayFactory, client: Client, settings: Settings
) -> None:
    # As an operator tried it: 40 sign-ups, 11 of their events deleted from
    # event_log, `relay reconcile --since 2h` right after.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # events, not hashing
    for number in range(40):
        response = client.post(
            "/api/users/",
            {
                "email": f"person{number}@example.com",
                "password": "c0rrect-horse-battery",
                "first_name": "Ada",
                "last_name": "Lovelace",
            },
            content_type="application/json",
            REMOTE_ADDR=f"10.0.0.{number + 1}",  # one sign-up per address: under the throttle
        )
        assert response.status_code == 201, response.content
    deliver(outbox, clickhouse, start_relay, reconcile_interval="0")
    ids = [row[0] for row in clickhouse.rows("SELECT toString(event_id) FROM event_log ORDER BY event_id")]
    assert len(ids) == 40
    lose(clickhouse, ids[:11])

    too_soon = run_relay_command(outbox, clickhouse, "reconcile", "--since", "2h", reconcile_settle="1h")
    time.sleep(1.5)  # the settling time below
    result = run_relay_command(outbox, clickhouse, "reconcile", "--since", "2h", reconcile_settle="1s")

    assert too_soon.summary == {"buckets_checked": 0, "missing": 0, "resent": 0, "extra": 0}
    assert result.exit_code == 0, result.stderr[-2000:]
    assert {**result.summary, "buckets_checked": None} == {
        "buckets_checked": None,
        "missing": 11,
        "resent": 11,
        "extra": 0,
    }
    assert result.summary["buckets_checked"] in (1, 2)  # the sign-ups may straddle two hours
    assert visible(clickhouse) == 40


def test_a_running_relay_finds_what_clickhouse_lost_this_very_hour_within_an_interval_and_the_settling_time(
    outbox: Outbox, clickhouse: ClickHouse, start_relay: RelayFactory
) -> None:
    interval, settle = 1.0, 2.0
    hour = an_hour_with_room(timedelta(seconds=60))  # the test ends before the hour does
    relay = start_relay(reconcile_interval=interval, reconcile_settle=f"{settle}s")
    ids = outbox.produce(50)  # dated now
    wait_until(lambda: outbox.pending() == 0, timeout=30)
    wait_until(lambda: visible(clickhouse) == 50, timeout=15)

    lose(clickhouse, ids[:12])
    wait_until(  # counted once the run that resent them has ended; 10: a busy machine
        lambda: relay.metric("relay_reconcile_resent_events_total") >= 12, timeout=interval + settle + 10
    )

    assert archive.hour_of(datetime.now(UTC)) == hour  # found while their hour is still open
    assert relay.metric("relay_reconcile_missing_events_total") == 12
    assert relay.metric("relay_reconcile_resent_events_total") == 12
    assert visible(clickhouse) == 50
    assert clickhouse.value("SELECT count() FROM event_log") == "50"  # the lost ones sent once


def test_events_clickhouse_has_but_the_archive_does_not_are_counted_and_kept(
    outbox: Outbox, clickhouse: ClickHouse, start_relay: RelayFactory
) -> None:
    make_archive_partition(outbox, RECENT - timedelta(hours=1))
    outbox.produce(10, event_date_time=RECENT)
    deliver(outbox, clickhouse, start_relay, reconcile_interval="0")
    forget(outbox, 3)

    result = run_relay_command(outbox, clickhouse, "reconcile")

    assert result.exit_code == 0
    assert result.summary == {"buckets_checked": 1, "missing": 0, "resent": 0, "extra": 3}
    assert visible(clickhouse) == 10  # never deleted


def test_a_running_relay_reports_the_extras_its_last_reconciliation_found_without_adding_them_up(
    outbox: Outbox, clickhouse: ClickHouse, start_relay: RelayFactory
) -> None:
    make_archive_partition(outbox, RECENT - timedelta(hours=1))
    outbox.produce(10, event_date_time=RECENT)
    deliver(outbox, clickhouse, start_relay, reconcile_interval="0")
    forget(outbox, 3)

    relay = start_relay(reconcile_interval="0.3")
    wait_until(lambda: len(relay.log_events("reconcile_finished")) >= 3, timeout=15)

    assert relay.metric("relay_reconcile_extra_events") == 3  # found on every run, reported once
    assert visible(clickhouse) == 10


def test_a_window_past_the_retention_is_reported_as_not_checked_rather_than_missing(
    outbox: Outbox, clickhouse: ClickHouse, start_relay: RelayFactory
) -> None:
    three_days_ago = archive.hour_of(NOW) - timedelta(days=3)
    make_archive_partition(outbox, three_days_ago)  # deliveries of three days ago were archived...
    outbox.produce(20, event_date_time=three_days_ago + timedelta(minutes=5))
    deliver(outbox, clickhouse, start_relay, archive_retention="100d", reconcile_interval="0")
    with outbox.connect() as connection:
        connection.execute(
            f"UPDATE {ARCHIVE_TABLE} SET delivered_at = %s", (three_days_ago + timedelta(minutes=6),)
        )
    assert archive.partition_name(three_days_ago) in archive_partitions(outbox)
    clickhouse.query("TRUNCATE TABLE event_log")  # ...and ClickHouse lost them since

    # ...but a relay keeping one day has expired them: that hour is no longer known.
    deliver(outbox, clickhouse, start_relay, archive_retention="24h", reconcile_interval="0")
    assert archive.partition_name(three_days_ago) not in archive_partitions(outbox)
    result = run_relay_command(outbox, clickhouse, "reconcile", "--since", "4d", archive_retention="24h")

    assert result.exit_code == 0
    assert result.summary == {"buckets_checked": 0, "missing": 0, "resent": 0, "extra": 0}
    assert "past the archive's retention" in result.stdout


def test_a_reconcile_with_no_archive_says_it_cannot_compare_and_fails(
    outbox: Outbox, clickhouse: ClickHouse
) -> None:
    result = run_relay_command(outbox, clickhouse, "reconcile")

    assert result.exit_code == 1
    assert "The archive holds no deliveries" in result.stdout
    assert result.summary == {"buckets_checked": 0, "missing": 0, "resent": 0, "extra": 0}


def test_running_relays_reconcile_by_themselves_one_at_a_time(
    outbox: Outbox, clickhouse: ClickHouse, start_relay: RelayFactory
) -> None:
    make_archive_partition(outbox, RECENT - timedelta(hours=1))
    ids = outbox.produce(100, event_date_time=RECENT)
    deliver(outbox, clickhouse, start_relay, reconcile_interval="0")
    lose(clickhouse, ids[:25])

    with outbox.connect() as holder:
        # Someone else reconciles: the relays skip their turns and repair nothing.
        locked = holder.execute("SELECT pg_try_advisory_lock(%s)", (RECONCILE_LOCK,)).fetchone()
        assert locked == (True,)
        relays = [start_relay(reconcile_interval="0.5") for _ in range(2)]
        wait_until(lambda: all(relay.log_events("reconcile_skipped") for relay in relays), timeout=15)
        assert visible(clickhouse) == 75
    # The holder's session ended: its lock is gone.

    wait_until(lambda: visible(clickhouse) == 100, timeout=15)
    wait_until(
        lambda: all(relay.metric("relay_reconcile_last_success_timestamp_seconds") > 0 for relay in relays),
        timeout=15,
    )
    assert sum(relay.metric("relay_reconcile_missing_events_total") for relay in relays) == 25
    assert sum(relay.metric("relay_reconcile_resent_events_total") for relay in relays) == 25
    assert clickhouse.value("SELECT count() FROM event_log") == "100"  # sent once, not once per relay
    status = relays[0].status()["reconcile"]
    assert status["last_success_at"] is not None
    assert status["last_result"]["missing"] in (0, 25)
