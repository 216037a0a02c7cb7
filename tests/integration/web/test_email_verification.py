"""Verifying an address: the one-time link sent at sign-up (and again on request), and what it records."""

from __future__ import annotations

import re
import threading
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.core import mail
from django.db import connection
from django.test import Client
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from pytest_django import Settings

from shared.events import Event
from tests.integration.web import written
from tests.integration.web.factories import SignUpFactory, UserFactory
from webapp.mail.models import OutgoingEmail
from webapp.mail.services import email_dispatch_due
from webapp.outbox.client import EventLogClient
from webapp.outbox.models import OutboxEvent
from webapp.users.models import User
from webapp.users.services import VERIFICATION_SUBJECT, WELCOME_SUBJECT, user_email_verify
from webapp.users.tokens import EmailVerificationTokenGenerator

pytestmark = pytest.mark.django_db

SEND_URL = "/accounts/email/verify/"
DONE_URL = "/accounts/email/verify/done/"
LINK = re.compile(r"http://testserver(/accounts/email/verify/([^/\s]+)/([^/\s]+)/)")
SPENT = "This link does not work"


def link_in(message: mail.EmailMessage) -> str:
    """The path of the verification link in an e-mail."""
    match = LINK.search(str(message.body))
    assert match is not None, message.body
    return match.group(1)


def link_for(user: User, token: str) -> str:
    return f"/accounts/email/verify/{urlsafe_base64_encode(force_bytes(user.pk))}/{token}/"


def signed_up(client: Client, mailoutbox: list[mail.EmailMessage]) -> tuple[User, str]:
    """Sign up through the form, as a person does; the account and the link the welcome e-mail carries."""
    data = SignUpFactory.build()
    assert client.post("/accounts/register/", data).status_code == 302
    email_dispatch_due()  # what the worker does right after the commit
    [message] = [message for message in mailoutbox if message.to == [data["email"]]]
    assert message.subject == WELCOME_SUBJECT
    return User.objects.get(email=data["email"]), link_in(message)


def confirm(client: Client, link: str) -> str:
    """Open the link and press the button; the page it ends on."""
    opened = client.get(link)
    assert opened.status_code == 302, opened.content.decode()
    client.get(opened["Location"])
    response = client.post(opened["Location"])
    assert response.status_code == 302
    return str(response["Location"])


def test_the_link_from_the_welcome_email_verifies_the_address_and_writes_user_email_verified(
    client: Client, mailoutbox: list[mail.EmailMessage]
) -> None:
    user, link = signed_up(client, mailoutbox)
    assert not user.email_verified
    token = link.rstrip("/").rsplit("/", 1)[1]

    opened = client.get(link)
    page = client.get(opened["Location"])
    response = client.post(opened["Location"])

    # The token leaves the address bar (and with it the Referer and the history) at once.
    assert opened.status_code == 302
    assert opened["Location"].endswith("/confirm/")
    assert token not in opened["Location"]
    assert page.status_code == 200
    assert "Confirm my address" in page.content.decode()
    assert token not in page.content.decode()
    assert response.status_code == 302
    assert response["Location"] == DONE_URL
    assert User.objects.get(pk=user.pk).email_verified
    [event] = written.events("user_email_verified")
    assert written.context(event) == {"user_id": user.pk, "ip_address": "127.0.0.1"}
    assert "Your e-mail address is verified" in client.get(DONE_URL).content.decode()


def test_opening_the_link_verifies_nothing_until_the_person_confirms(
    client: Client, mailoutbox: list[mail.EmailMessage]
) -> None:
    # Mail scanners fetch every link in a message; only a person presses the button.
    user, link = signed_up(client, mailoutbox)

    client.get(client.get(link)["Location"])

    user.refresh_from_db()
    assert not user.email_verified
    assert written.events("user_email_verified") == []


def test_the_link_verifies_once_and_only_once(client: Client, mailoutbox: list[mail.EmailMessage]) -> None:
    _, link = signed_up(client, mailoutbox)
    confirm(client, link)
    confirmation_page = link.replace(link.rstrip("/").rsplit("/", 1)[1], "confirm")

    again = client.get(link)
    confirmed_again = client.post(confirmation_page)
    elsewhere = Client().get(link)

    for response in (again, confirmed_again, elsewhere):
        assert response.status_code == 200
        assert SPENT in response.content.decode()
    assert len(written.events("user_email_verified")) == 1


def test_two_confirmations_at_the_same_moment_verify_once() -> None:
    user = UserFactory.create()
    # Both callers checked the token against the unverified account.
    first, second = User.objects.get(pk=user.pk), User.objects.get(pk=user.pk)

    assert user_email_verify(user=first, ip_address=None)
    assert not user_email_verify(user=second, ip_address=None)

    assert len(written.events("user_email_verified")) == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_confirmations_in_separate_transactions_record_one_event() -> None:
    user = UserFactory.create()
    start = threading.Barrier(2)
    outcomes: list[bool] = []

    def confirm_in_own_connection() -> None:
        try:
            account = User.objects.get(pk=user.pk)
            start.wait(timeout=10)
            outcomes.append(user_email_verify(user=account, ip_address=None))
        finally:
            connection.close()

    threads = [threading.Thread(target=confirm_in_own_connection) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcomes) == [False, True]
    assert len(written.events("user_email_verified")) == 1


class _MadeAt(EmailVerificationTokenGenerator):
    """Makes tokens as if it were `seconds_ago` seconds earlier."""

    def __init__(self, seconds_ago: int) -> None:
        super().__init__()
        self.seconds_ago = seconds_ago

    def _now(self) -> datetime:
        return datetime.now() - timedelta(seconds=self.seconds_ago)


def test_a_link_older_than_the_verification_timeout_is_refused(client: Client) -> None:
    user = UserFactory.create()
    old = _MadeAt(settings.EMAIL_VERIFICATION_TIMEOUT + 60).make_token(user)

    response = client.get(link_for(user, old))

    assert SPENT in response.content.decode()
    user.refresh_from_db()
    assert not user.email_verified


def test_a_link_just_inside_the_verification_timeout_still_works(client: Client) -> None:
    user = UserFactory.create()
    recent = _MadeAt(settings.EMAIL_VERIFICATION_TIMEOUT - 60).make_token(user)

    confirm(client, link_for(user, recent))

    user.refresh_from_db()
    assert user.email_verified


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda user, other: link_for(user, "1a2b3c-0123456789abcdef0123"), id="made-up-token"),
        pytest.param(
            lambda user, other: link_for(user, default_token_generator.make_token(user)), id="reset-token"
        ),
        pytest.param(
            lambda user, other: link_for(user, EmailVerificationTokenGenerator().make_token(other)),
            id="another-accounts-token",
        ),
        pytest.param(
            lambda user, other: "/accounts/email/verify/OTk5OTk5/1a2b3c-0123/", id="no-such-account"
        ),
        pytest.param(lambda user, other: "/accounts/email/verify/!!/1a2b3c-0123/", id="garbled-id"),
    ],
)
def test_a_forged_link_is_refused_and_verifies_nothing(client: Client, forge: Any) -> None:
    user, other = UserFactory.create(), UserFactory.create()

    response = client.get(forge(user, other))

    assert response.status_code == 200
    assert SPENT in response.content.decode()
    assert not User.objects.filter(email_verified_at__isnull=False).exists()
    assert written.events() == []


def test_a_link_for_one_account_cannot_confirm_another(client: Client) -> None:
    mine, theirs = UserFactory.create(), UserFactory.create()
    client.get(link_for(mine, EmailVerificationTokenGenerator().make_token(mine)))

    response = client.post(f"/accounts/email/verify/{urlsafe_base64_encode(force_bytes(theirs.pk))}/confirm/")

    assert SPENT in response.content.decode()
    assert not User.objects.filter(email_verified_at__isnull=False).exists()


@pytest.mark.django_db(transaction=True)
def test_the_event_is_written_in_the_transaction_that_verifies(monkeypatch: pytest.MonkeyPatch) -> None:
    user = UserFactory.create()
    publish = EventLogClient.publish

    class Boom(Exception):
        pass

    def publish_then_fail(self: EventLogClient, *events: Event) -> None:
        publish(self, *events)
        assert OutboxEvent.objects.filter(event_type="user_email_verified").count() == 1
        raise Boom

    monkeypatch.setattr(EventLogClient, "publish", publish_then_fail)

    with pytest.raises(Boom):
        user_email_verify(user=user, ip_address=None)

    assert not User.objects.get(pk=user.pk).email_verified
    assert not OutboxEvent.objects.exists()


def test_the_account_page_says_the_address_is_not_verified_and_offers_the_link_again(client: Client) -> None:
    client.force_login(UserFactory.create())

    page = client.get("/accounts/").content.decode()

    assert "not verified yet" in page
    assert f'action="{SEND_URL}"' in page
    assert "Send the link again" in page


def test_the_account_page_says_a_verified_address_is_verified(client: Client) -> None:
    user = UserFactory.create()
    user_email_verify(user=user, ip_address=None)
    client.force_login(user)

    page = client.get("/accounts/").content.decode()

    assert '<span class="badge verified">verified</span>' in page
    assert "Send the link again" not in page


def test_asking_again_mails_a_new_link_that_verifies(
    client: Client, mailoutbox: list[mail.EmailMessage]
) -> None:
    user = UserFactory.create(first_name="Holly")
    client.force_login(user)

    response = client.post(SEND_URL)
    email_dispatch_due()

    assert response.status_code == 302
    assert response["Location"] == "/accounts/"
    [message] = mailoutbox
    assert (message.to, message.subject) == ([user.email], VERIFICATION_SUBJECT)
    assert user.first_name not in str(message.body)
    assert confirm(Client(), link_in(message)) == DONE_URL
    user.refresh_from_db()
    assert user.email_verified


def test_asking_again_too_often_is_refused_with_429_and_mails_nothing(
    client: Client, settings: Settings
) -> None:
    settings.THROTTLE_EMAIL_VERIFICATION_RATE = "2/h"
    client.force_login(UserFactory.create())
    for _ in range(2):
        assert client.post(SEND_URL).status_code == 302

    response = client.post(SEND_URL)

    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert "A link was sent a short while ago" in response.content.decode()
    assert 'role="alert"' in response.content.decode()
    assert OutgoingEmail.objects.count() == 2


def test_the_throttle_counts_per_account(client: Client, settings: Settings) -> None:
    settings.THROTTLE_EMAIL_VERIFICATION_RATE = "1/h"
    client.force_login(UserFactory.create())
    assert client.post(SEND_URL).status_code == 302
    assert client.post(SEND_URL).status_code == 429

    client.force_login(UserFactory.create())

    assert client.post(SEND_URL).status_code == 302


def test_a_verified_address_is_sent_no_new_link(client: Client) -> None:
    user = UserFactory.create()
    user_email_verify(user=user, ip_address=None)
    client.force_login(user)

    response = client.post(SEND_URL, follow=True)

    assert "already verified" in response.content.decode()
    assert not OutgoingEmail.objects.exists()


def test_asking_again_needs_a_signed_in_post(client: Client) -> None:
    assert client.post(SEND_URL)["Location"] == f"/accounts/login/?next={SEND_URL}"
    client.force_login(UserFactory.create())
    assert client.get(SEND_URL).status_code == 405
    assert not OutgoingEmail.objects.exists()


def test_the_activity_page_lists_the_verification(
    client: Client, mailoutbox: list[mail.EmailMessage]
) -> None:
    _, link = signed_up(client, mailoutbox)
    confirm(client, link)

    page = client.get("/accounts/activity/").content.decode()

    assert "E-mail address verified" in page
