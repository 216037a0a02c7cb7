"""Reads of the outbox tables; writes live in `services.py`."""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import QuerySet

from shared.outbox import Backlog, backlog_query
from webapp.outbox.models import DeadLetter


def outbox_backlog(*, cap: int | None = None, using: str = DEFAULT_DB_ALIAS) -> Backlog:
    """Count pending events and dead letters (up to `cap`) and age the oldest pending event, in one query."""
    with connections[using].cursor() as cursor:
        cursor.execute(backlog_query(cap=cap))
        return Backlog.from_row(*cursor.fetchone())


def dead_letter_list(*, event_type: str | None = None, limit: int | None = None) -> QuerySet[DeadLetter]:
    """Dead letters, newest first, without their payloads."""
    letters = DeadLetter.objects.only("id", "event_type", "event_id", "attempts", "dead_lettered_at", "error")
    if event_type is not None:
        letters = letters.filter(event_type=event_type)
    return letters[:limit] if limit is not None else letters
