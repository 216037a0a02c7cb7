from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.apps import apps as global_apps
from django.apps.registry import Apps
from django.db import connections, router
from django.db.models.signals import post_migrate

from shared.outbox import RESTORE_WAKEUP_ROW


class OutboxConfig(AppConfig):
    """The outbox tables and the client that writes to them."""

    name = "webapp.outbox"
    label = "outbox"
    verbose_name = "Event outbox"

    def ready(self) -> None:
        post_migrate.connect(_restore_wakeup_row, sender=self, dispatch_uid="outbox.restore_wakeup_row")


def _restore_wakeup_row(*, using: str, apps: Apps = global_apps, **_: Any) -> None:
    """Put back the single row the wake-up trigger debounces on.

    `manage.py flush` (and every transactional test) empties all tables and then
    sends post_migrate; without the row, producers notify on every statement.
    """
    # `apps` is the schema as migrated, not as the code declares it: after
    # `migrate outbox zero`, or `migrate users` on a fresh database, the table
    # does not exist and there is no row to restore.
    try:
        wakeup = apps.get_model("outbox", "WakeUp")
    except LookupError:
        return
    if not router.allow_migrate_model(using, wakeup):
        return
    with connections[using].cursor() as cursor:
        cursor.execute(RESTORE_WAKEUP_ROW)
