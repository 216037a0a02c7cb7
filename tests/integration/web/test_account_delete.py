"""`/accounts/delete/`: a person deletes their account, confirming with the password."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone
from pytest_django import Settings

from tests.integration.web import written
from tests.integration.web.factories import STRONG_PASSWORD, UserFactory
from webapp.privacy.models import ErasureRequest
from webapp.users.models import User
from webapp.users.tasks import sessions_clear_expired

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


def test_deleting_the_account_removes_its_other_sessions_and_no_one_elses(client: Client) -> None:
    user, bystander = UserFactory.create_batch(2)
    for device in (Client(), Client()):
        device.force_login(user)
    Client().force_login(bystander)
    client.force_login(user)

    client.post(DELETE_URL, {"password": STRONG_PASSWORD})

    signed_in_as = [str(session.get_decoded().get("_auth_user_id")) for session in Session.objects.all()]
    assert str(user.pk) not in signed_in_as
    assert signed_in_as.count(str(bystander.pk)) == 1


def test_expired_sessions_are_swept_by_the_daily_task() -> None:
    device = Client()
    device.force_login(UserFactory.create())
    Session.objects.update(expire_date=timezone.now() - timedelta(seconds=1))
    live = Client()
    live.force_login(UserFactory.create())

    sessions_clear_expired()

    assert Session.objects.count() == 1


def test_beat_sweeps_expired_sessions_every_day(settings: Settings) -> None:
    [entry] = [
        entry
        for entry in settings.CELERY_BEAT_SCHEDULE.values()
        if entry["task"] == "webapp.users.tasks.sessions_clear_expired"
    ]
    assert entry["schedule"] == 24 * 60 * 60
