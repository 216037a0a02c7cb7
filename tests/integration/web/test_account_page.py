"""`/accounts/`: the account page, and editing the name on it."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.integration.web import written
from tests.integration.web.factories import UserFactory
from webapp.users.models import User

pytestmark = pytest.mark.django_db

ACCOUNT_URL = "/accounts/"


def test_the_account_page_needs_a_signed_in_user(client: Client) -> None:
    response = client.get(ACCOUNT_URL)

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/accounts/"


def test_the_account_page_shows_the_name_the_address_and_links_to_the_other_pages(client: Client) -> None:
    user = UserFactory.create(first_name="Holly", last_name="Gennero")
    client.force_login(user)

    page = client.get(ACCOUNT_URL).content.decode()

    assert user.email in page
    assert "Holly Gennero" in page
    for link in ("/accounts/activity/", "/accounts/password/change/", "/accounts/delete/"):
        assert f'href="{link}"' in page


def test_changing_the_name_writes_user_updated_with_the_changed_field_names_only(client: Client) -> None:
    user = UserFactory.create(first_name="Holly", last_name="Gennero")
    client.force_login(user)

    response = client.post(ACCOUNT_URL, {"first_name": "Holly", "last_name": "McClane"})

    assert response.status_code == 302
    user.refresh_from_db()
    assert user.last_name == "McClane"
    [event] = written.events("user_updated")
    assert written.context(event) == {
        "user_id": user.pk,
        "changed_fields": ["last_name"],
        "ip_address": "127.0.0.1",
    }
    assert "Gennero" not in written.context_text(event)
    assert "McClane" not in written.context_text(event)


def test_saving_the_same_name_writes_nothing(client: Client) -> None:
    user = UserFactory.create(first_name="Holly", last_name="Gennero")
    client.force_login(user)

    client.post(ACCOUNT_URL, {"first_name": "Holly", "last_name": "Gennero"})

    assert written.events("user_updated") == []


def test_an_empty_name_is_refused_with_a_message_on_the_field_and_nothing_is_written(client: Client) -> None:
    user = UserFactory.create(first_name="Holly", last_name="Gennero")
    client.force_login(user)

    response = client.post(ACCOUNT_URL, {"first_name": "", "last_name": "x" * 151})

    assert response.status_code == 200
    assert response.context["form"].errors == {
        "first_name": ["This field is required."],
        "last_name": ["Ensure this value has at most 150 characters (it has 151)."],
    }
    page = response.content.decode()
    assert 'role="alert"' in page
    assert 'aria-invalid="true"' in page
    assert User.objects.get().last_name == "Gennero"
    assert written.events("user_updated") == []
