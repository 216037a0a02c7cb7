"""The doorbell wakes every forwarder at once and keeps a ring nobody was waiting for."""

from __future__ import annotations

from relay.core.doorbell import Doorbell


def test_a_new_subscriber_looks_at_the_outbox_once_before_waiting() -> None:
    assert Doorbell().subscribe().is_set()


def test_a_ring_wakes_every_subscriber() -> None:
    doorbell = Doorbell()
    subscribers = [doorbell.subscribe() for _ in range(3)]
    for event in subscribers:
        event.clear()

    doorbell.ring()

    assert all(event.is_set() for event in subscribers)


def test_a_ring_while_nobody_waits_is_kept_until_the_subscriber_looks() -> None:
    doorbell = Doorbell()
    event = doorbell.subscribe()
    event.clear()

    doorbell.ring()
    doorbell.ring()

    assert event.is_set()
