"""Writes of outgoing e-mail: record a message in the caller's transaction; send what is due.

`email_enqueue` only inserts a row, so it commits or rolls back with the change
that asked for the message (a sign-up, a password reset), and a broker or mail
server outage can never fail that change. Sending happens afterwards: right
after the commit when the broker answers (a task for that one message), and in
any case from the periodic sweep, `email_dispatch_due`, which Celery beat runs
every `MAIL_DISPATCH_INTERVAL` seconds.

Each message is sent while its row is locked (`FOR UPDATE SKIP LOCKED`) and the
row is deleted in the same transaction, so two dispatchers never send the same
message. Only a crash between the mail server's acceptance and that commit can
send a message twice; nothing can lose one.
"""

from __future__ import annotations

import random
import smtplib
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Final, Literal

import structlog
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models.functions import Now
from django.utils import timezone

from webapp.core.broker import send_soon
from webapp.mail.models import OutgoingEmail

if TYPE_CHECKING:
    from webapp.users.models import User

logger = structlog.get_logger(__name__)

Outcome = Literal["sent", "deferred", "refused", "abandoned"]

# After this many failed tries a message is given up (about a day and a half of backoff).
MAX_ATTEMPTS: Final = 12
_BACKOFF_FIRST: Final = timedelta(seconds=30)
_BACKOFF_MAX: Final = timedelta(hours=6)


@dataclass(frozen=True, slots=True)
class DispatchReport:
    """What one sweep did."""

    sent: int = 0
    deferred: int = 0
    refused: int = 0
    abandoned: int = 0


def email_enqueue(*, to: str, subject: str, body: str, user: User | None = None) -> OutgoingEmail:
    """Record a plain-text e-mail to send, in the current transaction; it is sent after commit.

    Call it inside the `transaction.atomic()` of the change the message is
    about: if that change rolls back, no message is left to send.
    """
    email = OutgoingEmail.objects.create(user=user, to=to, subject=subject, body=body)
    # A head start for the sweep; robust: a broker outage is logged, never raised.
    transaction.on_commit(partial(_request_dispatch, email.pk), robust=True)
    return email


def email_enqueue_none() -> None:
    """Do after commit what `email_enqueue` does, for no message: ask a worker, which finds nothing.

    For a caller that must take as long whether or not it sends anything (a
    password reset for an address that has no account).
    """
    transaction.on_commit(partial(_request_dispatch, _NO_EMAIL), robust=True)


# No row has this id: a worker asked to send it looks once and finds nothing.
_NO_EMAIL: Final = 0


def email_dispatch(*, email_id: int) -> Outcome | None:
    """Send one recorded e-mail now if it is due and nobody else is sending it; None otherwise."""
    with transaction.atomic():
        email = (
            OutgoingEmail.objects.select_for_update(skip_locked=True)
            .filter(pk=email_id, next_attempt_at__lte=Now())
            .first()
        )
        return None if email is None else _deliver(email)


def email_dispatch_due(*, limit: int = 100) -> DispatchReport:
    """Send up to `limit` due e-mails, oldest first, each in a transaction of its own."""
    outcomes: dict[str, int] = {}
    for _ in range(limit):
        with transaction.atomic():
            email = (
                OutgoingEmail.objects.select_for_update(skip_locked=True)
                .filter(next_attempt_at__lte=Now())
                .order_by("next_attempt_at", "id")
                .first()
            )
            if email is None:
                break
            outcome = _deliver(email)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    report = DispatchReport(**outcomes)
    if outcomes:
        logger.info("emails_dispatched", **outcomes)
    return report


def _deliver(email: OutgoingEmail) -> Outcome:
    """Hand the locked message to the mail server; delete its row or schedule another try."""
    log = logger.bind(email_id=email.pk, user_id=email.user_id)
    message = EmailMessage(subject=email.subject, body=email.body, to=[email.to])
    try:
        message.send()
    except smtplib.SMTPRecipientsRefused:
        # The server refuses the address itself: another try would fail the same way.
        email.delete()
        log.warning("email_refused")
        return "refused"
    except (smtplib.SMTPException, OSError) as error:
        email.attempts += 1
        email.last_error = type(error).__name__
        if email.attempts >= MAX_ATTEMPTS:
            email.delete()
            log.error("email_abandoned", attempts=email.attempts, error_kind=email.last_error)
            return "abandoned"
        email.next_attempt_at = timezone.now() + backoff(email.attempts)
        email.save(update_fields=["attempts", "last_error", "next_attempt_at"])
        log.warning("email_deferred", attempts=email.attempts, error_kind=email.last_error)
        return "deferred"
    email.delete()
    log.info("email_sent")
    return "sent"


def backoff(attempts: int) -> timedelta:
    """Wait before try number `attempts + 1`: doubling from 30 s up to 6 h, with full jitter."""
    ceiling: timedelta = min(_BACKOFF_FIRST * 2 ** min(attempts - 1, 20), _BACKOFF_MAX)
    wait: timedelta = max(ceiling * random.random(), _BACKOFF_FIRST / 2)  # noqa: S311  (not cryptographic)
    return wait


def _request_dispatch(email_id: int) -> None:
    """Ask a worker to send this message now; if the broker does not answer, the sweep will."""
    from webapp.mail.tasks import email_send

    send_soon(email_send, email_id)
