from __future__ import annotations

from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Site-wide management commands."""

    name = "webapp.core"
    label = "core"
