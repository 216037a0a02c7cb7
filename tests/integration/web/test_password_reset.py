"""`/accounts/password/reset/`: a forgotten password, replaced through a one-time e-mailed link."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core import mail
from django.test import Client

from tests.integration.web import written
from tests.integration.web.factories import STRONG_PASSWORD, UserFactory
from webapp.mail.services import email_dispatch_due
from webapp.users.services import RESET_EMAIL_SUBJECT

pytestmark = pytest.mark.django_db

RESET_URL = "/accounts/password/reset/"
NEW_PASSWORD = "amber-Lantern-meadow-58"
LINK = re.compile(r"http://testserver(/accounts/password/reset/[^/\s]+/[^/\s]+/)")


def reset_link(message: mail.EmailMessage) -> str:
    """The path of the one-time link in a reset e-mail."""
    match = LINK.search(str(message.body))
    assert match is not None, message.body
    return match.group(1)


def test_asking_for_a_reset_mails_a_link_and_writes_user_password_reset_requested(
    client: Client, mailoutbox: list[mail.EmailMessage]
) -> None:
    user = UserFactory.create(email="holly@example.com")

    response = client.post(RESET_URL, {"email": "Holly@Example.com"})
    email_dispatch_due()

    assert response.status_code == 302
    assert response["Location"] == "/accounts/password/reset/sent/"
    [message] = mailoutbox
    assert message.to == ["holly@example.com"]
    assert message.subject == RESET_EMAIL_SUBJECT
    assert reset_link(message)
    [event] = written.events("user_password_reset_requested")
    assert written.context(event) == {"user_id": user.pk, "ip_address": "127.0.0.1"}


def test_asking_for_an_unknown_address_answers_the_same_and_mails_nobody(
    client: Client, mailoutbox: list[mail.EmailMessage]
) -> None:
    response = client.post(RESET_URL, {"email": "nobody@example.com"})
    email_dispatch_due()

    assert response.status_code == 302
    assert response["Location"] == "/accounts/password/reset/sent/"
    assert mailoutbox == []
    [event] = written.events("user_password_reset_requested")
    assert written.context(event) == {"user_id": None, "ip_address": "127.0.0.1"}
    assert "nobody" not in written.context_text(event)


def test_an_invalid_address_is_refused_with_a_message_and_nothing_is_written(
    client: Client, mailoutbox: list[mail.EmailMessage]
) -> None:
    response = client.post(RESET_URL, {"email": "not an address"})

    assert response.status_code == 200
    assert response.context["form"].errors == {"email": ["Enter a valid email address."]}
    assert written.events() == []
    assert mailoutbox == []


def test_following_the_link_sets_the_new_password_once_and_writes_user_password_reset(
    client: Client, mailoutbox: list[mail.EmailMessage]
) -> None:
    user = UserFactory.create()
    client.post(RESET_URL, {"email": user.email})
    email_dispatch_due()
    link = reset_link(mailoutbox[0])

    form_page = client.get(link, follow=True)
    response = client.post(
        form_page.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    )

    assert response.status_code == 302
    assert response["Location"] == "/accounts/password/reset/done/"
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    [event] = written.events("user_password_reset")
    assert written.context(event) == {"user_id": user.pk, "ip_address": "127.0.0.1"}
    assert "This link does not work" in client.get(link, follow=True).content.decode()


def test_a_refused_new_password_says_why_and_keeps_the_old_one(
    client: Client, mailoutbox: list[mail.EmailMessage]
) -> None:
    user = UserFactory.create()
    client.post(RESET_URL, {"email": user.email})
    email_dispatch_due()
    form_page = client.get(reset_link(mailoutbox[0]), follow=True)

    response = client.post(
        form_page.redirect_chain[-1][0], {"new_password1": "12345678", "new_password2": "12345678"}
    )

    assert response.status_code == 200
    assert "This password is entirely numeric." in response.context["form"].errors["new_password2"]
    user.refresh_from_db()
    assert user.check_password(STRONG_PASSWORD)
    assert written.events("user_password_reset") == []


def test_a_forged_link_is_refused(client: Client) -> None:
    user = UserFactory.create()

    response = client.get(f"/accounts/password/reset/{user.pk}/not-a-token/", follow=True)

    assert "This link does not work" in response.content.decode()


def test_an_address_with_an_account_and_one_without_cost_the_same_work_after_commit(
    client: Client, django_capture_on_commit_callbacks: Any
) -> None:
    user = UserFactory.create()

    with django_capture_on_commit_callbacks() as with_account:
        client.post(RESET_URL, {"email": user.email})
    with django_capture_on_commit_callbacks() as without_account:
        client.post(RESET_URL, {"email": "nobody@example.com"})

    # The same requests to workers after each (the second finds no e-mail to send).
    names = [getattr(callback, "func", callback).__name__ for callback in with_account]
    assert "_request_dispatch" in names
    assert [getattr(callback, "func", callback).__name__ for callback in without_account] == names
