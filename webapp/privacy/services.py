"""Erasure: what `webapp.users.services.user_delete` records, and carrying it out.

`erasure_request` is written in the account's deletion transaction, so a
deleted account always leaves a request behind. It is carried out after the
commit (a task asked for at once, and Celery beat's sweep for anything left):
in one transaction, with the request locked, the account's events are deleted
from the outbox, the dead letters and the relay's archive of delivered events
(waiting for a reconciliation in progress, which would otherwise re-send
them), ClickHouse is told to delete them from
`event_log`, and the request is closed with a `user_erased` event that names
neither the person nor the account. Deleting the outbox rows first waits for
any relay batch holding them, so nothing about the account can reach
ClickHouse after its erasure there.
"""

from __future__ import annotations

import random
from datetime import timedelta
from functools import partial
from typing import Final

import structlog
from django.db import connection, transaction
from django.db.models.functions import Now
from django.utils import timezone

from shared.events import UserErased
from shared.outbox import ARCHIVE_TABLE, DEAD_LETTER_TABLE, OUTBOX_TABLE, RECONCILE_LOCK, USER_ID_EXPRESSION
from webapp.core.broker import send_soon
from webapp.core.clickhouse import ClickHouseError
from webapp.outbox.client import EventLogClient
from webapp.privacy.clickhouse import erase_user_events
from webapp.privacy.models import ErasureRequest

logger = structlog.get_logger(__name__)

_BACKOFF_FIRST: Final = timedelta(seconds=30)
_BACKOFF_MAX: Final = timedelta(hours=1)
# Events about an account carry `"user_id":N` in their payload (see shared.events),
# found through the index on that expression. Not filtered by `environment`:
# these tables hold only this site's events, whatever ENVIRONMENT was when
# each was written.
ERASE = f"DELETE FROM {{table}} WHERE {USER_ID_EXPRESSION} = %s"


def erasure_request(*, user_id: int) -> ErasureRequest:
    """Record, in the current transaction, that this account's events are to be erased after commit."""
    request = ErasureRequest.objects.create(user_id=user_id)
    transaction.on_commit(partial(_request_processing, request.pk), robust=True)
    return request


def erasure_process(*, request_id: int) -> bool:
    """Carry out one pending, due request unless another process is at it; whether it was completed."""
    try:
        with transaction.atomic():
            request = (
                ErasureRequest.objects.select_for_update(skip_locked=True)
                .filter(pk=request_id, completed_at=None, next_attempt_at__lte=Now())
                .first()
            )
            if request is None:
                return False
            _erase([request])
    except ClickHouseError as error:
        _defer(request_id, error)
        return False
    logger.info("user_erased", erasure_id=request_id)
    return True


def erasure_process_due(*, limit: int = 20) -> int:
    """Carry out up to `limit` due requests, oldest first, together; how many were completed.

    Together: one transaction, and one ClickHouse mutation per table for all
    of them (a mutation rewrites every part of the table it touches, whether it
    erases one account or a hundred). If ClickHouse refuses, every one of them
    is deferred, as a single request would be.
    """
    requests: list[ErasureRequest] = []
    try:
        with transaction.atomic():
            requests = list(
                ErasureRequest.objects.select_for_update(skip_locked=True)
                .filter(completed_at=None, next_attempt_at__lte=Now())
                .order_by("next_attempt_at", "id")[:limit]
            )
            if requests:
                _erase(requests)
    except ClickHouseError as error:
        for request in requests:
            _defer(request.pk, error)
        return 0
    for request in requests:
        logger.info("user_erased", erasure_id=request.pk)
    return len(requests)


def _erase(requests: list[ErasureRequest]) -> None:
    user_ids = [request.user_id for request in requests if request.user_id is not None]
    assert len(user_ids) == len(requests)
    counts = []
    with connection.cursor() as cursor:
        # Wait for a reconciliation in progress: it could otherwise read the
        # archive before this commit and re-send to ClickHouse what it erased.
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [RECONCILE_LOCK])
        for user_id in user_ids:
            cursor.execute(ERASE.format(table=OUTBOX_TABLE), [str(user_id)])
            outbox_events = cursor.rowcount
            cursor.execute(ERASE.format(table=DEAD_LETTER_TABLE), [str(user_id)])
            dead_letters = cursor.rowcount
            # The relay keeps delivered events for a while to repair ClickHouse from.
            cursor.execute(ERASE.format(table=ARCHIVE_TABLE), [str(user_id)])
            counts.append((outbox_events, dead_letters))
    erase_user_events(user_ids=user_ids)
    client = EventLogClient.from_settings()
    for request, (outbox_events, dead_letters) in zip(requests, counts, strict=True):
        request.user_id = None
        request.completed_at = timezone.now()
        request.outbox_events += outbox_events
        request.dead_letters += dead_letters
        request.save(update_fields=["user_id", "completed_at", "outbox_events", "dead_letters"])
        client.publish(
            UserErased(erasure_id=request.pk, outbox_events=outbox_events, dead_letters=dead_letters)
        )


def _defer(request_id: int, error: BaseException) -> None:
    request = ErasureRequest.objects.get(pk=request_id)
    request.attempts += 1
    request.last_error = type(error).__name__
    ceiling = min(_BACKOFF_FIRST * 2 ** min(request.attempts - 1, 20), _BACKOFF_MAX)
    request.next_attempt_at = timezone.now() + max(ceiling * random.random(), _BACKOFF_FIRST / 2)  # noqa: S311
    request.save(update_fields=["attempts", "last_error", "next_attempt_at"])
    logger.warning(
        "erasure_deferred", erasure_id=request_id, attempts=request.attempts, error_kind=request.last_error
    )


def _request_processing(request_id: int) -> None:
    from webapp.privacy.tasks import erasure_run

    send_soon(erasure_run, request_id)
