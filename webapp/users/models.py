"""A user logs in with an e-mail address; there is no username.

One rule decides whether two addresses are the same account: after
`canonical_email`, the whole address is ASCII, and `lower(email)` (the unique
index) compares it. Sign-up, the "taken" check and sign-in all use that rule,
so no look-alike spelling (long s U+017F, dotless i U+0131 in a Unicode-aware database
locale), and no quoted spelling of a plain address (`"ada"@example.com` is
`ada@example.com`), can create a second account for someone or break their sign-in.

Names are shown to people and were once put into e-mail: `validate_name`
keeps them on one line.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, ClassVar, Final

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Value
from django.db.models.functions import Lower
from django.db.models.lookups import Exact
from django.utils import timezone


class InvalidEmail(ValueError):
    """The address cannot be put in the canonical form accounts are compared in."""


class QuotedLocalPart(InvalidEmail):
    """The part before the @ is quoted and names no plain (dot-atom) mailbox."""


# RFC 5322's dot-atom: what a local part may be without quotes.
_ATEXT: Final = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_DOT_ATOM: Final = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*\Z")
# A quoted-pair inside a quoted string stands for the character after the backslash.
_QUOTED_PAIR: Final = re.compile(r"\\(.)", re.DOTALL)


def _unquoted(local: str) -> str:
    """A quoted local part as the plain mailbox name it spells; any other local part as it is.

    `"ada"`, `"a\\da"` and `ada` name one mailbox (RFC 5322 3.4.1), so they
    must be one account. A quoted string whose content is not a dot-atom
    (spaces, a second @, ...) is refused: almost no mail system hands out such
    names, and each would need its own rules of equivalence.
    """
    if not local.startswith('"'):
        return local
    if len(local) < 2 or not local.endswith('"'):
        raise QuotedLocalPart("the part before the @ has an unmatched quotation mark")
    content = _QUOTED_PAIR.sub(r"\1", local[1:-1])
    if not _DOT_ATOM.match(content):
        raise QuotedLocalPart("a quoted part before the @ must spell a plain address")
    return content


def canonical_email(address: str) -> str:
    """The form an address is stored and compared in: NFKC, unquoted ASCII local part, IDNA ASCII domain.

    The local part loses needless quotes (`"ada"` is `ada`) and keeps its
    case (mail servers may honour it) but must be plain ASCII: the characters
    beyond it are where look-alikes live (U+017F upper-cases to `S`, U+0131 to
    `I`), and almost no mail system delivers to them. An internationalised
    domain is stored in its ASCII (punycode) form, lower-cased, which is how
    mail is routed to it anyway.
    """
    address = unicodedata.normalize("NFKC", address.strip())
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise InvalidEmail("an e-mail address needs a part before and after the @")
    local = _unquoted(local)
    if not local.isascii():
        raise InvalidEmail("the part before the @ must use plain ASCII characters")
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError as error:
        raise InvalidEmail("the domain is not a valid internationalised domain name") from error
    return f"{local}@{ascii_domain.lower()}"


# Characters that take a name off its line or rearrange the text around it:
# control characters (C0, DEL, C1: line feed, carriage return, tab, escape...),
# the Unicode line and paragraph separators, and the bidirectional embeddings,
# overrides and isolates. One regular-expression class for the check and the
# API's description (Python and ECMAScript read `\uXXXX` alike).
NAME_REFUSED_CHARACTERS: Final = r"\u0000-\u001f\u007f-\u009f\u2028-\u202e\u2066-\u2069"
_NAME_REFUSED: Final = re.compile(f"[{NAME_REFUSED_CHARACTERS}]")
NAME_REFUSED_MESSAGE: Final = "Enter a name on one line, without tabs or other control characters."


def validate_name(value: str) -> None:
    """Refuse a first or last name that holds a line break, a control character or a bidi override.

    A name is shown on pages and, once its owner has verified their address,
    may be put into e-mail to them: it must not be able to start a line of
    its own there, or make the text around it read differently.
    """
    if _NAME_REFUSED.search(value):
        raise ValidationError(NAME_REFUSED_MESSAGE, code="control_characters")


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
    first_name = models.CharField(max_length=150, blank=True, validators=[validate_name])
    last_name = models.CharField(max_length=150, blank=True, validators=[validate_name])
    # When the person proved they receive mail at `email` (the link sent at
    # sign-up); None until then.
    email_verified_at = models.DateTimeField("e-mail address verified at", null=True, blank=True)
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

    @property
    def email_verified(self) -> bool:
        """Whether the person proved they receive mail at their address."""
        return self.email_verified_at is not None
