"""Django project configuration; importing it also loads the Celery app."""

from webapp.config.celery import app as celery_app

__all__ = ("celery_app",)
