"""Writes to the outbox tables by people (admin, management command), not by the relay.

Events are never edited or created here: a dead letter goes back to the outbox
as it was set aside (same event id, time and payload), or is purged.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

import structlog
from django.db import DEFAULT_DB_ALIAS, connections
from django.utils import timezone

from shared.outbox import DEAD_LETTER_TABLE, EVENT_COLUMNS, OUTBOX_TABLE
from webapp.outbox.models import DeadLetter
from webapp.outbox.wakeup import wake_relay_on_commit

logger = structlog.get_logger(__name__)


def _requeue(condition: str) -> str:
    """Move the dead letters matching `condition` back to the outbox, in one statement.

    One statement, so moving is atomic on its own: a dead letter is either back
    in the outbox or still set aside, never both or neither. The caller wakes
    the relay after commit. `ORDER BY id` re-queues them in the order they were set
    aside. Every column an event keeps travels, the attempt count too: it says
    how often the event was set aside before. An event id already back in the
    outbox violates its unique constraint and the whole statement rolls back.
    """
    columns = ", ".join(EVENT_COLUMNS)
    return f"""
        WITH moved AS (DELETE FROM {DEAD_LETTER_TABLE} WHERE {condition} RETURNING id, {columns})
        INSERT INTO {OUTBOX_TABLE} ({columns})
        SELECT {columns} FROM moved ORDER BY id
    """


def dead_letter_requeue(
    *,
    ids: Iterable[int] | None = None,
    event_type: str | None = None,
    everything: bool = False,
    using: str = DEFAULT_DB_ALIAS,
) -> int:
    """Move dead letters back into the outbox unchanged; return how many moved.

    `ids` and `event_type` narrow the selection and combine; `everything=True`
    (alone) moves every dead letter. Like purging, re-queueing needs a
    selection: a forgotten argument must not re-send every refused event.
    An empty `ids` selects none.
    """
    if everything and (ids is not None or event_type is not None):
        raise ValueError("everything=True re-queues every dead letter: give it without ids or event_type")
    if not everything and ids is None and event_type is None:
        raise ValueError("say which dead letters to re-queue: ids, event_type or everything=True")
    conditions = ["TRUE"]
    params: list[str | list[int]] = []
    if ids is not None:
        id_list = [int(pk) for pk in ids]
        if not id_list:
            return 0
        conditions.append("id = ANY(%s)")
        params.append(id_list)
    if event_type is not None:
        conditions.append("event_type = %s")
        params.append(event_type)
    with connections[using].cursor() as cursor:
        cursor.execute(_requeue(" AND ".join(conditions)), params)
        moved: int = cursor.rowcount
    if moved:
        wake_relay_on_commit(using=using)
    logger.info("dead_letters_requeued", count=moved, event_type=event_type)
    return moved


def dead_letter_purge(
    *, older_than: timedelta | None = None, ids: Iterable[int] | None = None, using: str = DEFAULT_DB_ALIAS
) -> int:
    """Delete dead letters for good; return how many were deleted.

    `older_than` (by the time they were set aside) and `ids` narrow the
    selection and combine. Purging needs a selection: deleting events is not
    undone, so "everything" is never the default.
    """
    if older_than is None and ids is None:
        raise ValueError("say which dead letters to purge: older_than, ids or both")
    letters = DeadLetter.objects.using(using).all()
    if older_than is not None:
        letters = letters.filter(dead_lettered_at__lt=timezone.now() - older_than)
    if ids is not None:
        letters = letters.filter(pk__in=[int(pk) for pk in ids])
    # A queryset delete is one DELETE statement (no signals, no cascades to collect).
    purged, _ = letters.delete()
    logger.info("dead_letters_purged", count=purged)
    return purged
