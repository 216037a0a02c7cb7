"""Deployment checks of our own, run by `manage.py check --deploy` beside Django's."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.core.checks import CheckMessage, Tags, register

from webapp.config.env import LEAKING_EMAIL_BACKENDS

NO_DELIVERY_BACKENDS = frozenset({*LEAKING_EMAIL_BACKENDS, "django.core.mail.backends.dummy.EmailBackend"})


@register(Tags.security, deploy=True)
def check_email_delivers(**_: Any) -> list[CheckMessage]:
    """Production must deliver e-mail, not keep it where logs, files or memory show it (or drop it)."""
    if settings.DEBUG or settings.EMAIL_BACKEND not in NO_DELIVERY_BACKENDS:
        return []
    return [
        checks.Warning(
            f"EMAIL_BACKEND is {settings.EMAIL_BACKEND}: e-mail is not delivered, and password-reset"
            " links may land in logs or files where anyone reading them can take accounts over.",
            hint="Set EMAIL_HOST (SMTP) or EMAIL_BACKEND to a backend that delivers.",
            id="diehard.W001",
        )
    ]
