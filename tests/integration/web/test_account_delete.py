"""`/accounts/delete/`: a person deletes their account, confirming with the password."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.integration.web import written
from tests.integration.web.factories import STRONG_PASSWORD, UserFactory
from webapp.privacy.models import ErasureRequest
from webapp.users.models import User

pytestmark = pytest.mark.django_db

DELETE_URL = "/accounts/delete/"


def test_deleting_the_account_removes_the_user_writes_user_deleted_and_signs_out(client: Client) -> None:
    user = UserFactory.create()
    user_id = user.pk
    client.force_login(user)

    response = client.post(DELETE_URL, {"password": STRONG_PASSWORD})

    assert response.status_code == 302
    assert not User.objects.filter(pk=user_id).exists()
    [event] = written.events("user_deleted")
    assert written.context(event) == {}
    assert ErasureRequest.objects.filter(user_id=user_id).exists()
    assert written.events("user_logged_out") == []
    assert client.get("/accounts/").status_code == 302


@pytest.mark.parametrize(
    ("password", "message"),
    [("wrong-Password-11", "The password is not correct."), ("", "This field is required.")],
    ids=["wrong password", "no password"],
)
def test_a_wrong_or_missing_password_keeps_the_account_and_says_why(
    client: Client, password: str, message: str
) -> None:
    user = UserFactory.create()
    client.force_login(user)

    response = client.post(DELETE_URL, {"password": password})

    assert response.status_code == 200
    assert response.context["form"].errors == {"password": [message]}
    assert User.objects.filter(pk=user.pk).exists()
    assert written.events("user_deleted") == []
    assert not ErasureRequest.objects.exists()
