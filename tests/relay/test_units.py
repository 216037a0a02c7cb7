"""Pure parts of the relay: retry policy, error sorting, the import boundary."""

from __future__ import annotations

import random
import subprocess
import sys

from aiochclient import ChClientError

from relay.clickhouse import RejectedData, TransientError, classify
from relay.retry import Backoff


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


def test_a_parse_error_from_clickhouse_is_rejected_data() -> None:
    error = classify(ChClientError("Code: 27, e.displayText() = DB::Exception: Cannot parse input"))

    assert isinstance(error, RejectedData)
    assert error.code == 27


def test_a_missing_table_is_transient_not_the_datas_fault() -> None:
    error = classify(
        ChClientError("Code: 60, e.displayText() = DB::Exception: Table default.event_log doesn't exist")
    )

    assert isinstance(error, TransientError)
    assert error.kind == "server"


def test_an_error_without_a_code_is_transient() -> None:
    assert isinstance(classify(ChClientError("Received error response with status code 502")), TransientError)


def test_the_relay_imports_no_django() -> None:
    probe = (
        "import sys, relay.app, relay.__main__;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'django', 'webapp', 'celery'}))"
    )

    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)

    assert result.stdout.strip() == "[]"
