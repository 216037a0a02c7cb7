"""The current password asked for by password change and account deletion is throttled like a sign-in."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from django.test import Client
from pytest_django import Settings

from tests.integration.web import written
from tests.integration.web.factories import STRONG_PASSWORD, UserFactory
from webapp.users.models import User

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse as TestResponse

pytestmark = pytest.mark.django_db

PAIR_LIMIT = 3
COOL_OFF = timedelta(minutes=15)
WRONG = "not-the-Password-41"
NEW_PASSWORD = "amber-Lantern-meadow-58"


@pytest.fixture(autouse=True)
def _small_limits(settings: Settings) -> None:
    settings.THROTTLE_SIGN_IN_PAIR_FAILURES = PAIR_LIMIT
    settings.AXES_COOLOFF_TIME = COOL_OFF


def change_password(client: Client, current: str) -> TestResponse:
    data = {"old_password": current, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    return client.post("/accounts/password/change/", data)


def delete_account(client: Client, current: str) -> TestResponse:
    return client.post("/accounts/delete/", {"password": current})


def signed_in(user: User) -> Client:
    client = Client(REMOTE_ADDR="198.51.100.7")
    client.force_login(user)
    return client


@pytest.mark.parametrize("page", [change_password, delete_account], ids=["password change", "deletion"])
def test_wrong_current_passwords_lock_out_with_429_and_end_the_session(
    page: Callable[[Client, str], TestResponse],
) -> None:
    user = UserFactory.create()
    client = signed_in(user)
    for _ in range(PAIR_LIMIT - 1):
        assert page(client, WRONG).status_code == 200

    response = page(client, WRONG)

    assert response.status_code == 429
    assert response["Retry-After"] == str(int(COOL_OFF.total_seconds()))
    assert client.get("/accounts/").status_code == 302, "the session should have ended"
    user.refresh_from_db()
    assert user.check_password(STRONG_PASSWORD)
    assert User.objects.filter(pk=user.pk).exists()


def test_the_guesser_cannot_sign_in_again_from_there_during_the_cool_off() -> None:
    user = UserFactory.create()
    client = signed_in(user)
    for _ in range(PAIR_LIMIT):
        change_password(client, WRONG)

    response = client.post("/accounts/login/", {"username": user.email, "password": STRONG_PASSWORD})

    assert response.status_code == 429


def test_wrong_current_passwords_are_audited_as_failed_sign_ins_of_the_account() -> None:
    user = UserFactory.create()

    delete_account(signed_in(user), WRONG)

    [event] = written.events("user_login_failed")
    assert written.context(event)["user_id"] == user.pk


def test_failed_sign_ins_and_wrong_current_passwords_add_up() -> None:
    user = UserFactory.create()
    client = Client(REMOTE_ADDR="198.51.100.7")
    for _ in range(PAIR_LIMIT - 1):
        client.post("/accounts/login/", {"username": user.email, "password": WRONG})
    client.force_login(user)

    assert delete_account(client, WRONG).status_code == 429


def test_the_right_current_password_still_works_below_the_limit() -> None:
    user = UserFactory.create()
    client = signed_in(user)
    for _ in range(PAIR_LIMIT - 1):
        change_password(client, WRONG)

    assert change_password(client, STRONG_PASSWORD).status_code == 302
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
