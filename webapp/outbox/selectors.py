"""Reads of the outbox tables; writes live in `services.py`."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import QuerySet

from shared.outbox import DEAD_LETTER_TABLE, OUTBOX_TABLE
from webapp.outbox.models import DeadLetter

# The relay claims in id order, so the row with the smallest id is the one
# waiting longest; `ORDER BY id LIMIT 1` reads it from the primary key index.
# The age is PostgreSQL's `now()` minus `event_date_time`, and the web host
# that produced the event stamped that (`shared.events.Envelope`): its clock
# running behind or ahead of the database's makes the backlog look older or
# younger. Only the clock of the host asking plays no part.
# Counts stop at `cap`: past a threshold the exact figure tells nobody more,
# and counting a backlog of millions would cost a scan of millions of rows.
_BACKLOG = f"""
    SELECT
        (SELECT count(*) FROM (SELECT 1 FROM {OUTBOX_TABLE} LIMIT %(cap)s) AS pending),
        (SELECT extract(epoch FROM now() - event_date_time) FROM {OUTBOX_TABLE} ORDER BY id LIMIT 1),
        (SELECT count(*) FROM (SELECT 1 FROM {DEAD_LETTER_TABLE} LIMIT %(cap)s) AS dead)
"""


@dataclass(frozen=True, slots=True)
class OutboxBacklog:
    """How much the relay has still to deliver, for how long, and how much it set aside.

    `pending_events` and `dead_letters` are counted up to the cap asked for.
    """

    pending_events: int
    oldest_pending_age_seconds: float
    dead_letters: int


def outbox_backlog(*, cap: int = 1_000_000, using: str = DEFAULT_DB_ALIAS) -> OutboxBacklog:
    """Count pending events and dead letters (up to `cap`) and age the oldest pending event, in one query."""
    with connections[using].cursor() as cursor:
        cursor.execute(_BACKLOG, {"cap": cap})
        pending, age, dead = cursor.fetchone()
    # An event stamped by a clock running ahead of the database's would look
    # younger than new: no backlog is younger than zero.
    return OutboxBacklog(
        pending_events=pending,
        oldest_pending_age_seconds=max(float(age), 0.0) if age is not None else 0.0,
        dead_letters=dead,
    )


def dead_letter_list(*, event_type: str | None = None, limit: int | None = None) -> QuerySet[DeadLetter]:
    """Dead letters, newest first, without their payloads."""
    letters = DeadLetter.objects.only("id", "event_type", "event_id", "attempts", "dead_lettered_at", "error")
    if event_type is not None:
        letters = letters.filter(event_type=event_type)
    return letters[:limit] if limit is not None else letters
