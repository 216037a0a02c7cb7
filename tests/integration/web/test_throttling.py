"""Abuse throttles: sign-in lock-out per account, per (account, address) and per address; sign-up rate."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from django.core.management import call_command
from django.test import Client
from prometheus_client import REGISTRY
from pytest_django import Settings

from tests.integration.web import written
from tests.integration.web.factories import STRONG_PASSWORD, SignUpFactory, UserFactory

if TYPE_CHECKING:
    # The test client's response (with `.json()`); django-stubs names it only privately.
    from django.test.client import _MonkeyPatchedWSGIResponse as TestResponse

pytestmark = pytest.mark.django_db

LIMIT = 3  # failures for one account, from anywhere
PAIR_LIMIT = 2  # failures for one account from one address
ADDRESS_LIMIT = 6  # failures from one address, whatever the accounts
COOL_OFF = timedelta(minutes=15)
WRONG = "not-the-Password-41"


@pytest.fixture(autouse=True)
def _small_limits(settings: Settings) -> None:
    settings.AXES_FAILURE_LIMIT = LIMIT
    settings.THROTTLE_SIGN_IN_PAIR_FAILURES = PAIR_LIMIT
    settings.THROTTLE_SIGN_IN_ADDRESS_FAILURES = ADDRESS_LIMIT
    settings.AXES_COOLOFF_TIME = COOL_OFF
    # An hour's window: a window ending mid-test (which resets the count) is then rare.
    settings.THROTTLE_SIGN_UP_RATE = "2/h"


def client_from(address: str) -> Client:
    return Client(REMOTE_ADDR=address)


def sign_in(client: Client, email: str, password: str) -> int:
    return client.post("/accounts/login/", {"username": email, "password": password}).status_code


def api_sign_up(client: Client) -> TestResponse:
    return client.post("/api/users/", json.dumps(SignUpFactory.build()), content_type="application/json")


def throttled(action: str) -> float:
    return REGISTRY.get_sample_value("web_throttled_requests_total", {"action": action}) or 0.0


def fail_until_locked(email: str, clients: Callable[[int], Client], limit: int = LIMIT) -> None:
    for attempt in range(limit - 1):
        assert sign_in(clients(attempt), email, WRONG) == 200
    # The failure that reaches the limit is refused with the lock-out page already.
    assert sign_in(clients(limit - 1), email, WRONG) == 429


def many_addresses(n: int) -> Client:
    return client_from(f"198.51.100.{n + 1}")


def test_an_account_is_locked_after_repeated_failures_even_from_many_addresses() -> None:
    user = UserFactory.create()
    fail_until_locked(user.email, lambda n: client_from(f"198.51.100.{n + 1}"))

    response = client_from("203.0.113.7").post(
        "/accounts/login/", {"username": user.email, "password": STRONG_PASSWORD}
    )

    assert response.status_code == 429
    assert response["Retry-After"] == str(int(COOL_OFF.total_seconds()))
    assert "Too many failed sign-ins" in response.content.decode()
    assert "15 minutes" in response.content.decode()
    assert "_auth_user_id" not in response.client.session


def test_one_address_guessing_one_account_is_locked_before_the_account_is() -> None:
    user = UserFactory.create()
    fail_until_locked(user.email, lambda n: client_from("198.51.100.9"), limit=PAIR_LIMIT)

    # The guesser keeps trying: refused unchecked, and not counted against the account.
    for _ in range(LIMIT):
        assert sign_in(client_from("198.51.100.9"), user.email, STRONG_PASSWORD) == 429
    assert sign_in(client_from("203.0.113.7"), user.email, STRONG_PASSWORD) == 302


def test_one_persons_failures_never_block_another_persons_correct_sign_in_from_the_same_address() -> None:
    shared_address = "198.51.100.9"
    forgetful, other = UserFactory.create_batch(2)
    # One person behind the NAT locks their own account out completely ...
    fail_until_locked(forgetful.email, lambda n: client_from(shared_address), limit=PAIR_LIMIT)
    sign_in(client_from("203.0.113.1"), forgetful.email, WRONG)
    # ... and mistypes addresses that are nobody's, as the review did ten times.
    for n in range(ADDRESS_LIMIT - PAIR_LIMIT - 2):
        assert sign_in(client_from(shared_address), f"nobody{n}@example.com", WRONG) == 200

    assert sign_in(client_from(shared_address), other.email, STRONG_PASSWORD) == 302


def test_an_address_is_locked_only_after_far_more_failures_on_many_accounts() -> None:
    users = UserFactory.create_batch(ADDRESS_LIMIT + 1)
    attacker = client_from("198.51.100.9")
    for user in users[: ADDRESS_LIMIT - 1]:
        assert sign_in(attacker, user.email, WRONG) == 200
    assert sign_in(attacker, users[ADDRESS_LIMIT - 1].email, WRONG) == 429

    assert sign_in(attacker, users[ADDRESS_LIMIT].email, STRONG_PASSWORD) == 429
    assert sign_in(client_from("203.0.113.7"), users[ADDRESS_LIMIT].email, STRONG_PASSWORD) == 302


def test_an_ipv6_client_is_counted_by_its_64_whichever_address_it_picks() -> None:
    users = UserFactory.create_batch(ADDRESS_LIMIT + 1)
    for n, user in enumerate(users[:ADDRESS_LIMIT]):
        sign_in(client_from(f"2001:db8:0:8::{n + 1:x}"), user.email, WRONG)

    assert sign_in(client_from("2001:db8:0:8:ffff::1"), users[ADDRESS_LIMIT].email, STRONG_PASSWORD) == 429
    assert sign_in(client_from("2001:db8:0:9::1"), users[ADDRESS_LIMIT].email, STRONG_PASSWORD) == 302


def test_the_case_of_the_address_does_not_reset_the_count() -> None:
    user = UserFactory.create(email="holly@example.com")
    spellings = ["holly@example.com", "HOLLY@example.com", "Holly@EXAMPLE.com"]

    fail_until_locked(user.email, lambda n: client_from(f"198.51.100.{n + 1}"))
    for spelling in spellings:
        assert sign_in(client_from("203.0.113.7"), spelling, STRONG_PASSWORD) == 429


def test_a_successful_sign_in_clears_the_failures_before_it() -> None:
    user = UserFactory.create()
    for n in range(LIMIT - 1):
        sign_in(many_addresses(n), user.email, WRONG)

    assert sign_in(many_addresses(0), user.email, STRONG_PASSWORD) == 302
    for n in range(10, 10 + LIMIT - 1):
        assert sign_in(many_addresses(n), user.email, WRONG) == 200


def test_refused_tries_during_a_lock_out_are_counted_not_written_as_events() -> None:
    user = UserFactory.create()
    fail_until_locked(user.email, many_addresses)
    before = throttled("sign_in")

    for _ in range(5):
        assert sign_in(client_from("203.0.113.7"), user.email, WRONG) == 429

    assert throttled("sign_in") == before + 5
    assert len(written.events("user_login_failed")) == LIMIT


def test_the_admin_sign_in_is_locked_out_the_same_way() -> None:
    staff = UserFactory.create(is_staff=True, is_superuser=True)
    client = client_from("198.51.100.1")
    for _ in range(LIMIT):
        client.post("/admin/login/", {"username": staff.email, "password": WRONG})

    response = client.post("/admin/login/", {"username": staff.email, "password": STRONG_PASSWORD})

    assert response.status_code == 429
    assert "Retry-After" in response


def test_an_operator_unlocks_an_account_with_axes_reset_username() -> None:
    user = UserFactory.create(email="Holly@example.com")
    fail_until_locked("HOLLY@EXAMPLE.COM", lambda n: client_from(f"198.51.100.{n + 1}"))

    call_command("sign_in_unlock", "holly@Example.com")

    assert sign_in(client_from("203.0.113.7"), user.email, STRONG_PASSWORD) == 302


def test_sign_ups_from_one_address_are_limited_with_429_and_retry_after() -> None:
    client = client_from("198.51.100.1")
    for _ in range(2):
        response = client.post(
            "/api/users/", json.dumps(SignUpFactory.build()), content_type="application/json"
        )
        assert response.status_code == 201
    before = throttled("sign_up")

    response = api_sign_up(client)

    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 3600
    assert "Too many sign-ups" in response.json()["errors"]["__all__"][0]
    assert throttled("sign_up") == before + 1
    other = client_from("203.0.113.7").post(
        "/api/users/", json.dumps(SignUpFactory.build()), content_type="application/json"
    )
    assert other.status_code == 201


def test_the_sign_up_form_is_limited_the_same_way() -> None:
    client = client_from("198.51.100.1")
    for _ in range(2):
        api_sign_up(client)

    response = client.post("/accounts/register/", SignUpFactory.build())

    assert response.status_code == 429
    assert "Retry-After" in response
    assert "Too many sign-ups" in response.content.decode()


def test_behind_a_trusted_proxy_the_forwarded_address_is_the_one_limited(settings: Settings) -> None:
    settings.TRUSTED_PROXIES = ["10.0.0.0/24"]
    proxy = "10.0.0.2"

    def through_proxy(client_address: str) -> Client:
        # The client claims an address; the proxy appends the one it really saw.
        return Client(REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR=f"192.0.2.1, {client_address}")

    for _ in range(2):
        assert (
            through_proxy("198.51.100.1")
            .post("/api/users/", json.dumps(SignUpFactory.build()), content_type="application/json")
            .status_code
            == 201
        )

    limited = through_proxy("198.51.100.1").post(
        "/api/users/", json.dumps(SignUpFactory.build()), content_type="application/json"
    )
    other = through_proxy("198.51.100.2").post(
        "/api/users/", json.dumps(SignUpFactory.build()), content_type="application/json"
    )
    assert (limited.status_code, other.status_code) == (429, 201)


@pytest.mark.usefixtures("redis_unreachable")
def test_with_redis_down_the_throttles_fail_open() -> None:
    user = UserFactory.create()
    client = client_from("198.51.100.1")

    for _ in range(LIMIT + 2):
        assert sign_in(client, user.email, WRONG) == 200
    assert sign_in(client, user.email, STRONG_PASSWORD) == 302
    for _ in range(3):
        response = client.post(
            "/api/users/", json.dumps(SignUpFactory.build()), content_type="application/json"
        )
        assert response.status_code == 201


def test_sign_ups_from_one_ipv6_64_share_one_allowance() -> None:
    for n in range(2):
        assert api_sign_up(client_from(f"2001:db8:0:8::{n + 1}")).status_code == 201

    assert api_sign_up(client_from("2001:db8:0:8::99")).status_code == 429
    assert api_sign_up(client_from("2001:db8:0:9::1")).status_code == 201


def test_password_reset_requests_from_one_ipv6_64_share_one_allowance(settings: Settings) -> None:
    settings.THROTTLE_PASSWORD_RESET_RATE = "2/h"

    def ask_reset(address: str, n: int) -> int:
        # A different address asked for each time: only the client's allowance is spent.
        return (
            client_from(address)
            .post("/accounts/password/reset/", {"email": f"someone{n}@example.com"})
            .status_code
        )

    assert ask_reset("2001:db8:0:8::1", 1) == 302
    assert ask_reset("2001:db8:0:8::2", 2) == 302
    assert ask_reset("2001:db8:0:8:ffff::1", 3) == 429
    assert ask_reset("2001:db8:0:9::1", 4) == 302


def test_an_operator_unlocks_a_locked_pair_with_the_account() -> None:
    user = UserFactory.create()
    fail_until_locked(user.email, lambda n: client_from("198.51.100.9"), limit=PAIR_LIMIT)

    call_command("sign_in_unlock", user.email)

    assert sign_in(client_from("198.51.100.9"), user.email, STRONG_PASSWORD) == 302


def test_an_operator_unlocks_an_ipv6_network_by_any_address_in_it() -> None:
    users = UserFactory.create_batch(ADDRESS_LIMIT + 1)
    for n, user in enumerate(users[:ADDRESS_LIMIT]):
        sign_in(client_from(f"2001:db8:0:8::{n + 1:x}"), user.email, WRONG)

    call_command("sign_in_unlock", "--ip", "2001:db8:0:8::1234")

    assert sign_in(client_from("2001:db8:0:8::1"), users[ADDRESS_LIMIT].email, STRONG_PASSWORD) == 302
