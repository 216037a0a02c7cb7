"""`POST /api/users/`: sign-up over JSON."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, timedelta
from typing import TYPE_CHECKING

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.integration.web import written
from tests.integration.web.factories import SignUpFactory, UserFactory
from webapp.outbox.models import OutboxEvent
from webapp.users.models import User

if TYPE_CHECKING:
    # The test client's response (with `.json()`); django-stubs names it only privately.
    from django.test.client import _MonkeyPatchedWSGIResponse as TestResponse

pytestmark = pytest.mark.django_db

API_URL = "/api/users/"


def post_json(client: Client, body: object) -> TestResponse:
    """POST a value to the API as a JSON body."""
    return client.post(API_URL, json.dumps(body), content_type="application/json")


def test_the_api_lives_at_api_users() -> None:
    assert reverse("users:api-user-create") == API_URL


def test_sign_up_answers_201_with_the_new_users_id_and_email(client: Client) -> None:
    data = SignUpFactory.build()

    response = post_json(client, data)

    assert response.status_code == 201
    user = User.objects.get()
    assert response.json() == {"id": user.pk, "email": data["email"]}


def test_sign_up_writes_exactly_one_user_and_one_user_created_event(client: Client) -> None:
    data = SignUpFactory.build()

    post_json(client, data)

    user = User.objects.get()
    assert (user.email, user.first_name, user.last_name) == (
        data["email"],
        data["first_name"],
        data["last_name"],
    )
    assert written.event_types() == ["user_created"]


def test_the_user_created_event_has_the_contract_fields(client: Client) -> None:
    data = SignUpFactory.build()

    post_json(client, data)

    event = OutboxEvent.objects.get()
    written.assert_user_created(event, data)
    # Compact JSON, as the analysts' `event_context` column holds it.
    assert ": " not in written.context_text(event)
    assert isinstance(event.event_id, uuid.UUID)
    assert event.event_date_time.utcoffset() == timedelta(0)
    assert abs(timezone.now().astimezone(UTC) - event.event_date_time) < timedelta(seconds=10)


def test_a_taken_email_in_another_case_is_refused_with_409_and_writes_nothing(client: Client) -> None:
    UserFactory.create(email="taken@example.com")
    data = SignUpFactory.build(email="TAKEN@Example.COM")

    response = post_json(client, data)

    assert response.status_code == 409
    assert response.json() == {"errors": {"email": ["An account with this e-mail address already exists."]}}
    assert User.objects.count() == 1
    assert not OutboxEvent.objects.exists()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        pytest.param({"email": "not-an-address"}, "email", id="bad-email"),
        pytest.param({"password": "123"}, "password", id="weak-password"),
        pytest.param({"password": "password"}, "password", id="common-password"),
        pytest.param({"first_name": None}, "first_name", id="null-field"),
        pytest.param({"last_name": ""}, "last_name", id="empty-field"),
        pytest.param({"first_name": 42}, "first_name", id="number-for-a-name"),
        pytest.param({"email": ["a@example.com"]}, "email", id="list-for-an-email"),
        pytest.param({"password": {"x": 1}}, "password", id="object-for-a-password"),
    ],
)
def test_invalid_input_is_refused_with_400_and_field_errors_and_writes_nothing(
    client: Client, change: dict[str, object], field: str
) -> None:
    response = post_json(client, {**SignUpFactory.build(), **change})

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert list(errors) == [field]
    assert errors[field]
    assert all(isinstance(message, str) for message in errors[field])
    assert not User.objects.exists()
    assert not OutboxEvent.objects.exists()


def test_a_missing_field_is_refused_with_400_naming_it(client: Client) -> None:
    data = SignUpFactory.build()
    del data["last_name"]

    response = post_json(client, data)

    assert response.status_code == 400
    assert response.json() == {"errors": {"last_name": ["This field is required."]}}
    assert not User.objects.exists()
    assert not OutboxEvent.objects.exists()


def test_a_password_resembling_the_name_is_refused(client: Client) -> None:
    data = SignUpFactory.build(first_name="Bartholomew", password="Bartholomew1")

    response = post_json(client, data)

    assert response.status_code == 400
    assert "password" in response.json()["errors"]
    assert not User.objects.exists()


@pytest.mark.parametrize(
    "body", [b"{not json", b'{"email": ', b"\xff\xfe\xfa"], ids=["garbage", "cut", "bytes"]
)
def test_a_malformed_json_body_is_refused_with_400_and_writes_nothing(client: Client, body: bytes) -> None:
    response = client.post(API_URL, body, content_type="application/json")

    assert response.status_code == 400
    assert response.json() == {"errors": {"__all__": ["The body is not valid JSON."]}}
    assert not User.objects.exists()
    assert not OutboxEvent.objects.exists()


@pytest.mark.parametrize("body", [[], "a string", 7, None], ids=["array", "string", "number", "null"])
def test_a_json_body_that_is_not_an_object_is_refused_with_400(client: Client, body: object) -> None:
    response = post_json(client, body)

    assert response.status_code == 400
    assert response.json() == {"errors": {"__all__": ["The body must be a JSON object."]}}
    assert not User.objects.exists()


def test_a_form_encoded_body_is_refused_with_415(client: Client) -> None:
    response = client.post(API_URL, SignUpFactory.build())

    assert response.status_code == 415
    assert "__all__" in response.json()["errors"]
    assert not User.objects.exists()


@pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
def test_methods_other_than_post_are_refused_with_405(client: Client, method: str) -> None:
    response = getattr(client, method)(API_URL)

    assert response.status_code == 405
    assert response["Allow"] == "POST"


def test_the_api_needs_no_csrf_token() -> None:
    response = post_json(Client(enforce_csrf_checks=True), SignUpFactory.build())

    assert response.status_code == 201
