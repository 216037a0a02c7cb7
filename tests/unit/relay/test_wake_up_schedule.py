"""When the relay looks at the outbox between notifications, and what its commits wait for."""

from __future__ import annotations

from relay.app import session_settings
from relay.core.forwarder import FollowUp
from relay.settings import RelaySettings


def test_follow_up_looks_last_one_quiet_period_after_the_last_sign_of_events() -> None:
    follow_up = FollowUp(interval=0.01, quiet_period=0.1)

    assert not follow_up.active(100.0)  # idle: no short waits until something happens
    follow_up.extend(100.0)
    assert follow_up.active(100.05)
    follow_up.extend(100.05)  # events found again: the quiet period starts over
    assert follow_up.active(100.14)
    assert not follow_up.active(100.15)


def test_relay_commits_do_not_wait_for_the_wal_flush_unless_configured() -> None:
    assert session_settings(RelaySettings(relay_synchronous_commit=False))["synchronous_commit"] == "off"
    assert session_settings(RelaySettings(relay_synchronous_commit=True))["synchronous_commit"] == "on"
