"""Writes about users: sign-up, the account's settings, and the security audit.

Every write publishes its event through `EventLogClient` inside the same
`transaction.atomic()` as the change it describes, so the two commit or roll
back together. Side effects outside the database (e-mail) wait for the commit.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from shared.events import (
    UserCreated,
    UserDeleted,
    UserLoggedIn,
    UserLoggedOut,
    UserLoginFailed,
    UserPasswordChanged,
    UserPasswordReset,
    UserPasswordResetRequested,
    UserUpdated,
)
from webapp.outbox.client import EventLogClient
from webapp.users.models import User
from webapp.users.selectors import user_email_taken, user_get_by_email
from webapp.users.tasks import send_welcome_email

# Given a user's id encoded for a URL and a one-time token, the absolute address
# of the page that sets a new password (the view knows the host and scheme).
ResetLinkBuilder = Callable[[str, str], str]

logger = structlog.get_logger(__name__)

# The case-insensitive unique constraint on `lower(email)` (see `User.Meta`).
EMAIL_UNIQUE_CONSTRAINT = "users_user_email_ci_unique"


RESET_EMAIL_SUBJECT = "Reset your Die Hard password"


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
    owner = user_get_by_email(email=email) if email else None
    # A failed sign-in changes nothing else, so the event has a transaction of its own.
    with transaction.atomic():
        EventLogClient.from_settings().publish(
            UserLoginFailed(email=email, user_id=owner.pk if owner else None, ip_address=ip_address)
        )
    # The address typed may belong to nobody, or to someone else: it stays out of the logs.
    logger.info("user_login_failed")


def user_update(*, user: User, first_name: str, last_name: str, ip_address: str | None) -> list[str]:
    """Change a user's name; publish `UserUpdated` naming the changed fields. Return their names.

    Nothing is written, not even an event, when nothing changed.
    """
    wanted = {"first_name": first_name, "last_name": last_name}
    changed = [name for name, value in wanted.items() if getattr(user, name) != value]
    if not changed:
        return []
    for name in changed:
        setattr(user, name, wanted[name])
    with transaction.atomic():
        user.save(update_fields=changed)
        EventLogClient.from_settings().publish(
            UserUpdated(user_id=user.pk, changed_fields=tuple(changed), ip_address=ip_address)
        )
    logger.info("user_updated", user_id=user.pk, changed_fields=changed)
    return changed


def user_password_change(*, user: User, new_password: str, ip_address: str | None) -> None:
    """Set a new password the signed-in user chose (the form checked the old one).

    Raises `ValidationError` when the password validators refuse it; then nothing
    is written. Other sessions of the user end, since their hash no longer matches.
    """
    validate_password(new_password, user=user)
    user.set_password(new_password)
    with transaction.atomic():
        user.save(update_fields=["password"])
        EventLogClient.from_settings().publish(UserPasswordChanged(user_id=user.pk, ip_address=ip_address))
    logger.info("user_password_changed", user_id=user.pk)


def user_password_reset_request(*, email: str, reset_link: ResetLinkBuilder, ip_address: str | None) -> None:
    """Send a one-time password-reset link to the account with this address, if there is one.

    Publishes `UserPasswordResetRequested` either way, so the answer, the
    database writes and their timing do not tell whether the address has an
    account. The e-mail goes out once the event has committed.
    """
    user = user_get_by_email(email=email)
    if user is not None and not (user.is_active and user.has_usable_password()):
        user = None
    with transaction.atomic():
        EventLogClient.from_settings().publish(
            UserPasswordResetRequested(user_id=user.pk if user else None, ip_address=ip_address)
        )
        if user is not None:
            uidb64 = urlsafe_base64_encode(force_bytes(user.pk))
            link = reset_link(uidb64, default_token_generator.make_token(user))
            recipient = user.email
            # Robust: a mail server that refuses must not turn the answer into
            # an error only people with an account get.
            transaction.on_commit(
                lambda: _send_password_reset_email(recipient=recipient, link=link), robust=True
            )
    logger.info("user_password_reset_requested", user_id=user.pk if user else None)


def _send_password_reset_email(*, recipient: str, link: str) -> None:
    send_mail(
        subject=RESET_EMAIL_SUBJECT,
        message=render_to_string("users/email/password_reset.txt", {"link": link}),
        from_email=None,  # DEFAULT_FROM_EMAIL
        recipient_list=[recipient],
    )


def user_password_reset(*, user: User, new_password: str, ip_address: str | None) -> None:
    """Set the password a person chose through a valid reset link (the view checked the token).

    Raises `ValidationError` when the password validators refuse it; then
    nothing is written. Saving the new password spends the link.
    """
    validate_password(new_password, user=user)
    user.set_password(new_password)
    with transaction.atomic():
        user.save(update_fields=["password"])
        EventLogClient.from_settings().publish(UserPasswordReset(user_id=user.pk, ip_address=ip_address))
    logger.info("user_password_reset", user_id=user.pk)


def user_delete(*, user: User) -> None:
    """Delete the account and publish `UserDeleted`, which carries only the id it had."""
    user_id = user.pk
    with transaction.atomic():
        user.delete()
        EventLogClient.from_settings().publish(UserDeleted(user_id=user_id))
    logger.info("user_deleted", user_id=user_id)


def _violates(error: IntegrityError, constraint: str) -> bool:
    """Whether the database refused the write because of the named constraint."""
    diagnostics = getattr(error.__cause__, "diag", None)
    return getattr(diagnostics, "constraint_name", None) == constraint
