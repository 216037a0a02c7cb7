"""What every test can use.

Tests are sorted by what they need to run:
- `tests/unit/`: nothing but the code (no PostgreSQL, Redis or ClickHouse, no `.env`);
  `make test-unit` runs them in seconds.
- `tests/integration/web/` and `tests/integration/relay/`: the real services, per side
  of the outbox.
Tests that spawn processes or restart servers are marked `slow`; `make test` runs all.

Fixtures and helpers shared between directories live in `tests/support/` and are
loaded here as plugins, so a test names a fixture without importing it.
"""

from __future__ import annotations

import pytest
from pytest_django import Settings

pytest_plugins = [
    "tests.support.clickhouse",
    "tests.support.current_clickhouse",
    "tests.support.outbox_tables",
    "tests.support.relays",
    "tests.support.sentry",
    "tests.support.smtp",
]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--screenshots",
        metavar="DIR",
        default=None,
        help="save a picture of each page the browser tests check into DIR",
    )
    parser.addoption(
        "--image",
        metavar="NAME",
        default=None,
        help="run tests/image/ against this built container image (make image-test)",
    )


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    """The test database is created and migrated by the tables' owner, as `make migrate` does.

    The site's own role (DATABASE_URL) may neither create databases nor
    tables; the suite runs as the owner (DATABASE_ADMIN_URL) throughout, and
    tests of least privilege connect as the roles themselves.
    """
    from django.conf import settings

    owner, default = settings.DATABASES["owner"], settings.DATABASES["default"]
    assert isinstance(default, dict)
    default.update({key: owner[key] for key in ("USER", "PASSWORD", "HOST", "PORT")})


@pytest.fixture(autouse=True)
def _site_defaults(settings: Settings) -> None:
    # The contract's default environment name, whatever a developer's .env says.
    settings.ENVIRONMENT = "Local"
