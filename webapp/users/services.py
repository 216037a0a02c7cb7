"""Writes about users: sign-up, verifying the address, the account's settings, and the security audit.

Every write publishes its event through `EventLogClient` inside the same
`transaction.atomic()` as the change it describes, so the two commit or roll
back together. E-mail is recorded the same way (`webapp.mail`) and sent after
the commit, so no outage of the broker or the mail server can fail a sign-up.

No e-mail carries text a person typed (a name) to an address nobody has
verified: the mails sent before that, the welcome with its verification link
and the password reset, are the same for everyone but for the link.
"""

from __future__ import annotations

from collections.abc import Callable

import structlog
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.tokens import default_token_generator
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from shared.events import (
    UserCreated,
    UserDeleted,
    UserEmailVerified,
    UserLoggedIn,
    UserLoggedOut,
    UserLoginFailed,
    UserPasswordChanged,
    UserPasswordReset,
    UserPasswordResetRequested,
    UserUpdated,
)
from webapp.mail.services import email_enqueue, email_enqueue_none
from webapp.outbox.client import EventLogClient
from webapp.privacy.models import ErasureRequest
from webapp.privacy.services import erasure_request
from webapp.users.models import User
from webapp.users.selectors import email_pseudonym, user_email_taken, user_for_address
from webapp.users.sessions import user_sessions_delete
from webapp.users.tokens import email_verification_token

# Given a user's id encoded for a URL and a one-time token, the absolute address
# of the page the e-mailed link opens (the view knows the host and scheme).
LinkBuilder = Callable[[str, str], str]

logger = structlog.get_logger(__name__)

# The case-insensitive unique constraint on `lower(email)` (see `User.Meta`).
EMAIL_UNIQUE_CONSTRAINT = "users_user_email_ci_unique"


RESET_EMAIL_SUBJECT = "Reset your Die Hard password"
WELCOME_SUBJECT = "Welcome to Die Hard: please confirm your e-mail address"
VERIFICATION_SUBJECT = "Confirm your e-mail address for Die Hard"


class EmailTaken(ValueError):
    """Another account already uses this e-mail address (compared case-insensitively)."""


def user_create(
    *, email: str, password: str, first_name: str, last_name: str, verify_link: LinkBuilder
) -> User:
    """Sign a person up: save the user and publish `UserCreated` in one transaction.

    Raises `django.core.exceptions.ValidationError` when the password validators
    reject the password and `EmailTaken` when the e-mail address is in use; in
    both cases nothing is written. The welcome e-mail, which carries the
    one-time link (`verify_link`) that verifies the address and nothing the
    person typed, is recorded with the user and sent after commit.
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
                UserCreated(
                    user_id=user.pk, email=user.email, first_name=user.first_name, last_name=user.last_name
                )
            )
            # Recorded with the user: sent once the sign-up has committed, and
            # still sent later if the broker or the mail server is down now.
            _verification_email_enqueue(user, verify_link, signed_up=True)
    except IntegrityError as error:
        if not _violates(error, EMAIL_UNIQUE_CONSTRAINT):
            raise
        logger.info("user_create_rejected", reason="email_taken_concurrently")
        raise EmailTaken("a user with this e-mail address already exists") from error
    logger.info("user_created", user_id=user.pk)
    return user


def _verification_email_enqueue(user: User, verify_link: LinkBuilder, *, signed_up: bool) -> None:
    """Record the e-mail with the link that verifies the user's address.

    Until the address is verified, anyone can have typed it: the message
    names nobody and quotes nothing from the sign-up, so it cannot carry
    someone else's words to a stranger's mailbox.
    """
    uidb64 = urlsafe_base64_encode(force_bytes(user.pk))
    link = verify_link(uidb64, email_verification_token.make_token(user))
    email_enqueue(
        user=user,
        to=user.email,
        subject=WELCOME_SUBJECT if signed_up else VERIFICATION_SUBJECT,
        body=render_to_string("users/email/email_verification.txt", {"link": link, "signed_up": signed_up}),
    )


def user_email_verification_send(*, user: User, verify_link: LinkBuilder) -> bool:
    """Send the link that verifies the user's address again; False (and nothing sent) if it is verified.

    The e-mail is recorded in a transaction of its own and sent after the
    commit. Earlier links keep working until one of them is used or expires.
    """
    if user.email_verified:
        return False
    with transaction.atomic():
        _verification_email_enqueue(user, verify_link, signed_up=False)
    logger.info("user_email_verification_sent", user_id=user.pk)
    return True


def user_email_verify(*, user: User, ip_address: str | None) -> bool:
    """Mark the user's address verified and publish `UserEmailVerified`, in one transaction.

    The caller checked the link's token. Only one call can succeed for an
    account and address: the update matches only an unverified row with the
    same address (a second, concurrent call waits for the first's row lock,
    then matches nothing), and returns False without an event.
    """
    verified_at = timezone.now()
    with transaction.atomic():
        updated = User.objects.filter(pk=user.pk, email=user.email, email_verified_at__isnull=True).update(
            email_verified_at=verified_at
        )
        if not updated:
            return False
        EventLogClient.from_settings().publish(UserEmailVerified(user_id=user.pk, ip_address=ip_address))
    user.email_verified_at = verified_at
    logger.info("user_email_verified", user_id=user.pk)
    return True


def user_delete(*, user: User) -> ErasureRequest:
    """Delete an account and everything the site keeps about it.

    In one transaction: the user (and with it the e-mail still waiting for
    it), every session signed in as it, a `user_deleted` event that says nothing about whose account it was,
    and an erasure request. After the commit the request is carried out: every
    event about the account is erased from the outbox, the dead letters and
    ClickHouse, and that is recorded as a `user_erased` event, again without
    personal data (see `webapp.privacy.services`).
    """
    user_id = user.pk
    with transaction.atomic():
        request = erasure_request(user_id=user_id)
        user.delete()
        # Its other sessions no longer work, but they still name the account.
        sessions = user_sessions_delete(user_id=user_id)
        EventLogClient.from_settings().publish(UserDeleted())
    logger.info("user_deleted", user_id=user_id, erasure_id=request.pk, sessions_deleted=sessions)
    return request


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
    """Record for the security audit that a sign-in attempt for an e-mail address was refused.

    The typed address is kept only when it is an account's; any other address
    is kept as a keyed hash (`email_hmac`), which tells attempts on the same
    address apart without revealing it.
    """
    account = user_for_address(email=email)
    if account is not None:
        event = UserLoginFailed(user_id=account.pk, email=account.email, ip_address=ip_address)
    else:
        event = UserLoginFailed(email_hmac=email_pseudonym(email), ip_address=ip_address)
    # A failed sign-in changes nothing else, so the event has a transaction of its own.
    with transaction.atomic():
        EventLogClient.from_settings().publish(event)
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


def user_password_reset_request(*, email: str, reset_link: LinkBuilder, ip_address: str | None) -> None:
    """Send a one-time password-reset link to the account with this address, if there is one.

    Publishes `UserPasswordResetRequested` either way; the person asking gets
    the same answer after the same work (token, message, one request to a
    worker), whether or not the address has an account.
    The e-mail is recorded in the same transaction and sent after the commit.
    """
    user = user_for_address(email=email)
    if user is not None and not (user.is_active and user.has_usable_password()):
        user = None
    # The same work either way, so the answer's timing tells nothing: a token
    # and the message are made for a stand-in when nobody has the address.
    recipient = user if user is not None else User(email=email)
    uidb64 = urlsafe_base64_encode(force_bytes(recipient.pk or 0))
    link = reset_link(uidb64, default_token_generator.make_token(recipient))
    body = render_to_string("users/email/password_reset.txt", {"link": link})
    with transaction.atomic():
        EventLogClient.from_settings().publish(
            UserPasswordResetRequested(user_id=user.pk if user else None, ip_address=ip_address)
        )
        # Recorded with the event and sent after the commit; without an account,
        # a worker is asked all the same (it finds nothing to send).
        if user is not None:
            email_enqueue(user=user, to=user.email, subject=RESET_EMAIL_SUBJECT, body=body)
        else:
            email_enqueue_none()
    logger.info("user_password_reset_requested", user_id=user.pk if user else None)


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


def _violates(error: IntegrityError, constraint: str) -> bool:
    """Whether the database refused the write because of the named constraint."""
    diagnostics = getattr(error.__cause__, "diag", None)
    return getattr(diagnostics, "constraint_name", None) == constraint
