"""Who the client is: forwarded addresses only from trusted proxies, and IPv6 clients by their /64."""

from __future__ import annotations

import pytest
from django.test import RequestFactory
from pytest_django import Settings

from webapp.core.clients import client_ip, client_key, throttle_key

PROXIES = ["10.0.0.0/8", "2001:db8:ffff::/48"]


@pytest.fixture(autouse=True)
def _proxies(settings: Settings) -> None:
    settings.TRUSTED_PROXIES = PROXIES
    settings.THROTTLE_IPV6_PREFIX = 64


def from_peer(remote: str, forwarded: str | None = None) -> str | None:
    request = RequestFactory().get("/", REMOTE_ADDR=remote)
    if forwarded is not None:
        request.META["HTTP_X_FORWARDED_FOR"] = forwarded
    return client_ip(request)


def test_a_peer_that_is_no_trusted_proxy_is_the_client_whatever_it_forwards() -> None:
    assert from_peer("203.0.113.7", "127.0.0.1") == "203.0.113.7"


def test_behind_a_trusted_proxy_the_address_it_saw_is_the_client() -> None:
    assert from_peer("10.0.0.2", "203.0.113.7") == "203.0.113.7"


def test_what_the_client_claims_left_of_its_own_address_is_ignored() -> None:
    assert from_peer("10.0.0.2", "127.0.0.1, 203.0.113.7") == "203.0.113.7"


def test_a_chain_of_trusted_proxies_is_walked_back_to_the_first_address_outside_them() -> None:
    assert from_peer("10.0.0.2", "198.51.100.1, 203.0.113.7, 10.1.2.3, 10.9.9.9") == "203.0.113.7"


def test_a_malformed_entry_stops_the_walk_at_the_last_trusted_hop() -> None:
    assert from_peer("10.0.0.2", "203.0.113.7, not-an-address") == "10.0.0.2"


def test_a_trusted_proxy_without_a_forwarded_address_is_itself_the_client() -> None:
    assert from_peer("2001:db8:ffff::5") == "2001:db8:ffff::5"


def test_an_ipv4_client_seen_through_an_ipv6_socket_is_that_ipv4_client() -> None:
    assert from_peer("::ffff:203.0.113.7") == "203.0.113.7"


def test_no_trusted_proxy_means_forwarded_addresses_are_never_read(settings: Settings) -> None:
    settings.TRUSTED_PROXIES = []

    assert from_peer("10.0.0.2", "203.0.113.7") == "10.0.0.2"


def test_ipv6_clients_are_counted_by_their_64_and_ipv4_clients_by_their_address() -> None:
    assert throttle_key("2001:db8:0:8::1") == throttle_key("2001:db8:0:8:ffff:1:2:3") == "2001:db8:0:8::/64"
    assert throttle_key("2001:db8:0:9::1") != throttle_key("2001:db8:0:8::1")
    assert throttle_key("203.0.113.7") == "203.0.113.7"


def test_the_ipv6_prefix_is_a_setting(settings: Settings) -> None:
    settings.THROTTLE_IPV6_PREFIX = 56

    assert throttle_key("2001:db8:0:8::1") == throttle_key("2001:db8:0:ff::1") == "2001:db8::/56"


def test_the_client_key_is_the_forwarded_clients() -> None:
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="2001:db8:0:8::77")

    assert client_key(request) == "2001:db8:0:8::/64"
