"""Fixtures for the web site's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from axes.handlers.proxy import AxesProxyHandler
from django.core.cache import cache
from pytest_django import Settings

from tests.support.waiting import free_port
from webapp.health.views import reports


@pytest.fixture(autouse=True)
def _fresh_throttles() -> Iterator[None]:
    """Every test starts with nothing counted by the throttles (their counters are in Redis)."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _fresh_health_report() -> None:
    """Every test probes afresh instead of reading an earlier test's cached `/health/` report."""
    reports.clear()


@pytest.fixture
def redis_unreachable(settings: Settings) -> Iterator[None]:
    """The site's cache points at a port nobody listens on, until the test ends."""
    original = settings.CACHES
    settings.CACHES = {"default": {**original["default"], "LOCATION": f"redis://127.0.0.1:{free_port()}/0"}}
    # django-axes keeps the cache it was built with: build it again on the new one.
    AxesProxyHandler.get_implementation(force=True)
    yield
    settings.CACHES = original
    AxesProxyHandler.get_implementation(force=True)
