"""Celery tasks of the users app: housekeeping of what signed-in accounts leave behind."""

from __future__ import annotations

from celery import shared_task
from django.core.management import call_command


@shared_task(ignore_result=True)
def sessions_clear_expired() -> None:
    """Delete expired sessions (Django's `clearsessions`), run daily by Celery beat."""
    call_command("clearsessions")
