"""Pure parts of the relay: retry policy, error sorting, settings, insert settings, the import boundary."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest
from aiochclient import ChClientError

from relay.clickhouse import DeliveryError, RejectedData, TransientError, classify, insert_settings
from relay.retry import Backoff
from relay.settings import RelaySettings
from shared.settings import ConfigurationError, load


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


def relay_settings(**environment: str) -> RelaySettings:
    """Relay settings from these variables alone (no `.env`)."""
    return RelaySettings(_env_file=None, **{name.lower(): value for name, value in environment.items()})  # type: ignore[call-arg, arg-type]


def test_without_clickhouse_hosts_the_relay_knows_the_one_server() -> None:
    settings = relay_settings(CLICKHOUSE_HOST="ch.internal", CLICKHOUSE_PORT="8443", CLICKHOUSE_SECURE="true")

    assert settings.clickhouse_urls == ["https://ch.internal:8443/"]


def test_clickhouse_hosts_name_every_replica_in_order_with_the_default_port_where_none_is_given() -> None:
    settings = relay_settings(CLICKHOUSE_HOSTS="ch-1:8124, ch-2 ,[::1]:9123", CLICKHOUSE_PORT="8123")

    assert settings.clickhouse_urls == ["http://ch-1:8124/", "http://ch-2:8123/", "http://[::1]:9123/"]


@pytest.mark.parametrize("hosts", ["ch-1:port", "http://ch-1:8123", "ch 1"])
def test_a_malformed_replica_address_is_refused_by_name(hosts: str) -> None:
    with pytest.raises(ConfigurationError, match="CLICKHOUSE_HOSTS"):
        load_with(CLICKHOUSE_HOSTS=hosts)


def test_a_blank_cluster_and_quorum_mean_none() -> None:
    settings = relay_settings(CLICKHOUSE_CLUSTER="", RELAY_INSERT_QUORUM="")

    assert settings.clickhouse_cluster is None
    assert settings.relay_insert_quorum is None


def load_with(**environment: str) -> RelaySettings:
    """`load` as the relay calls it, with these variables in the environment."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environment.items():
            patch.setenv(name, value)
        return load(RelaySettings)


def test_a_quorum_of_two_or_more_is_asked_of_every_insert_and_bounded_below_the_relays_timeout() -> None:
    settings = insert_settings(quorum=2, sharded=False, timeout=10)

    assert settings == {"insert_deduplicate": 1, "insert_quorum": 2, "insert_quorum_timeout": 8000}


def test_a_quorum_of_one_asks_for_nothing_beyond_deduplication() -> None:
    assert insert_settings(quorum=1, sharded=False, timeout=10) == {"insert_deduplicate": 1}


def test_a_sharded_insert_is_acknowledged_only_once_every_shard_has_it() -> None:
    settings = insert_settings(quorum=2, sharded=True, timeout=10)

    assert settings["insert_distributed_sync"] == 1
    assert settings["insert_distributed_timeout"] == 8
