"""The outbox trigger wakes a listening relay on commit, at most once per debounce window."""

from __future__ import annotations

import time

import psycopg
import pytest

from shared.outbox import NOTIFY_CHANNEL, NOTIFY_DEBOUNCE_MS
from tests.support.outbox_tables import Outbox

pytestmark = pytest.mark.slow


def listen(outbox: Outbox) -> psycopg.Connection:
    connection = outbox.connect()
    connection.execute(f"LISTEN {NOTIFY_CHANNEL}")
    return connection


def received(listener: psycopg.Connection, *, within: float) -> int:
    """Notifications that arrive within `within` seconds."""
    return sum(1 for _ in listener.notifies(timeout=within))


def test_a_listening_connection_is_notified_when_an_event_commits(outbox: Outbox) -> None:
    with listen(outbox) as listener:
        outbox.produce(1)

        [notification] = list(listener.notifies(timeout=2, stop_after=1))

    assert notification.channel == NOTIFY_CHANNEL


def test_a_rolled_back_event_notifies_nobody(outbox: Outbox) -> None:
    with listen(outbox) as listener, outbox.connect(autocommit=False) as producer:
        outbox.produce(1, connection=producer)
        producer.rollback()

        assert received(listener, within=0.5) == 0


def test_a_burst_of_commits_from_many_sessions_notifies_at_most_once_per_window(outbox: Outbox) -> None:
    producers = [outbox.connect() for _ in range(4)]
    try:
        with listen(outbox) as listener:
            started = time.monotonic()
            for round_ in range(50):
                outbox.produce(1, connection=producers[round_ % len(producers)])
            elapsed = time.monotonic() - started

            notifications = received(listener, within=0.5)
    finally:
        for producer in producers:
            producer.close()

    windows = elapsed / (NOTIFY_DEBOUNCE_MS / 1000) + 1
    assert 1 <= notifications <= windows + 1
    assert notifications < 50
