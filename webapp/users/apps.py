from __future__ import annotations

from django.apps import AppConfig


class UsersConfig(AppConfig):
    """Users with the e-mail address as their login."""

    name = "webapp.users"
    label = "users"

    def ready(self) -> None:
        from webapp.users import signals  # noqa: F401  (connects the audit receivers)
