"""Every Sentry report names the release it came from, so errors and regressions group by version."""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import version
from typing import Any

import pytest
import sentry_sdk

from shared.sentry import init_sentry
from shared.settings import CommonSettings
from tests.support.sentry import NO_PROXY, SentrySink, error_events

OPERATORS_RELEASE = "die-hard@2026.12.3+abc123"


@pytest.fixture
def sink() -> Iterator[SentrySink]:
    with SentrySink() as sink:
        yield sink
        sentry_sdk.get_client().close(timeout=5)
        sentry_sdk.init(dsn=None)


def report_one_error(sink: SentrySink, *, release: str | None = None) -> dict[str, Any]:
    settings = CommonSettings(sentry_config_dsn=sink.dsn, sentry_release=release)
    init_sentry(settings, component="relay", http_proxy=NO_PROXY)
    sentry_sdk.capture_message("something broke")
    [event] = error_events(sink)
    return event


def test_a_report_names_the_package_version_by_default(sink: SentrySink) -> None:
    assert report_one_error(sink)["release"] == f"die-hard@{version('die-hard')}"


def test_a_release_the_operator_names_wins_over_the_package_version(sink: SentrySink) -> None:
    assert report_one_error(sink, release=OPERATORS_RELEASE)["release"] == OPERATORS_RELEASE
