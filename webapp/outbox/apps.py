from __future__ import annotations

from django.apps import AppConfig


class OutboxConfig(AppConfig):
    """The outbox tables and the client that writes to them."""

    name = "webapp.outbox"
    label = "outbox"
    verbose_name = "Event outbox"
