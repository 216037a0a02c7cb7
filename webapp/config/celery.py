"""The Celery app: the site's asynchronous work other than events (e-mail, housekeeping)."""

from __future__ import annotations

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.config.settings")

app = Celery("webapp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.setup_logging.connect
def _keep_our_logging(**_: object) -> None:
    """Celery must not replace the structlog configuration made by the settings."""


@signals.worker_init.connect
def _tag_worker(**_: object) -> None:
    """Errors and traces from the worker are told apart from the web's by a tag."""
    import sentry_sdk

    sentry_sdk.set_tag("component", "worker")


@signals.worker_ready.connect
def _check_privileges(**_: object) -> None:
    """In production, say so when the worker could change the schema (docs/SECURITY.md)."""
    from django.conf import settings
    from django.db import connection

    from webapp.core.privileges import privileges_warn

    if not settings.DEBUG:
        privileges_warn(component="worker")
        connection.close()
