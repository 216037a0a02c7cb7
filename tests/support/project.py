"""The project as its commands see it: where its files are, and a production environment."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def production_env(**overrides: str) -> dict[str, str]:
    """A production-mode environment that ignores the developer's .env and shell."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DIE_HARD_ENV_FILE": os.devnull,
        "DJANGO_SETTINGS_MODULE": "webapp.config.settings",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "diehard.example.com,localhost",
        # Never connected to by these tests: start-up must not need the database.
        "DATABASE_URL": "postgres://diehard@127.0.0.1:9/diehard",
        # Nor the mail server: it is only named, as production mode demands.
        "EMAIL_HOST": "smtp.example.com",
        "LOG_FORMAT": "json",
    }
    env.update(overrides)
    return env
