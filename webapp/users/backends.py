"""Authentication by e-mail address, case-insensitively."""

from __future__ import annotations

from django.contrib.auth.backends import ModelBackend


class EmailBackend(ModelBackend):
    """Django's model backend; the manager's natural key is the e-mail, matched case-insensitively."""
