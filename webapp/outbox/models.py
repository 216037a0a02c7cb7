"""The outbox tables. Their names and meaning are the contract in `shared.outbox`."""

from __future__ import annotations

import json

from django.db import models
from django.db.models.functions import Now

from shared import outbox


class JSONTextField(models.TextField[str, str]):
    """PostgreSQL `json`: validated on write, kept byte for byte (unlike `jsonb`).

    The relay streams the stored text to ClickHouse unchanged, so the analysts see
    exactly the compact JSON the event contract produced.
    """

    def db_type(self, connection: object) -> str:
        return "json"

    def from_db_value(self, value: object, expression: object, connection: object) -> str | None:
        """psycopg decodes `json` columns; give back the text, as compact as the contract wrote it."""
        if value is None or isinstance(value, str):
            return value
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class EventFields(models.Model):
    """Columns an event has wherever it is kept: those of the analysts' table, plus tracing."""

    event_id = models.UUIDField(unique=True, db_default=models.Func(function="gen_random_uuid"))
    event_type = models.CharField(max_length=100)
    event_date_time = models.DateTimeField(db_default=Now())
    environment = models.CharField(max_length=64)
    event_context = JSONTextField()
    metadata_version = models.IntegerField(db_default=1)
    # Sentry's `sentry-trace` and `baggage` of the request that wrote the event,
    # so the relay's span continues the request's trace.
    sentry_trace = models.CharField(max_length=200, blank=True, db_default="")
    baggage = models.TextField(blank=True, db_default="")
    # Times this event has already been set aside as a dead letter.
    attempts = models.PositiveSmallIntegerField(db_default=0)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"


class OutboxEvent(EventFields):
    """An event waiting for the relay. Delivered rows are deleted."""

    id = models.BigAutoField(primary_key=True)

    class Meta:
        db_table = outbox.OUTBOX_TABLE
        verbose_name = "pending event"


class DeadLetter(EventFields):
    """An event ClickHouse rejected on its own, set aside with the error."""

    id = models.BigAutoField(primary_key=True)
    error = models.TextField()
    dead_lettered_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = outbox.DEAD_LETTER_TABLE
        ordering = ("-dead_lettered_at",)
        verbose_name = "dead letter"


class DeliveredEvent(models.Model):
    """An event ClickHouse acknowledged, kept for a while so that a loss there can be repaired.

    The relay writes these rows in the transaction that deletes the event from
    the outbox. The table is partitioned by delivery hour (created by a
    migration, partitions by the relay), so expiry drops whole partitions.
    Django sees one table; `event_id` stands in for a primary key (PostgreSQL's
    partitioned tables can only have keys that include `delivered_at`).
    """

    event_id = models.UUIDField(primary_key=True)
    event_type = models.CharField(max_length=100)
    event_date_time = models.DateTimeField()
    environment = models.CharField(max_length=64)
    event_context = JSONTextField()
    metadata_version = models.IntegerField()
    delivered_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = outbox.ARCHIVE_TABLE
        verbose_name = "delivered event"

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"
