from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db import connections
from django.db.models.signals import post_migrate

from shared.outbox import WAKEUP_TABLE


class OutboxConfig(AppConfig):
    """The outbox tables and the client that writes to them."""

    name = "webapp.outbox"
    label = "outbox"
    verbose_name = "Event outbox"

    def ready(self) -> None:
        post_migrate.connect(_restore_wakeup_row, sender=self, dispatch_uid="outbox.restore_wakeup_row")


def _restore_wakeup_row(*, using: str, **_: Any) -> None:
    """Put back the single row the wake-up trigger debounces on.

    `manage.py flush` (and every transactional test) empties all tables and then
    sends post_migrate; without the row, producers notify on every statement.
    """
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {WAKEUP_TABLE} (id, notified_at) VALUES (1, '-infinity') ON CONFLICT DO NOTHING"
        )
