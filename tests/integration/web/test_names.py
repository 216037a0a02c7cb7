"""Names stay on one line: no line breaks, control characters or bidi overrides, wherever a name is set."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from tests.integration.web import written
from tests.integration.web.factories import SignUpFactory, UserFactory
from webapp.mail.models import OutgoingEmail
from webapp.users.models import NAME_REFUSED_MESSAGE, User

pytestmark = pytest.mark.django_db

# What a phishing text needs to look like a message of its own, and its relatives.
REFUSED = {
    "crlf": "Eve\r\nBcc: evil@example.com\r\n\r\nYour account is locked: https://evil.example/",
    "line-feed": "Eve\nYour account is locked",
    "tab": "Eve\tSmith",
    "escape": "Eve\x1b[31mred",
    "next-line": "Eve\x85Smith",
    "line-separator": "Eve\u2028Smith",
    "paragraph-separator": "Eve\u2029Smith",
    "right-to-left-override": "Eve\u202egpj.exe",
    "first-strong-isolate": "Eve\u2068Smith",
}
ACCEPTED = ["Zoë", "Żółć", "José María", "O'Brien-Smith", "李小龍", "محمد", "Nguyễn Văn A"]


def api_sign_up(client: Client, **fields: str) -> tuple[int, dict[str, object]]:
    response = client.post(
        "/api/users/", json.dumps(SignUpFactory.build(**fields)), content_type="application/json"
    )
    return response.status_code, response.json()


def assert_nothing_written() -> None:
    assert not User.objects.exists()
    assert written.events() == []
    assert not OutgoingEmail.objects.exists()


@pytest.mark.parametrize("name", REFUSED.values(), ids=REFUSED.keys())
def test_the_api_refuses_a_first_name_off_its_line_with_400_and_writes_nothing(
    client: Client, name: str
) -> None:
    status, body = api_sign_up(client, first_name=name)

    assert status == 400
    assert body == {"errors": {"first_name": [NAME_REFUSED_MESSAGE]}}
    assert_nothing_written()


def test_the_api_refuses_a_last_name_off_its_line_too(client: Client) -> None:
    status, body = api_sign_up(client, last_name=REFUSED["crlf"])

    assert status == 400
    assert body == {"errors": {"last_name": [NAME_REFUSED_MESSAGE]}}
    assert_nothing_written()


@pytest.mark.parametrize("name", ACCEPTED)
def test_names_in_any_script_are_accepted(client: Client, name: str) -> None:
    status, _ = api_sign_up(client, first_name=name, last_name=name)

    assert status == 201
    assert User.objects.get().first_name == name


@pytest.mark.parametrize("field", ["first_name", "last_name"])
def test_the_sign_up_form_refuses_a_name_off_its_line_on_the_field_and_writes_nothing(
    client: Client, field: str
) -> None:
    response = client.post("/accounts/register/", SignUpFactory.build(**{field: REFUSED["crlf"]}))

    assert response.status_code == 200
    assert response.context["form"].errors == {field: [NAME_REFUSED_MESSAGE]}
    assert 'aria-invalid="true"' in response.content.decode()
    assert_nothing_written()


@pytest.mark.parametrize("name", [REFUSED["crlf"], REFUSED["right-to-left-override"]])
def test_the_account_page_refuses_a_new_name_off_its_line_and_keeps_the_old_one(
    client: Client, name: str
) -> None:
    user = UserFactory.create(first_name="Holly", last_name="Gennero")
    client.force_login(user)

    response = client.post("/accounts/", {"first_name": name, "last_name": "Gennero"})

    assert response.status_code == 200
    assert response.context["form"].errors == {"first_name": [NAME_REFUSED_MESSAGE]}
    user.refresh_from_db()
    assert user.first_name == "Holly"
    assert written.events("user_updated") == []


def test_the_model_refuses_such_a_name_too_so_the_admin_does() -> None:
    user = UserFactory.create()
    user.first_name = REFUSED["line-feed"]

    with pytest.raises(ValidationError) as refused:
        user.full_clean()

    assert refused.value.message_dict == {"first_name": [NAME_REFUSED_MESSAGE]}
