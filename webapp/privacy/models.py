"""Erasure requests: written with the account's deletion, carried out after it."""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Now


class ErasureRequest(models.Model):
    """Erase every event about one (deleted) account from the outbox, dead letters and ClickHouse.

    Once carried out, the request keeps only what was done and when: its link
    to the account (`user_id`) is cleared.
    """

    id = models.BigAutoField(primary_key=True)
    # Not a foreign key: the account is gone by the time the request is carried out.
    user_id = models.BigIntegerField(null=True, blank=True)
    requested_at = models.DateTimeField(db_default=Now())
    completed_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(db_default=Now())
    attempts = models.PositiveSmallIntegerField(default=0)
    # The kind of the last failure (an exception class name), never its text.
    last_error = models.CharField(max_length=100, blank=True, default="")
    outbox_events = models.PositiveIntegerField(default=0)
    dead_letters = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = (
            models.Index(
                fields=["next_attempt_at"],
                name="privacy_erasure_pending",
                condition=models.Q(completed_at=None),
            ),
        )

    def __str__(self) -> str:
        return f"erasure {self.pk}"
