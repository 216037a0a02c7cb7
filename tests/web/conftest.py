"""Fixtures for the web site's tests: real PostgreSQL, real Redis, no developer `.env` beyond connections."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connections
from django.db.models.signals import post_migrate
from pytest_django import Settings

from shared.outbox import WAKEUP_TABLE


@pytest.fixture(autouse=True)
def _site_defaults(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> None:
    # The contract's default environment name, whatever a developer's .env says.
    settings.ENVIRONMENT = "Local"
    # An empty static root: WhiteNoise warns (an error under `filterwarnings`)
    # when collectstatic has not been run, which tests have no reason to do.
    settings.STATIC_ROOT = tmp_path_factory.getbasetemp() / "static"
    Path(settings.STATIC_ROOT).mkdir(exist_ok=True)


def _restore_wakeup_row(*, using: str, **_: Any) -> None:
    # A transactional test ends with a flush, which empties every table,
    # including the single row the outbox trigger debounces on (written by a
    # data migration). Flush then sends post_migrate: put the row back.
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {WAKEUP_TABLE} (id, notified_at) VALUES (1, '-infinity') ON CONFLICT DO NOTHING"
        )


@pytest.fixture(scope="session", autouse=True)
def _wakeup_row_survives_flush() -> Iterator[None]:
    from django.apps import apps

    post_migrate.connect(
        _restore_wakeup_row, sender=apps.get_app_config("outbox"), dispatch_uid="tests.web.wakeup_row"
    )
    yield
    post_migrate.disconnect(sender=apps.get_app_config("outbox"), dispatch_uid="tests.web.wakeup_row")
