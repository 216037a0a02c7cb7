"""Reads of users; writes live in `services.py`."""

from __future__ import annotations

from django.db.models import Value
from django.db.models.functions import Lower
from django.db.models.lookups import Exact

from webapp.users.models import User


def user_email_taken(*, email: str) -> bool:
    """Whether an account already uses this e-mail address, compared case-insensitively."""
    # Compared as `lower(email)`, the expression of the unique index, so the
    # database can answer from the index and agrees with the constraint.
    return User.objects.filter(Exact(Lower("email"), Lower(Value(email)))).exists()


def user_get(*, user_id: int) -> User | None:
    """The user with this id, or None when there is none (any more)."""
    return User.objects.filter(pk=user_id).first()


def user_get_by_email(*, email: str) -> User | None:
    """The user with this e-mail address, compared case-insensitively, or None."""
    return User.objects.filter(Exact(Lower("email"), Lower(Value(email)))).first()
