"""What the web site wrote to the outbox, read back through the ORM."""

from __future__ import annotations

import json
from typing import Any

from django.db.models import TextField
from django.db.models.functions import Cast

from webapp.outbox.models import OutboxEvent


def events(event_type: str | None = None) -> list[OutboxEvent]:
    """Outbox rows in the order they were written, optionally of one type."""
    rows = OutboxEvent.objects.order_by("id")
    if event_type is not None:
        rows = rows.filter(event_type=event_type)
    return list(rows)


def event_types() -> list[str]:
    """Types of the outbox rows in the order they were written."""
    return [row.event_type for row in events()]


def context_text(row: OutboxEvent) -> str:
    """The payload exactly as stored, the text the relay hands to ClickHouse."""
    # Read as text in SQL: psycopg would otherwise parse a `json` column into a dict.
    text: str = (
        OutboxEvent.objects.filter(pk=row.pk)
        .annotate(text=Cast("event_context", TextField()))
        .values_list("text", flat=True)
        .get()
    )
    return text


def context(row: OutboxEvent) -> dict[str, Any]:
    """The event's payload, parsed from the stored text."""
    payload: dict[str, Any] = json.loads(context_text(row))
    return payload


def assert_user_created(event: OutboxEvent, sign_up: dict[str, Any]) -> None:
    """The event carries what the contract says a sign-up's `user_created` event carries."""
    assert event.event_type == "user_created"
    assert event.environment == "Local"
    assert event.metadata_version == 1
    assert context(event) == {
        "user_id": context(event)["user_id"],
        "email": sign_up["email"],
        "first_name": sign_up["first_name"],
        "last_name": sign_up["last_name"],
    }
