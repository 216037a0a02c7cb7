"""The relay's retry policy and how it sorts ClickHouse's errors."""

from __future__ import annotations

import random

import pytest
from aiochclient import ChClientError

from relay.core.clickhouse import DeliveryError, RejectedData, TransientError, classify
from relay.core.retry import Backoff


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
