"""Background work for users, run by the Celery worker."""

from __future__ import annotations

import smtplib

import structlog
from celery import shared_task
from django.core.mail import send_mail

from webapp.users.selectors import user_get

logger = structlog.get_logger(__name__)

WELCOME_SUBJECT = "Welcome to Die Hard"
WELCOME_BODY = """Hello {first_name},

your account is ready. Sign in with this e-mail address whenever you like.

The Die Hard team
"""


@shared_task(
    # SMTPException and socket errors (OSError) are what a busy or unreachable
    # mail server raises; both are worth another try a little later.
    autoretry_for=(smtplib.SMTPException, OSError),
    retry_backoff=True,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=8,
)
def send_welcome_email(user_id: int) -> None:
    """Send the plain-text welcome e-mail to a newly signed-up user."""
    user = user_get(user_id=user_id)
    if user is None:
        # The account was deleted before the worker got to it: nobody to welcome.
        logger.warning("welcome_email_skipped", user_id=user_id, reason="user_not_found")
        return
    try:
        send_mail(
            subject=WELCOME_SUBJECT,
            message=WELCOME_BODY.format(first_name=user.first_name or "there"),
            from_email=None,  # DEFAULT_FROM_EMAIL
            recipient_list=[user.email],
        )
    except smtplib.SMTPRecipientsRefused:
        # The server refuses the address itself: another try would fail the same
        # way, and the exception names the address, which must not reach the logs.
        logger.warning("welcome_email_refused", user_id=user_id)
        return
    logger.info("welcome_email_sent", user_id=user_id)
