"""Fixtures for the web site's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.cache import cache

from webapp.health.views import reports


@pytest.fixture(autouse=True)
def _fresh_throttles() -> Iterator[None]:
    """Every test starts with no failed sign-ins or sign-ups counted (the cache is Redis)."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _fresh_health_report() -> None:
    """Every test probes afresh instead of reading an earlier test's cached `/health/` report."""
    reports.clear()
