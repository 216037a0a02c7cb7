"""Factories for the web site's tests."""

from __future__ import annotations

import factory
from django.urls import reverse
from factory.django import DjangoModelFactory, Password

from webapp.users.models import User

# Passes every password validator in the settings and resembles no generated name.
STRONG_PASSWORD = "violet-Kettle-harbour-73"


class UserFactory(DjangoModelFactory[User]):
    """A user saved directly, without the sign-up service (so without an event)."""

    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"person{n}@example.com")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    password = Password(STRONG_PASSWORD)


class SignUpFactory(factory.Factory[dict[str, str]]):
    """What a person types into the sign-up form or sends to the API."""

    class Meta:
        model = dict

    email = factory.Sequence(lambda n: f"new.person{n}@example.com")
    password = STRONG_PASSWORD
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")


def verify_link(uidb64: str, token: str) -> str:
    """The verification link a sign-up through the test client's site would e-mail."""
    return "http://testserver" + reverse("users:email-verify", kwargs={"uidb64": uidb64, "token": token})
