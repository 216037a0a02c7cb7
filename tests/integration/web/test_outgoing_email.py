"""Outgoing e-mail: recorded in the caller's transaction, sent by the dispatcher, never twice."""

from __future__ import annotations

import smtplib
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from django.core import mail
from django.db import connection, transaction
from django.utils import timezone

from tests.integration.web.factories import UserFactory
from webapp.mail import services
from webapp.mail.models import OutgoingEmail
from webapp.mail.services import MAX_ATTEMPTS, backoff, email_dispatch, email_dispatch_due, email_enqueue

pytestmark = pytest.mark.django_db


class RolledBack(Exception):
    """Raised to roll a transaction back."""


def enqueue(**fields: Any) -> OutgoingEmail:
    return email_enqueue(
        **{"to": "holly@example.com", "subject": "Hello", "body": "Hello Holly,\n", **fields}
    )


@pytest.fixture
def smtp_fails(monkeypatch: pytest.MonkeyPatch) -> list[BaseException]:
    """Make the mail backend raise the exceptions put in the returned list, one per send."""
    failures: list[BaseException] = []
    real_send = mail.EmailMessage.send

    def send(self: mail.EmailMessage, fail_silently: bool = False) -> int:
        if failures:
            raise failures.pop(0)
        return real_send(self, fail_silently)

    monkeypatch.setattr(mail.EmailMessage, "send", send)
    return failures


def test_an_email_recorded_in_a_rolled_back_transaction_is_never_sent(
    mailoutbox: list[mail.EmailMessage],
) -> None:
    def sign_up_that_fails() -> None:
        with transaction.atomic():
            enqueue()
            raise RolledBack

    with pytest.raises(RolledBack):
        sign_up_that_fails()

    assert email_dispatch_due() == services.DispatchReport()
    assert mailoutbox == []


def test_the_dispatcher_sends_a_due_email_in_plain_text_and_forgets_it(
    mailoutbox: list[mail.EmailMessage],
) -> None:
    enqueue(to="holly@example.com", subject="Hello", body="Hello Holly,\n")

    report = email_dispatch_due()

    assert report.sent == 1
    [message] = mailoutbox
    assert (message.to, message.subject, message.body) == (["holly@example.com"], "Hello", "Hello Holly,\n")
    assert message.content_subtype == "plain"
    assert not OutgoingEmail.objects.exists()


def test_a_second_sweep_sends_nothing_again(mailoutbox: list[mail.EmailMessage]) -> None:
    enqueue()
    email_dispatch_due()

    email_dispatch_due()

    assert len(mailoutbox) == 1


@pytest.mark.django_db(transaction=True)
def test_an_email_another_dispatcher_is_sending_is_left_to_it(mailoutbox: list[mail.EmailMessage]) -> None:
    email = enqueue()
    settings = connection.settings_dict
    # Another dispatcher, in a session of its own, holds the row's lock while it sends.
    with psycopg.connect(
        host=settings["HOST"],
        port=settings["PORT"] or 5432,
        user=settings["USER"],
        password=settings["PASSWORD"] or None,
        dbname=settings["NAME"],
    ) as other:
        other.execute("SELECT id FROM mail_outgoingemail WHERE id = %s FOR UPDATE", (email.pk,))

        assert email_dispatch(email_id=email.pk) is None
        assert email_dispatch_due() == services.DispatchReport()
    assert mailoutbox == []


def test_a_mail_server_error_defers_the_email_with_backoff(
    mailoutbox: list[mail.EmailMessage], smtp_fails: list[BaseException]
) -> None:
    email = enqueue()
    smtp_fails.append(smtplib.SMTPServerDisconnected("connection unexpectedly closed"))
    before = timezone.now()

    report = email_dispatch_due()

    assert report.deferred == 1
    email.refresh_from_db()
    assert email.attempts == 1
    assert email.last_error == "SMTPServerDisconnected"
    assert email.next_attempt_at > before
    assert mailoutbox == []
    # Not due yet: a sweep right now leaves it alone.
    assert email_dispatch_due() == services.DispatchReport()


def test_a_deferred_email_is_sent_once_it_is_due_again(
    mailoutbox: list[mail.EmailMessage], smtp_fails: list[BaseException]
) -> None:
    email = enqueue()
    smtp_fails.append(OSError("network unreachable"))
    email_dispatch_due()
    OutgoingEmail.objects.filter(pk=email.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))

    report = email_dispatch_due()

    assert report.sent == 1
    assert len(mailoutbox) == 1


def test_an_address_the_mail_server_refuses_is_dropped_without_logging_it(
    mailoutbox: list[mail.EmailMessage], smtp_fails: list[BaseException], caplog: pytest.LogCaptureFixture
) -> None:
    enqueue(to="nobody@example.com")
    smtp_fails.append(smtplib.SMTPRecipientsRefused({"nobody@example.com": (550, b"no such mailbox")}))

    report = email_dispatch_due()

    assert report.refused == 1
    assert not OutgoingEmail.objects.exists()
    assert "nobody@example.com" not in caplog.text


def test_an_email_that_keeps_failing_is_abandoned_after_the_last_attempt(
    smtp_fails: list[BaseException],
) -> None:
    email = enqueue()
    OutgoingEmail.objects.filter(pk=email.pk).update(attempts=MAX_ATTEMPTS - 1)
    smtp_fails.append(smtplib.SMTPServerDisconnected("again"))

    report = email_dispatch_due()

    assert report.abandoned == 1
    assert not OutgoingEmail.objects.exists()


def test_deleting_the_account_deletes_the_emails_still_waiting_for_it() -> None:
    user = UserFactory.create()
    enqueue(user=user, to=user.email)

    user.delete()

    assert not OutgoingEmail.objects.exists()


def test_the_backoff_doubles_from_thirty_seconds_up_to_six_hours() -> None:
    assert all(timedelta(seconds=15) <= backoff(1) <= timedelta(seconds=30) for _ in range(100))
    assert all(backoff(4) <= timedelta(minutes=4) for _ in range(100))
    assert all(backoff(50) <= timedelta(hours=6) for _ in range(100))
