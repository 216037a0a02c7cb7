from __future__ import annotations

from django.apps import AppConfig


class PrivacyConfig(AppConfig):
    """Erasure requests and the work that carries them out."""

    name = "webapp.privacy"
    label = "privacy"
