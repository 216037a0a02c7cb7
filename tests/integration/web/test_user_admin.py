"""Accounts in the admin: found, their access changed, deleted as their owner would delete them."""

from __future__ import annotations

from django.test import Client

from tests.integration.web.factories import UserFactory
from webapp.outbox.models import OutboxEvent
from webapp.privacy.models import ErasureRequest
from webapp.users.models import User

CHANGELIST_URL = "/admin/users/user/"


def change_url(user: User) -> str:
    return f"{CHANGELIST_URL}{user.pk}/change/"


def test_the_admin_lists_accounts_with_their_address_names_and_access(admin_client: Client) -> None:
    user = UserFactory.create(email="ada@example.com", first_name="Ada", last_name="Lovelace", is_staff=False)

    response = admin_client.get(CHANGELIST_URL)

    assert response.status_code == 200
    page = response.content.decode()
    for shown in ("ada@example.com", "Ada", "Lovelace", "column-is_active", "column-date_joined"):
        assert shown in page
    assert change_url(user) in page


def test_the_admin_finds_an_account_by_part_of_its_address_or_name(admin_client: Client) -> None:
    UserFactory.create(email="grace@example.com", first_name="Grace", last_name="Hopper")
    UserFactory.create(email="alan@example.com", first_name="Alan", last_name="Turing")

    by_address = admin_client.get(CHANGELIST_URL, {"q": "grace@"}).content.decode()
    by_name = admin_client.get(CHANGELIST_URL, {"q": "Turing"}).content.decode()

    assert "grace@example.com" in by_address
    assert "alan@example.com" not in by_address
    assert "alan@example.com" in by_name
    assert "grace@example.com" not in by_name


def test_no_admin_page_shows_the_password_hash(admin_client: Client) -> None:
    user = UserFactory.create()
    user.refresh_from_db()

    pages = [admin_client.get(url).content.decode() for url in (CHANGELIST_URL, change_url(user))]

    assert user.password.startswith("argon2")
    for page in pages:
        assert user.password not in page
        assert "argon2" not in page
        assert 'name="password"' not in page


def test_the_admin_withdraws_access_but_leaves_names_and_address_to_their_owner(admin_client: Client) -> None:
    user = UserFactory.create(email="ada@example.com", first_name="Ada", last_name="Lovelace")

    response = admin_client.post(
        change_url(user),
        {"email": "someone.else@example.com", "first_name": "Eve", "is_active": "", "is_staff": ""},
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    user.refresh_from_db()
    assert user.is_active is False
    assert (user.email, user.first_name, user.last_name) == ("ada@example.com", "Ada", "Lovelace")


def test_accounts_cannot_be_added_in_the_admin(admin_client: Client) -> None:
    assert admin_client.get(f"{CHANGELIST_URL}add/").status_code == 403


def test_an_account_deleted_in_the_admin_is_deleted_and_erased_as_by_its_owner(admin_client: Client) -> None:
    user = UserFactory.create()
    user_id = user.pk

    response = admin_client.post(f"{CHANGELIST_URL}{user_id}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not User.objects.filter(pk=user_id).exists()
    assert OutboxEvent.objects.filter(event_type="user_deleted").count() == 1
    assert ErasureRequest.objects.filter(user_id=user_id).exists()


def test_accounts_deleted_together_in_the_admin_are_each_erased(admin_client: Client) -> None:
    users = UserFactory.create_batch(2)

    response = admin_client.post(
        CHANGELIST_URL,
        {"action": "delete_selected", "_selected_action": [user.pk for user in users], "post": "yes"},
    )

    assert response.status_code == 302
    assert not User.objects.filter(pk__in=[user.pk for user in users]).exists()
    assert OutboxEvent.objects.filter(event_type="user_deleted").count() == 2
    assert ErasureRequest.objects.filter(user_id__in=[user.pk for user in users]).count() == 2
