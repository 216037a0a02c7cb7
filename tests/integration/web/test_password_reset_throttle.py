"""Password-reset requests: limited per client address and per address asked for, revealing no account."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest
from django.core import mail
from django.test import Client
from prometheus_client import REGISTRY
from pytest_django import Settings

from tests.integration.web import written
from tests.integration.web.factories import UserFactory
from webapp.mail.models import OutgoingEmail
from webapp.mail.services import email_dispatch_due

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as TestResponse

pytestmark = pytest.mark.django_db

RESET_URL = "/accounts/password/reset/"
PER_CLIENT = 4
PER_ADDRESS = 2


@pytest.fixture(autouse=True)
def _small_limits(settings: Settings) -> None:
    # An hour's window: a window ending mid-test (which resets the count) is then rare.
    settings.THROTTLE_PASSWORD_RESET_RATE = f"{PER_CLIENT}/h"
    settings.THROTTLE_PASSWORD_RESET_ADDRESS_RATE = f"{PER_ADDRESS}/h"


def ask_reset(email: str, *, client_address: str) -> TestResponse:
    return Client(REMOTE_ADDR=client_address).post(RESET_URL, {"email": email})


def throttled() -> float:
    return REGISTRY.get_sample_value("web_throttled_requests_total", {"action": "password_reset"}) or 0.0


def what_was_written() -> tuple[int, int]:
    """(mail rows, outbox events) the site has written so far."""
    return OutgoingEmail.objects.count(), len(written.events())


def page_seen(response: TestResponse) -> tuple[int, list[str], str]:
    """Status, header names and page, less what differs on every answer (CSRF token, CSP nonce, wait)."""
    page = response.content.decode()
    page = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', 'name="csrfmiddlewaretoken"', page)
    page = re.sub(r'<style nonce="[^"]+">', "<style>", page)
    page = re.sub(r"\d+ minutes?", "N minutes", page)
    return response.status_code, sorted(response.headers), page


def assert_throttled(response: TestResponse) -> None:
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 3600
    assert "Too many password-reset requests" in response.content.decode()


def test_requests_from_one_client_address_are_limited_with_429_and_retry_after() -> None:
    for n in range(PER_CLIENT):
        assert ask_reset(f"someone{n}@example.com", client_address="198.51.100.1").status_code == 302
    before = throttled()

    response = ask_reset("someone-else@example.com", client_address="198.51.100.1")

    assert_throttled(response)
    assert throttled() == before + 1
    assert ask_reset("someone-else@example.com", client_address="203.0.113.7").status_code == 302


def test_one_address_gets_at_most_the_limit_of_reset_emails_whoever_asks(
    mailoutbox: list[mail.EmailMessage],
) -> None:
    UserFactory.create(email="holly@example.com")
    spellings = ["holly@example.com", "Holly@EXAMPLE.com", "HOLLY@example.com"]
    for n, spelling in enumerate(spellings[:PER_ADDRESS]):
        assert ask_reset(spelling, client_address=f"198.51.100.{n + 1}").status_code == 302

    response = ask_reset(spellings[PER_ADDRESS], client_address="203.0.113.7")
    email_dispatch_due()

    assert_throttled(response)
    assert [message.to for message in mailoutbox] == [["holly@example.com"]] * PER_ADDRESS
    assert ask_reset("nakatomi@example.com", client_address="203.0.113.7").status_code == 302


def test_throttled_requests_write_no_mail_and_no_event_and_are_counted() -> None:
    UserFactory.create(email="holly@example.com")
    for n in range(PER_ADDRESS):
        ask_reset("holly@example.com", client_address=f"198.51.100.{n + 1}")
    for n in range(PER_CLIENT):
        ask_reset(f"someone{n}@example.com", client_address="203.0.113.7")
    assert what_was_written() == (PER_ADDRESS, PER_ADDRESS + PER_CLIENT)
    before = throttled()

    over_address_limit = ask_reset("holly@example.com", client_address="192.0.2.1")
    over_client_limit = ask_reset("holly@example.com", client_address="203.0.113.7")

    assert (over_address_limit.status_code, over_client_limit.status_code) == (429, 429)
    assert what_was_written() == (PER_ADDRESS, PER_ADDRESS + PER_CLIENT)
    assert throttled() == before + 2


def test_an_address_without_an_account_is_limited_and_answered_exactly_like_one_with_an_account() -> None:
    UserFactory.create(email="holly@example.com")
    for n in range(PER_ADDRESS):
        assert ask_reset("holly@example.com", client_address=f"198.51.100.{n + 1}").status_code == 302
        assert ask_reset("nobody@example.com", client_address=f"198.51.100.{n + 1}").status_code == 302

    known = ask_reset("holly@example.com", client_address="203.0.113.7")
    unknown = ask_reset("nobody@example.com", client_address="203.0.113.8")

    assert_throttled(known)
    assert page_seen(known) == page_seen(unknown)


def test_the_client_limit_answers_the_same_whichever_address_is_asked_for() -> None:
    UserFactory.create(email="holly@example.com")
    for n in range(PER_CLIENT):
        ask_reset(f"someone{n}@example.com", client_address="198.51.100.1")

    known = ask_reset("holly@example.com", client_address="198.51.100.1")
    unknown = ask_reset("nobody@example.com", client_address="198.51.100.1")

    assert_throttled(known)
    assert page_seen(known) == page_seen(unknown)


def test_an_address_is_counted_under_a_hash_keyed_with_the_secret_key_not_as_itself(
    settings: Settings,
) -> None:
    for n in range(PER_ADDRESS):
        ask_reset("holly@example.com", client_address=f"198.51.100.{n + 1}")
    assert ask_reset("holly@example.com", client_address="203.0.113.7").status_code == 429

    settings.SECRET_KEY = "another-secret-key-of-enough-length-for-the-hash"

    # Counted by the address itself (or an unkeyed hash of it), this would still be refused.
    assert ask_reset("holly@example.com", client_address="203.0.113.8").status_code == 302


@pytest.mark.usefixtures("redis_unreachable")
def test_with_redis_down_reset_requests_are_not_throttled(mailoutbox: list[mail.EmailMessage]) -> None:
    UserFactory.create(email="holly@example.com")

    for _ in range(PER_CLIENT + 1):
        assert ask_reset("holly@example.com", client_address="198.51.100.1").status_code == 302
    email_dispatch_due()

    assert len(mailoutbox) == PER_CLIENT + 1
