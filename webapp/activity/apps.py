from __future__ import annotations

from django.apps import AppConfig


class ActivityConfig(AppConfig):
    """The security-activity page: no models, it reads ClickHouse and the outbox."""

    name = "webapp.activity"
    label = "activity"
