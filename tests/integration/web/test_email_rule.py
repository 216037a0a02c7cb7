"""One e-mail rule: sign-up, the "taken" check and sign-in compare addresses as the unique index does."""

from __future__ import annotations

import importlib
import json

import pytest
from django.apps import apps as django_apps
from django.db import connection
from django.test import Client

from tests.integration.web.factories import STRONG_PASSWORD, SignUpFactory, UserFactory
from webapp.users.forms import EMAIL_TAKEN_MESSAGE
from webapp.users.models import InvalidEmail, User, canonical_email, email_matches

pytestmark = pytest.mark.django_db

LONG_S = "\u017f"  # upper-cases to "S"
DOTLESS_I = "\u0131"  # upper-cases to "I"


def sign_in(client: Client, email: str, password: str = STRONG_PASSWORD) -> int:
    return client.post("/accounts/login/", {"username": email, "password": password}).status_code


def api_sign_up(client: Client, email: str) -> tuple[int, dict[str, object]]:
    response = client.post(
        "/api/users/", json.dumps(SignUpFactory.build(email=email)), content_type="application/json"
    )
    return response.status_code, response.json()


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("Jane.Doe@Example.COM", "Jane.Doe@example.com"),
        ("  ada@example.com ", "ada@example.com"),
        ("ana@b\u00fccher.example", "ana@xn--bcher-kva.example"),
        # NFKC folds compatibility forms (a full-width "A", the long s) into plain ones.
        ("\uff21da@example.com", "Ada@example.com"),
        (f"{LONG_S}am@example.com", "sam@example.com"),
        # A quoted local part that spells a plain one is that plain one (RFC 5322 3.4.1).
        ('"alice.t3"@example.com', "alice.t3@example.com"),
        ('"al\\ice"@Example.com', "alice@example.com"),
        ("\uff02ada\uff02@example.com", "ada@example.com"),  # full-width quotation marks
    ],
)
def test_addresses_are_stored_in_one_canonical_ascii_form(typed: str, stored: str) -> None:
    assert canonical_email(typed) == stored


@pytest.mark.parametrize(
    "typed",
    [
        f"b{DOTLESS_I}ll@example.com",
        "no-at-sign",
        "@example.com",
        '"john doe"@example.com',
        '"a@b"@example.com',
        '""@example.com',
        '"alice@example.com',
    ],
)
def test_an_address_with_no_canonical_form_is_refused(typed: str) -> None:
    with pytest.raises(InvalidEmail):
        canonical_email(typed)


def test_a_quoted_spelling_of_an_existing_address_is_taken_at_the_api(client: Client) -> None:
    UserFactory.create(email="alice.t3@example.com")

    status, body = api_sign_up(client, '"alice.t3"@example.com')

    assert status == 409
    assert body == {"errors": {"email": ["An account with this e-mail address already exists."]}}
    assert User.objects.count() == 1


def test_a_quoted_spelling_of_an_existing_address_is_taken_on_the_form(client: Client) -> None:
    UserFactory.create(email="alice.t3@example.com")

    response = client.post("/accounts/register/", SignUpFactory.build(email='"Alice.T3"@example.com'))

    assert response.status_code == 200
    assert response.context["form"].errors == {"email": [EMAIL_TAKEN_MESSAGE]}
    assert User.objects.count() == 1


def test_a_quoted_spelling_of_a_new_address_is_stored_plain(client: Client) -> None:
    status, body = api_sign_up(client, '"new.person"@example.com')

    assert status == 201
    assert body["email"] == "new.person@example.com"


def test_a_quoted_local_part_that_is_no_plain_address_is_refused_with_a_reason(client: Client) -> None:
    status, body = api_sign_up(client, '"john doe"@example.com')
    form = client.post("/accounts/register/", SignUpFactory.build(email='"john doe"@example.com'))

    assert status == 400
    assert body == {
        "errors": {"email": ["Enter the address without quotation marks around the part before the @."]}
    }
    assert "without quotation marks" in form.content.decode()
    assert not User.objects.exists()


def test_signing_in_with_a_quoted_spelling_reaches_the_one_account_of_that_mailbox(client: Client) -> None:
    alice = UserFactory.create(email="alice.t3@example.com")

    assert sign_in(client, '"alice.t3"@example.com') == 302
    assert client.session["_auth_user_id"] == str(alice.pk)


def test_a_quoted_account_from_before_the_rule_is_unquoted_unless_that_address_is_taken() -> None:
    migration = importlib.import_module("webapp.users.migrations.0003_unquote_quoted_local_parts")
    alice = UserFactory.create(email="alice.t3@example.com")
    # Rows written before the rule, straight into the table.
    squatter, bob = User.objects.bulk_create(
        [User(email='"alice.t3"@example.com'), User(email='"bob"@example.com')]
    )

    with connection.schema_editor() as editor:
        migration.unquote_local_parts(django_apps, editor)

    assert User.objects.get(pk=bob.pk).email == "bob@example.com"
    assert User.objects.get(pk=squatter.pk).email == '"alice.t3"@example.com'
    assert User.objects.get(pk=alice.pk).email == "alice.t3@example.com"


def test_a_squatting_account_from_before_the_rule_can_no_longer_be_signed_in_to(client: Client) -> None:
    alice = UserFactory.create(email="alice.t3@example.com")
    User.objects.bulk_create([User(email='"alice.t3"@example.com', password=alice.password)])

    assert sign_in(client, '"alice.t3"@example.com') == 302
    assert client.session["_auth_user_id"] == str(alice.pk)


def test_a_look_alike_that_folds_to_an_existing_address_is_that_address_and_taken(client: Client) -> None:
    UserFactory.create(email="sam@example.com")

    status, _ = api_sign_up(client, f"{LONG_S}am@example.com")

    assert status == 409
    assert User.objects.count() == 1


def test_a_look_alike_that_folds_to_nothing_plain_is_refused_with_a_reason(client: Client) -> None:
    UserFactory.create(email="bill@example.com")

    status, body = api_sign_up(client, f"b{DOTLESS_I}ll@example.com")

    assert status == 400
    assert "plain ASCII" in body["errors"]["email"][0]  # type: ignore[index]
    assert User.objects.count() == 1


def test_the_same_address_in_other_case_is_taken(client: Client) -> None:
    UserFactory.create(email="sam@example.com")

    status, _ = api_sign_up(client, "SAM@Example.com")

    assert status == 409


def test_the_form_explains_why_a_look_alike_address_is_refused(client: Client) -> None:
    response = client.post("/accounts/register/", SignUpFactory.build(email=f"b{DOTLESS_I}ll@example.com"))

    assert response.status_code == 200
    assert "plain ASCII" in response.content.decode()
    assert not User.objects.exists()


def test_a_look_alike_account_from_before_the_rule_cannot_break_its_twins_sign_in(client: Client) -> None:
    victim = UserFactory.create(email="sam@example.com")
    # Rows written before the rule existed, straight into the table: the
    # database's upper() folds both to SAM@EXAMPLE.COM, its lower() does not.
    User.objects.bulk_create([User(email=f"{LONG_S}am@example.com", password=victim.password)])

    assert sign_in(client, "sam@example.com") == 302
    assert client.session["_auth_user_id"] == str(victim.pk)


def test_typing_a_look_alike_at_sign_in_is_an_ordinary_refusal(client: Client) -> None:
    UserFactory.create(email="bill@example.com")

    assert sign_in(client, f"b{DOTLESS_I}ll@example.com") == 200
    assert "_auth_user_id" not in client.session


def test_sign_in_matches_the_address_whatever_its_case(client: Client) -> None:
    user = UserFactory.create(email="Mixed.Case@example.com")

    assert sign_in(client, "mixed.case@EXAMPLE.com") == 302
    assert client.session["_auth_user_id"] == str(user.pk)


def test_the_sign_in_lookup_is_served_by_the_unique_index() -> None:
    UserFactory.create_batch(3)
    with connection.cursor() as cursor:
        # A three-row table is scanned whatever the indexes; forbid that to see the plan's choice.
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = User.objects.filter(email_matches("person1@example.com")).explain()

    assert "users_user_email_ci_unique" in plan
