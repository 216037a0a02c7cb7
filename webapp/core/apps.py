from __future__ import annotations

from django.apps import AppConfig


class CoreConfig(AppConfig):
    """Site-wide management commands and deployment checks."""

    name = "webapp.core"
    label = "core"

    def ready(self) -> None:
        from webapp.core import checks  # noqa: F401  (registers the checks)
