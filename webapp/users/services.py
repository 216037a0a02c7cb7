"""Writes about users: sign-up and the security audit of sign-in and sign-out.

Every write publishes its event through `EventLogClient` inside the same
`transaction.atomic()` as the change it describes, so the two commit or roll
back together. Side effects outside the database (e-mail) wait for the commit.
"""

from __future__ import annotations

import structlog
from django.contrib.auth.password_validation import validate_password
from django.db import IntegrityError, transaction

from shared.events import UserCreated, UserLoggedIn, UserLoggedOut, UserLoginFailed
from webapp.outbox.client import EventLogClient
from webapp.users.models import User
from webapp.users.selectors import user_email_taken
from webapp.users.tasks import send_welcome_email

logger = structlog.get_logger(__name__)

# The case-insensitive unique constraint on `lower(email)` (see `User.Meta`).
EMAIL_UNIQUE_CONSTRAINT = "users_user_email_ci_unique"


class EmailTaken(ValueError):
    """Another account already uses this e-mail address (compared case-insensitively)."""


def user_create(*, email: str, password: str, first_name: str, last_name: str) -> User:
    """Sign a person up: save the user and publish `UserCreated` in one transaction.

    Raises `django.core.exceptions.ValidationError` when the password validators
    reject the password and `EmailTaken` when the e-mail address is in use; in
    both cases nothing is written. The welcome e-mail is enqueued after commit.
    """
    user = User(email=User.objects.normalize_email(email), first_name=first_name, last_name=last_name)
    # With the user instance, so a password resembling the name or the address is refused.
    validate_password(password, user=user)
    # The early check gives the common case a clear answer without a failed
    # INSERT; the constraint below still decides a race between two sign-ups.
    if user_email_taken(email=user.email):
        logger.info("user_create_rejected", reason="email_taken")
        raise EmailTaken("a user with this e-mail address already exists")
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
            EventLogClient.from_settings().publish(
                UserCreated(email=user.email, first_name=user.first_name, last_name=user.last_name)
            )
            # Registered inside the block so a rollback discards it; it runs only
            # once the outermost transaction has committed.
            send_welcome_email.delay_on_commit(user.pk)  # type: ignore[attr-defined]  # celery-types lacks Celery 5.4's delay_on_commit
    except IntegrityError as error:
        if not _violates(error, EMAIL_UNIQUE_CONSTRAINT):
            raise
        logger.info("user_create_rejected", reason="email_taken_concurrently")
        raise EmailTaken("a user with this e-mail address already exists") from error
    logger.info("user_created", user_id=user.pk)
    return user


def user_login_audit(*, user: User, ip_address: str | None) -> None:
    """Record for the security audit that a user signed in."""
    with transaction.atomic():
        EventLogClient.from_settings().publish(UserLoggedIn(user_id=user.pk, ip_address=ip_address))
    logger.info("user_logged_in", user_id=user.pk)


def user_logout_audit(*, user: User, ip_address: str | None) -> None:
    """Record for the security audit that a user signed out."""
    with transaction.atomic():
        EventLogClient.from_settings().publish(UserLoggedOut(user_id=user.pk, ip_address=ip_address))
    logger.info("user_logged_out", user_id=user.pk)


def user_login_failure_audit(*, email: str, ip_address: str | None) -> None:
    """Record for the security audit that a sign-in attempt for an e-mail address was refused."""
    # A failed sign-in changes nothing else, so the event has a transaction of its own.
    with transaction.atomic():
        EventLogClient.from_settings().publish(UserLoginFailed(email=email, ip_address=ip_address))
    # The address typed may belong to nobody, or to someone else: it stays out of the logs.
    logger.info("user_login_failed")


def _violates(error: IntegrityError, constraint: str) -> bool:
    """Whether the database refused the write because of the named constraint."""
    diagnostics = getattr(error.__cause__, "diag", None)
    return getattr(diagnostics, "constraint_name", None) == constraint
