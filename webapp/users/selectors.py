"""Reads of users; writes live in `services.py`."""

from __future__ import annotations

from django.utils.crypto import salted_hmac

from webapp.users.models import InvalidEmail, User, canonical_email, email_matches

# Namespaces the keyed hash of typed addresses; the key is SECRET_KEY.
_PSEUDONYM_SALT = "webapp.users.email_pseudonym"


def user_email_taken(*, email: str) -> bool:
    """Whether an account already uses this e-mail address, compared case-insensitively."""
    # Compared as `lower(email)`, the expression of the unique index, so the
    # database can answer from the index and agrees with the constraint.
    return User.objects.filter(email_matches(email)).exists()


def user_for_address(*, email: str) -> User | None:
    """The one account whose address this is (compared as the unique index does), or None."""
    try:
        address = canonical_email(email)
    except InvalidEmail:
        return None
    matches = list(User.objects.filter(email_matches(address)).order_by("pk")[:2])
    return matches[0] if len(matches) == 1 else None


def email_pseudonym(email: str) -> str:
    """A keyed, irreversible stand-in for an address: equal for every spelling of one account's address."""
    try:
        folded = canonical_email(email).lower()
    except InvalidEmail:
        folded = email.strip().lower()
    return salted_hmac(_PSEUDONYM_SALT, folded, algorithm="sha256").hexdigest()


def user_get(*, user_id: int) -> User | None:
    """The user with this id, or None when there is none (any more)."""
    return User.objects.filter(pk=user_id).first()
