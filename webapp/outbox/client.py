"""`EventLogClient`: publish events by writing them to the outbox in the caller's transaction.

Publishing is part of the business change: the event row commits or rolls back
with it. Publishing outside `transaction.atomic()` is refused with
`TransactionRequired`: in autocommit mode the event would commit on its own,
before or without the change it describes, which is exactly the bug an outbox
exists to prevent. Code that really has no business change (a failed sign-in)
opens its own `transaction.atomic()` around the publish.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import sentry_sdk
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, transaction

from shared.events import Envelope, Event
from webapp.outbox.models import OutboxEvent
from webapp.outbox.wakeup import wake_relay_on_commit

# What an event keeps of its request's Sentry baggage: the SDK's own sampling
# context is a few hundred characters, and a client could send kilobytes of
# made-up `sentry-` items to be stored with every event its request writes.
MAX_BAGGAGE = 1024
# The keys of Sentry's dynamic sampling context, kept before any other.
SAMPLING_CONTEXT = (
    "trace_id",
    "public_key",
    "sample_rate",
    "sample_rand",
    "sampled",
    "release",
    "environment",
    "transaction",
    "org_id",
)


def bounded_baggage(baggage: str) -> str:
    """The Sentry items of a baggage header that fit in `MAX_BAGGAGE`, the sampling context's first.

    Items are kept whole, in the order given within each rank; one that does
    not fit is left out, and a smaller one after it may still be kept.
    """
    items = [item.strip() for item in baggage.split(",") if item.strip().startswith("sentry-")]

    def rank(item: str) -> int:
        key = item.removeprefix("sentry-").split("=", 1)[0]
        return SAMPLING_CONTEXT.index(key) if key in SAMPLING_CONTEXT else len(SAMPLING_CONTEXT)

    kept: list[str] = []
    size = -1  # no comma before the first item
    for item in sorted(items, key=rank):
        if size + 1 + len(item) <= MAX_BAGGAGE:
            kept.append(item)
            size += 1 + len(item)
    return ",".join(kept)


class TransactionRequired(RuntimeError):
    """`publish` was called outside `transaction.atomic()`."""


@dataclass(frozen=True, slots=True)
class EventLogClient:
    """Writes events to the outbox of one database, stamped with one environment name."""

    environment: str
    using: str = DEFAULT_DB_ALIAS

    @classmethod
    def from_settings(cls) -> EventLogClient:
        """A client for the default database and the configured `ENVIRONMENT`."""
        return cls(environment=settings.ENVIRONMENT)

    def publish(self, *events: Event) -> None:
        """Insert one outbox row per event in the current transaction; wake the relay once it commits."""
        self.publish_all(events)

    def publish_all(self, events: Iterable[Event]) -> None:
        """Like `publish`, for an iterable of events."""
        if not transaction.get_connection(self.using).in_atomic_block:
            raise TransactionRequired(
                "publish events inside transaction.atomic(), with the change they describe"
            )
        envelopes = [Envelope.wrap(event, environment=self.environment) for event in events]
        # The trace of the request writing the event travels with it, so the
        # relay's delivery shows up in the same trace.
        sentry_trace = sentry_sdk.get_traceparent() or ""
        baggage = bounded_baggage(sentry_sdk.get_baggage() or "")
        OutboxEvent.objects.using(self.using).bulk_create(
            OutboxEvent(**envelope.columns(), sentry_trace=sentry_trace, baggage=baggage)
            for envelope in envelopes
        )
        wake_relay_on_commit(using=self.using)
