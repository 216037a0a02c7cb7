"""Celery tasks that send the recorded e-mails; the data they act on is in PostgreSQL."""

from __future__ import annotations

from celery import shared_task

from webapp.mail.services import email_dispatch, email_dispatch_due


@shared_task(ignore_result=True)
def email_send(email_id: int) -> None:
    """Send one recorded e-mail now (the head start after its transaction committed)."""
    email_dispatch(email_id=email_id)


@shared_task(ignore_result=True)
def email_dispatch_pending() -> None:
    """Send every due e-mail (run by Celery beat every `MAIL_DISPATCH_INTERVAL` seconds)."""
    email_dispatch_due()
