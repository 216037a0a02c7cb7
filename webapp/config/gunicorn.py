"""gunicorn's configuration: its own log lines in the same JSON shape as everything else."""

from __future__ import annotations

from shared.logging import logging_config
from shared.settings import load
from webapp.config.env import WebSettings

_settings = load(WebSettings)

logconfig_dict = logging_config(level=_settings.log_level, log_format=_settings.log_format)
# django-structlog writes one line per request, with its request id.
accesslog = None
