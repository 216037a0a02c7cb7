"""Celery tasks that carry out erasure requests recorded in PostgreSQL."""

from __future__ import annotations

from celery import shared_task

from webapp.privacy.services import erasure_process, erasure_process_due


@shared_task(ignore_result=True)
def erasure_run(request_id: int) -> None:
    """Carry out one erasure request now (the head start after the deletion committed)."""
    erasure_process(request_id=request_id)


@shared_task(ignore_result=True)
def erasure_run_pending() -> None:
    """Carry out every due erasure request (Celery beat, every minute)."""
    erasure_process_due()
