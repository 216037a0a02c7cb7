"""`/accounts/register/`: sign-up through the HTML form."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests.integration.web import written
from tests.integration.web.factories import SignUpFactory, UserFactory
from webapp.outbox.models import OutboxEvent
from webapp.users.models import User

pytestmark = pytest.mark.django_db

REGISTER_URL = "/accounts/register/"
CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@pytest.fixture
def browser() -> Client:
    """A client that, like a browser, is refused without a CSRF token."""
    return Client(enforce_csrf_checks=True)


def csrf_token(browser: Client) -> str:
    """Open the sign-up page and read the token from its form, as a browser would."""
    page = browser.get(REGISTER_URL)
    match = CSRF_INPUT.search(page.content.decode())
    assert match is not None
    return match.group(1)


def test_the_sign_up_page_renders_a_form_with_a_csrf_token(browser: Client) -> None:
    response = browser.get(REGISTER_URL)

    assert response.status_code == 200
    assert CSRF_INPUT.search(response.content.decode())
    assert "csrftoken" in response.cookies
    for name in ("email", "password", "first_name", "last_name"):
        assert f'name="{name}"' in response.content.decode()


def test_sign_up_through_the_form_writes_one_user_and_one_user_created_event(browser: Client) -> None:
    data = SignUpFactory.build()

    browser.post(REGISTER_URL, {**data, "csrfmiddlewaretoken": csrf_token(browser)})

    user = User.objects.get()
    assert user.email == data["email"]
    [event] = written.events("user_created")
    written.assert_user_created(event, data)


def test_sign_up_through_the_form_signs_the_person_in_and_goes_home(browser: Client) -> None:
    data = SignUpFactory.build()

    response = browser.post(REGISTER_URL, {**data, "csrfmiddlewaretoken": csrf_token(browser)}, follow=True)

    assert response.redirect_chain == [("/", 302)]
    assert response.context["user"].is_authenticated
    assert "You are signed in" in response.content.decode()
    # The sign-in that follows a sign-up is audited like any other.
    assert written.event_types() == ["user_created", "user_logged_in"]


def test_sign_up_without_a_csrf_token_is_refused_and_writes_nothing(browser: Client) -> None:
    response = browser.post(REGISTER_URL, SignUpFactory.build())

    assert response.status_code == 403
    assert not User.objects.exists()
    assert not OutboxEvent.objects.exists()


def test_a_taken_email_is_shown_on_the_email_field_and_writes_nothing(browser: Client) -> None:
    UserFactory.create(email="taken@example.com")
    data = SignUpFactory.build(email="Taken@EXAMPLE.com")

    response = browser.post(REGISTER_URL, {**data, "csrfmiddlewaretoken": csrf_token(browser)})

    assert response.status_code == 200
    assert response.context["form"].errors == {
        "email": ["An account with this e-mail address already exists."]
    }
    assert "An account with this e-mail address already exists." in response.content.decode()
    assert User.objects.count() == 1
    assert not OutboxEvent.objects.exists()


def test_a_weak_password_is_shown_on_the_password_field_and_writes_nothing(browser: Client) -> None:
    data = SignUpFactory.build(password="12345678")

    response = browser.post(REGISTER_URL, {**data, "csrfmiddlewaretoken": csrf_token(browser)})

    assert response.status_code == 200
    assert list(response.context["form"].errors) == ["password"]
    assert not User.objects.exists()
    assert not OutboxEvent.objects.exists()


def test_an_invalid_email_is_shown_on_the_email_field(browser: Client) -> None:
    data = SignUpFactory.build(email="nobody-at-example.com")

    response = browser.post(REGISTER_URL, {**data, "csrfmiddlewaretoken": csrf_token(browser)})

    assert list(response.context["form"].errors) == ["email"]
    assert not User.objects.exists()


def test_the_home_page_says_when_you_are_not_signed_in(client: Client) -> None:
    response = client.get("/")

    assert response.status_code == 200
    assert "You are not signed in" in response.content.decode()


def test_the_home_page_says_when_you_are_signed_in(client: Client) -> None:
    client.force_login(UserFactory.create())

    response = client.get("/")

    assert "You are signed in" in response.content.decode()
