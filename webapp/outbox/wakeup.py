"""Wake the relay once events have committed, at most once per debounce window per process.

The wake-up is a side effect of the commit, so it runs after it
(`transaction.on_commit`): the business transaction pays nothing for it, and
a rolled-back transaction wakes nobody. The first commit after a quiet window
rings at once; the ones inside it stay silent, and the relay's follow-up
looks after every wake-up find them. Other processes ring for themselves;
writers that never ring are found by the relay's poll.
"""

from __future__ import annotations

from functools import partial

import structlog
from django.db import DatabaseError, connections, transaction

from shared.outbox import WAKE_RELAY, WakeUpDebounce

logger = structlog.get_logger(__name__)

# One per process, shared by its threads (gunicorn's threaded workers).
_debounce = WakeUpDebounce()


def wake_relay_on_commit(*, using: str) -> None:
    """Ring the relay when the current transaction commits (at once when there is none)."""
    transaction.on_commit(partial(_ring, using), using=using)


def _ring(using: str) -> None:
    if not _debounce.due():
        return
    try:
        with connections[using].cursor() as cursor:
            cursor.execute(WAKE_RELAY)
    except DatabaseError as error:
        # The events are committed; the relay's poll finds them a little later.
        logger.warning("relay_wakeup_failed", error=str(error))
