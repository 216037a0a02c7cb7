"""A person's own security events, newest first: delivered ones from ClickHouse, pending ones from the outbox.

Delivered events are read from `event_log_by_user` (one account's events
without a scan) with the site's read-only ClickHouse user. Events the relay
has not carried yet are still in the outbox; they are shown too, marked as
processing, so a sign-in appears at once. An event seen in both places
(delivered, its deletion not yet committed) is shown once, as delivered. When
ClickHouse does not answer, the page still lists the pending events and says
that the history is unavailable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import structlog
from django.conf import settings
from django.db.models import F, TextField
from django.db.models.expressions import RawSQL

from shared.events import (
    UserCreated,
    UserEmailVerified,
    UserLoggedIn,
    UserLoggedOut,
    UserLoginFailed,
    UserPasswordChanged,
    UserPasswordReset,
    UserPasswordResetRequested,
    UserUpdated,
)
from shared.outbox import USER_EVENTS_TABLE, USER_ID_EXPRESSION
from webapp.core.clickhouse import ClickHouseClient, ClickHouseError, site_reader, string_literal
from webapp.outbox.models import OutboxEvent

logger = structlog.get_logger(__name__)

# What each security event is called on the page.
SECURITY_EVENTS: Final[dict[str, str]] = {
    UserCreated.event_type: "Account created",
    UserEmailVerified.event_type: "E-mail address verified",
    UserLoggedIn.event_type: "Signed in",
    UserLoggedOut.event_type: "Signed out",
    UserLoginFailed.event_type: "Failed sign-in attempt",
    UserPasswordChanged.event_type: "Password changed",
    UserPasswordResetRequested.event_type: "Password reset requested",
    UserPasswordReset.event_type: "Password reset with an e-mailed link",
    UserUpdated.event_type: "Profile changed",
}

# Pages reach this far back: the page is about recent activity, and each page
# reads every newer event again (two sources merged in time order).
MAX_PAGES: Final = 50

_FIELD_NAMES: Final = {"first_name": "first name", "last_name": "last name"}


@dataclass(frozen=True, slots=True)
class ActivityEntry:
    """One event as the activity page shows it."""

    event_id: str
    event_type: str
    occurred_at: datetime
    ip_address: str | None
    processing: bool
    details: str = ""

    @property
    def description(self) -> str:
        """What happened, in words."""
        return SECURITY_EVENTS[self.event_type]


@dataclass(frozen=True, slots=True)
class ActivityPage:
    """One page of a user's activity."""

    entries: list[ActivityEntry]
    number: int
    has_next: bool
    history_available: bool

    @property
    def has_previous(self) -> bool:
        """Whether newer events are on an earlier page."""
        return self.number > 1


def user_activity(
    *, user_id: int, page: int, page_size: int, reader: ClickHouseClient | None = None
) -> ActivityPage:
    """Page `page` (from 1, at most `MAX_PAGES`) of the user's security events, newest first."""
    page = min(max(page, 1), MAX_PAGES)
    wanted = page * page_size + 1  # this page and everything newer, plus one to know of a next page
    pending = _pending(user_id=user_id, limit=wanted)
    try:
        reader = reader or site_reader(timeout=settings.ACTIVITY_QUERY_TIMEOUT)
        delivered = _delivered(reader, user_id=user_id, limit=wanted)
    except ClickHouseError as error:
        logger.warning("activity_history_unavailable", user_id=user_id, error=str(error))
        delivered, available = [], False
    else:
        available = True
    seen = {entry.event_id for entry in delivered}
    merged = sorted(
        [*delivered, *(entry for entry in pending if entry.event_id not in seen)],
        key=lambda entry: (entry.occurred_at, entry.event_id),
        reverse=True,
    )
    start = (page - 1) * page_size
    return ActivityPage(
        entries=merged[start : start + page_size],
        number=page,
        has_next=len(merged) > start + page_size and page < MAX_PAGES,
        history_available=available,
    )


def _pending(*, user_id: int, limit: int) -> list[ActivityEntry]:
    rows = (
        OutboxEvent.objects.filter(event_type__in=SECURITY_EVENTS)
        # The expression the outbox's user id index is on (migration 0006).
        .alias(owner=RawSQL(USER_ID_EXPRESSION, (), output_field=TextField()))  # noqa: S611  (a constant)
        .filter(owner=str(user_id))
        .annotate(context_text=RawSQL("event_context::text", (), output_field=TextField()))
        .order_by(F("event_date_time").desc(), F("event_id").desc())
        .values_list("event_id", "event_type", "event_date_time", "context_text")[:limit]
    )
    return [
        _entry(str(event_id), event_type, occurred_at, context, processing=True)
        for event_id, event_type, occurred_at, context in rows
    ]


def _delivered(reader: ClickHouseClient, *, user_id: int, limit: int) -> list[ActivityEntry]:
    query = delivered_query(environment=settings.ENVIRONMENT, user_id=user_id, limit=limit)
    return delivered_entries(reader.rows(query))


def delivered_query(*, environment: str, user_id: int, limit: int) -> str:
    """The newest `limit` security events of a user of this site, without copies (no FORMAT clause).

    Read from `event_log_by_user`, sorted by (environment, user_id, time), so
    ClickHouse reads only this account's granules, whatever the size of
    `event_log`; `FINAL` hides a copy an at-least-once delivery left. Only this
    site's `environment`: other sources writing to the same `event_log` have
    users with the same ids. Written for ClickHouse 18.16 and current servers
    alike: no query parameters, no JSONExtract; every value in it is ours (the
    contract's event types, the setting, an integer id and limit).
    """
    types = ", ".join(f"'{event_type}'" for event_type in SECURITY_EVENTS)
    return f"""SELECT toString(event_id) AS id, event_type, toString(event_date_time) AS at, event_context
FROM {USER_EVENTS_TABLE} FINAL
WHERE environment = {string_literal(environment)} AND user_id = {int(user_id)}
  AND event_type IN ({types})
ORDER BY event_date_time DESC, id DESC
LIMIT {int(limit)}"""


def delivered_entries(rows: list[dict[str, Any]]) -> list[ActivityEntry]:
    """Entries from the rows of `delivered_query` (times in UTC, whole seconds or microseconds)."""
    return [
        _entry(
            row["id"],
            row["event_type"],
            datetime.fromisoformat(row["at"]).replace(tzinfo=UTC),
            row["event_context"],
            processing=False,
        )
        for row in rows
    ]


def _entry(
    event_id: str, event_type: str, occurred_at: datetime, context_text: str, *, processing: bool
) -> ActivityEntry:
    try:
        context: dict[str, Any] = json.loads(context_text)
    except ValueError:
        context = {}
    ip_address = context.get("ip_address")
    changed = context.get("changed_fields") or []
    details = ", ".join(_FIELD_NAMES.get(str(name), str(name)) for name in changed)
    return ActivityEntry(
        event_id=event_id,
        event_type=event_type,
        occurred_at=occurred_at,
        ip_address=ip_address if isinstance(ip_address, str) else None,
        processing=processing,
        details=details,
    )
