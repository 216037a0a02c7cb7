"""How the relay reads a cluster's settings, and what it asks of every insert."""

from __future__ import annotations

import pytest

from relay.core.clickhouse import insert_settings
from relay.settings import RelaySettings
from shared.settings import ConfigurationError, load


def load_with(**environment: str) -> RelaySettings:
    """`load` as the relay calls it, with these variables in the environment."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environment.items():
            patch.setenv(name, value)
        return load(RelaySettings)


def test_without_clickhouse_hosts_the_relay_knows_the_one_server() -> None:
    settings = load_with(CLICKHOUSE_HOST="ch.internal", CLICKHOUSE_PORT="8443", CLICKHOUSE_SECURE="true")

    assert settings.clickhouse_urls == ["https://ch.internal:8443/"]


def test_clickhouse_hosts_name_every_replica_in_order_with_the_default_port_where_none_is_given() -> None:
    settings = load_with(CLICKHOUSE_HOSTS="ch-1:8124, ch-2 ,[::1]:9123", CLICKHOUSE_PORT="8123")

    assert settings.clickhouse_urls == ["http://ch-1:8124/", "http://ch-2:8123/", "http://[::1]:9123/"]


@pytest.mark.parametrize("hosts", ["ch-1:port", "http://ch-1:8123", "ch 1"])
def test_a_malformed_replica_address_is_refused_by_name(hosts: str) -> None:
    with pytest.raises(ConfigurationError, match="CLICKHOUSE_HOSTS"):
        load_with(CLICKHOUSE_HOSTS=hosts)


def test_a_blank_cluster_and_quorum_mean_none() -> None:
    settings = load_with(CLICKHOUSE_CLUSTER="", RELAY_INSERT_QUORUM="")

    assert settings.clickhouse_cluster is None
    assert settings.relay_insert_quorum is None


def test_a_cluster_name_must_be_an_identifier() -> None:
    with pytest.raises(ConfigurationError, match="CLICKHOUSE_CLUSTER"):
        load_with(CLICKHOUSE_CLUSTER="die-hard; DROP")


def test_a_quorum_of_two_or_more_is_asked_of_every_insert_and_bounded_below_the_relays_timeout() -> None:
    settings = insert_settings(quorum=2, sharded=False, timeout=10)

    assert settings == {"insert_deduplicate": 1, "insert_quorum": 2, "insert_quorum_timeout": 8000}


def test_a_quorum_of_one_asks_for_nothing_beyond_deduplication() -> None:
    assert insert_settings(quorum=1, sharded=False, timeout=10) == {"insert_deduplicate": 1}


def test_a_sharded_insert_is_acknowledged_only_once_every_shard_has_it() -> None:
    settings = insert_settings(quorum=2, sharded=True, timeout=10)

    assert settings["insert_distributed_sync"] == 1
    assert settings["insert_distributed_timeout"] == 8
