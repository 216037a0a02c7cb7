from __future__ import annotations

from django.apps import AppConfig


class HealthConfig(AppConfig):
    """The site's readiness endpoint, `/health/`."""

    name = "webapp.health"
    label = "health"
