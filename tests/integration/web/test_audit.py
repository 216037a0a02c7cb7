"""Sign-in, refused sign-in and sign-out each leave an event for the security audit."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.integration.web import written
from tests.integration.web.factories import STRONG_PASSWORD, UserFactory
from webapp.outbox.models import OutboxEvent

pytestmark = pytest.mark.django_db

LOGIN_URL = "/accounts/login/"
LOGOUT_URL = "/accounts/logout/"
WRONG_PASSWORD = "not-the-Password-41"


def test_the_sign_in_page_asks_for_an_email_address(client: Client) -> None:
    response = client.get(LOGIN_URL)

    assert response.status_code == 200
    assert "E-mail address" in response.content.decode()
    assert 'type="email"' in response.content.decode()


def test_signing_in_writes_user_logged_in_with_the_user_id_and_ip(client: Client) -> None:
    user = UserFactory.create()

    response = client.post(LOGIN_URL, {"username": user.email, "password": STRONG_PASSWORD})

    assert response.status_code == 302
    [event] = written.events()
    assert event.event_type == "user_logged_in"
    assert written.context(event) == {"user_id": user.pk, "ip_address": "127.0.0.1"}


def test_signing_in_matches_the_email_case_insensitively(client: Client) -> None:
    user = UserFactory.create(email="mixed.case@example.com")

    client.post(LOGIN_URL, {"username": "Mixed.Case@EXAMPLE.com", "password": STRONG_PASSWORD})

    assert written.context(OutboxEvent.objects.get()) == {"user_id": user.pk, "ip_address": "127.0.0.1"}


def test_a_refused_sign_in_to_an_account_writes_its_id_address_and_ip(client: Client) -> None:
    user = UserFactory.create()

    response = client.post(LOGIN_URL, {"username": user.email.upper(), "password": WRONG_PASSWORD})

    assert response.status_code == 200
    [event] = written.events()
    assert event.event_type == "user_login_failed"
    assert event.metadata_version == 2
    assert written.context(event) == {
        "user_id": user.pk,
        "email": user.email,
        "email_hmac": None,
        "ip_address": "127.0.0.1",
    }


def test_a_refused_sign_in_with_an_unknown_address_keeps_only_a_keyed_hash_of_it(client: Client) -> None:
    for spelling in ("nobody@example.com", "Nobody@EXAMPLE.com"):
        client.post(LOGIN_URL, {"username": spelling, "password": WRONG_PASSWORD})

    first, second = (written.context(event) for event in written.events("user_login_failed"))
    assert "nobody" not in written.context_text(written.events()[0]).lower()
    assert (first["user_id"], first["email"]) == (None, None)
    assert len(first["email_hmac"]) == 64
    # One address, however typed, is recognisable across attempts without being readable.
    assert first["email_hmac"] == second["email_hmac"]


def test_a_refused_sign_in_keeps_the_password_out_of_the_event(client: Client) -> None:
    client.post(LOGIN_URL, {"username": "nobody@example.com", "password": WRONG_PASSWORD})

    event = OutboxEvent.objects.get()
    assert event.event_type == "user_login_failed"
    stored = [written.context_text(event), *map(str, OutboxEvent.objects.values_list().get())]
    assert all(WRONG_PASSWORD not in value for value in stored)
    assert "password" not in written.context_text(event)


def test_signing_out_writes_user_logged_out(client: Client) -> None:
    user = UserFactory.create()
    client.force_login(user)

    response = client.post(LOGOUT_URL)

    assert response.status_code == 302
    assert written.event_types() == ["user_logged_in", "user_logged_out"]
    assert written.context(written.events("user_logged_out")[0]) == {
        "user_id": user.pk,
        "ip_address": "127.0.0.1",
    }


def test_signing_out_without_being_signed_in_writes_nothing(client: Client) -> None:
    client.post(LOGOUT_URL)

    assert not OutboxEvent.objects.exists()


def test_signing_out_needs_a_post(client: Client) -> None:
    client.force_login(UserFactory.create())

    response = client.get(LOGOUT_URL)

    assert response.status_code == 405
    assert written.event_types() == ["user_logged_in"]
