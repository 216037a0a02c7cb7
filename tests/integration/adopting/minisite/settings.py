"""Settings of a second, minimal Django project that takes the outbox as docs/ADOPTING.md says.

It shares nothing with the site's settings: its own apps, its own database
(`DATABASE_URL`), only what the outbox needs (`ENVIRONMENT`).
"""

from __future__ import annotations

import os

import dj_database_url
import django_stubs_ext

# The outbox's models and admin give Django's classes type parameters at run time.
django_stubs_ext.monkeypatch()

SECRET_KEY = "minisite-for-tests-only"  # a test project that serves no request
DEBUG = False
ALLOWED_HOSTS: list[str] = []
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "webapp.outbox",  # the outbox tables, the wake-up trigger and EventLogClient
    "tests.integration.adopting.minisite.shop",
]

DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"])}

# Written into every event's `environment` column.
ENVIRONMENT = os.environ.get("ENVIRONMENT", "Local")
