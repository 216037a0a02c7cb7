"""`/accounts/password/change/`: a signed-in person changes their password."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.integration.web import written
from tests.integration.web.factories import STRONG_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

CHANGE_URL = "/accounts/password/change/"
NEW_PASSWORD = "amber-Lantern-meadow-58"


def test_changing_the_password_writes_user_password_changed_and_keeps_the_session(client: Client) -> None:
    user = UserFactory.create()
    client.force_login(user)

    response = client.post(
        CHANGE_URL,
        {"old_password": STRONG_PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )

    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    [event] = written.events("user_password_changed")
    assert written.context(event) == {"user_id": user.pk, "ip_address": "127.0.0.1"}
    assert NEW_PASSWORD not in written.context_text(event)
    assert client.get("/accounts/").status_code == 200


def test_other_sessions_of_the_user_end_when_the_password_changes(client: Client) -> None:
    user = UserFactory.create()
    other_device = Client()
    other_device.force_login(user)
    client.force_login(user)

    client.post(
        CHANGE_URL,
        {"old_password": STRONG_PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )

    assert other_device.get("/accounts/").status_code == 302


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        (
            {
                "old_password": "wrong-Password-11",
                "new_password1": NEW_PASSWORD,
                "new_password2": NEW_PASSWORD,
            },
            "old_password",
            "Your old password was entered incorrectly",
        ),
        (
            {
                "old_password": STRONG_PASSWORD,
                "new_password1": NEW_PASSWORD,
                "new_password2": "something-Else-22",
            },
            "new_password2",
            "The two password fields didn\u2019t match.",
        ),
        (
            {"old_password": STRONG_PASSWORD, "new_password1": "password", "new_password2": "password"},
            "new_password2",
            "This password is too common.",
        ),
    ],
    ids=["wrong old password", "mismatch", "too common"],
)
def test_a_refused_change_says_why_on_the_field_and_writes_nothing(
    client: Client, data: dict[str, str], field: str, message: str
) -> None:
    user = UserFactory.create()
    client.force_login(user)

    response = client.post(CHANGE_URL, data)

    assert response.status_code == 200
    assert any(message in error for error in response.context["form"].errors[field])
    user.refresh_from_db()
    assert user.check_password(STRONG_PASSWORD)
    assert written.events("user_password_changed") == []
