"""The site wakes a listening relay after events commit, at most once per debounce window per process.

The wake-up is sent after the commit, outside the business transaction: the
outbox itself has no trigger, so writing an event costs a transaction nothing
for the wake-up.
"""

from __future__ import annotations

import time

import psycopg
import pytest
from django.db import connection, transaction

from shared.events import UserLoggedIn
from shared.outbox import NOTIFY_CHANNEL, NOTIFY_DEBOUNCE_MS, OUTBOX_TABLE, WakeUpDebounce
from tests.support.outbox_tables import Outbox
from webapp.outbox import wakeup
from webapp.outbox.client import EventLogClient

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def fresh_debounce(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts outside any window, as a process that has not rung yet."""
    monkeypatch.setattr(wakeup, "_debounce", WakeUpDebounce())


def listen(outbox: Outbox) -> psycopg.Connection:
    listener = outbox.connect()
    listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
    return listener


def received(listener: psycopg.Connection, *, within: float) -> int:
    """Notifications that arrive within `within` seconds."""
    return sum(1 for _ in listener.notifies(timeout=within))


def publish_one(number: int = 1) -> None:
    with transaction.atomic():
        EventLogClient.from_settings().publish(UserLoggedIn(user_id=number))


def test_a_listening_relay_is_notified_once_the_event_commits(outbox: Outbox) -> None:
    with listen(outbox) as listener:
        with transaction.atomic():
            EventLogClient.from_settings().publish(UserLoggedIn(user_id=1))
            assert received(listener, within=0.3) == 0  # nothing before the commit

        [notification] = list(listener.notifies(timeout=2, stop_after=1))

    assert notification.channel == NOTIFY_CHANNEL


def test_a_rolled_back_event_notifies_nobody(outbox: Outbox) -> None:
    with listen(outbox) as listener:
        with transaction.atomic():
            EventLogClient.from_settings().publish(UserLoggedIn(user_id=1))
            transaction.set_rollback(True)  # the business change failed

        assert received(listener, within=0.5) == 0


def test_a_burst_of_commits_notifies_at_most_once_per_window(outbox: Outbox) -> None:
    with listen(outbox) as listener:
        started = time.monotonic()
        for number in range(50):
            publish_one(number)
        elapsed = time.monotonic() - started

        notifications = received(listener, within=0.5)

    windows = elapsed / (NOTIFY_DEBOUNCE_MS / 1000) + 1
    assert 1 <= notifications <= windows + 1
    assert notifications < 50


def test_the_first_commit_after_a_quiet_window_rings_again(outbox: Outbox) -> None:
    with listen(outbox) as listener:
        publish_one(1)
        assert received(listener, within=0.3) == 1
        time.sleep(NOTIFY_DEBOUNCE_MS / 1000)

        publish_one(2)

        assert received(listener, within=0.5) == 1


def test_writing_an_event_fires_no_trigger_in_the_business_transaction(outbox: Outbox) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal", [OUTBOX_TABLE]
        )
        assert cursor.fetchall() == []
