"""Pure parts of the relay: retry policy, error sorting, the import boundary."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest
from aiochclient import ChClientError

from relay.app import session_settings
from relay.clickhouse import DeliveryError, RejectedData, TransientError, classify
from relay.forwarder import FollowUp
from relay.retry import Backoff
from shared.settings import RelaySettings


def test_backoff_bounds_grow_exponentially_up_to_the_maximum() -> None:
    backoff = Backoff(initial=0.5, maximum=10)

    assert [backoff.bound(attempt) for attempt in range(1, 7)] == [0.5, 1, 2, 4, 8, 10]


def test_backoff_delays_are_jittered_within_their_bound_and_never_zero() -> None:
    backoff = Backoff(initial=0.5, maximum=10)
    rng = random.Random(1)

    delays = [backoff.delay(5, rng) for _ in range(200)]

    assert all(0.25 <= delay <= 8 for delay in delays)
    assert len({round(delay, 3) for delay in delays}) > 100


def test_no_backoff_before_the_first_retry() -> None:
    assert Backoff(initial=1, maximum=5).delay(0) == 0


@pytest.mark.parametrize(
    ("code", "meaning"),
    [
        (27, RejectedData),  # cannot parse input
        (72, RejectedData),  # cannot parse number
        (376, RejectedData),  # cannot parse UUID
        (60, TransientError),  # unknown table: the schema's fault, not the rows'
        (241, TransientError),  # memory limit exceeded
        (252, TransientError),  # too many parts
        (516, TransientError),  # authentication failed
    ],
)
def test_clickhouse_errors_are_sorted_into_rejected_rows_and_transient_failures(
    code: int, meaning: type[DeliveryError]
) -> None:
    error = classify(ChClientError(f"Code: {code}, e.displayText() = DB::Exception: something"))

    assert type(error) is meaning
    assert error.code == code


def test_an_error_without_a_code_is_transient() -> None:
    assert isinstance(classify(ChClientError("Received error response with status code 502")), TransientError)


def test_the_relay_imports_no_django() -> None:
    probe = (
        "import sys, relay.app, relay.__main__;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'django', 'webapp', 'celery'}))"
    )

    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)

    assert result.stdout.strip() == "[]"


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
