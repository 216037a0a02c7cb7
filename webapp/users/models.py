"""A user logs in with an e-mail address; there is no username.

One rule decides whether two addresses are the same account: after
`canonical_email`, the whole address is ASCII, and `lower(email)` (the unique
index) compares it. Sign-up, the "taken" check and sign-in all use that rule,
so no look-alike spelling (long s U+017F, dotless i U+0131 in a Unicode-aware database
locale) can create a second account for someone or break their sign-in.
"""

from __future__ import annotations

import unicodedata
from typing import Any, ClassVar

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.db.models import Value
from django.db.models.functions import Lower
from django.db.models.lookups import Exact
from django.utils import timezone


class InvalidEmail(ValueError):
    """The address cannot be put in the canonical form accounts are compared in."""


def canonical_email(address: str) -> str:
    """The form an address is stored and compared in: NFKC, ASCII local part, IDNA ASCII domain.

    The local part keeps its case (mail servers may honour it) but must be
    plain ASCII: the characters beyond it are where look-alikes live (U+017F
    upper-cases to `S`, U+0131 to `I`), and almost no mail system delivers
    to them. An internationalised domain is stored in its ASCII (punycode)
    form, lower-cased, which is how mail is routed to it anyway.
    """
    address = unicodedata.normalize("NFKC", address.strip())
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise InvalidEmail("an e-mail address needs a part before and after the @")
    if not local.isascii():
        raise InvalidEmail("the part before the @ must use plain ASCII characters")
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError as error:
        raise InvalidEmail("the domain is not a valid internationalised domain name") from error
    return f"{local}@{ascii_domain.lower()}"


def email_matches(address: str) -> Exact[str]:
    """The condition "this account's address is `address`", as the unique index compares them."""
    return Exact(Lower("email"), Lower(Value(address)))


class UserManager(BaseUserManager["User"]):
    """Creates users; the site's sign-up goes through `services.user_create` instead."""

    use_in_migrations = True

    def create_user(self, email: str, password: str | None = None, **fields: Any) -> User:
        user = self.model(email=self.normalize_email(email), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **fields: Any) -> User:
        fields.update(is_staff=True, is_superuser=True)
        return self.create_user(email, password, **fields)

    @classmethod
    def normalize_email(cls, email: str | None) -> str:
        """`canonical_email`, for everything that creates users (admin and `createsuperuser` too)."""
        return canonical_email(email or "")

    def get_by_natural_key(self, username: str | None) -> User:
        """The one account with this address, compared as the unique index compares addresses.

        An address that has no canonical form, or (in data older than the
        rule) matches more than one account, matches none: the sign-in fails
        like any other, instead of with an error.
        """
        try:
            address = canonical_email(username or "")
        except InvalidEmail:
            raise self.model.DoesNotExist("no account has this address") from None
        candidates = list(self.filter(email_matches(address)).order_by("pk")[:2])
        if len(candidates) != 1:
            raise self.model.DoesNotExist("no single account has this address")
        return candidates[0]


class User(AbstractBaseUser, PermissionsMixin):
    """A person with an account."""

    email = models.EmailField("e-mail address", max_length=254)
    first_name = models.CharField(max_length=150, blank=True)
    last_name = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)

    objects: ClassVar[UserManager] = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = ["first_name", "last_name"]

    class Meta:
        constraints = (models.UniqueConstraint(Lower("email"), name="users_user_email_ci_unique"),)

    def __str__(self) -> str:
        return f"user {self.pk}"

    def get_full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    def get_short_name(self) -> str:
        return self.first_name
