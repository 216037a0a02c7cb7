"""The alert rules and the dashboard ask only for metrics a running relay, or the site, exports."""

from __future__ import annotations

from importlib.metadata import version

import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from tests.support.clickhouse import ClickHouse
from tests.support.monitoring import SYNTHETIC_SERIES, alert_rules, dashboard_queries, metric_names
from tests.support.outbox_tables import Outbox
from tests.support.relays import RelayFactory, delivered
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


def exported_series(page: str) -> set[str]:
    """Names of the samples on a /metrics page (`_total`, `_bucket`, `_sum`, `_count` included)."""
    return {sample.name for family in text_string_to_metric_families(page) for sample in family.samples}


@pytest.fixture
def relay_metrics_page(outbox: Outbox, clickhouse: ClickHouse, start_relay: RelayFactory) -> str:
    """/metrics of a relay that has delivered events and probed its dependencies."""
    relay = start_relay()
    outbox.produce(5)
    wait_until(lambda: delivered(clickhouse) == 5, timeout=10)
    wait_until(lambda: "relay_dependency_up{" in relay.get("/metrics")[1], timeout=10)
    return relay.get("/metrics")[1]


@pytest.fixture
def site_metrics_page() -> str:
    """The site's /metrics, as a caller from an internal network reads it."""
    response = Client(REMOTE_ADDR="127.0.0.1").get("/metrics")
    assert response.status_code == 200
    return response.content.decode()


def test_every_metric_the_alert_rules_name_is_exported_by_the_relay_or_the_site(
    relay_metrics_page: str, site_metrics_page: str
) -> None:
    named = set().union(*(metric_names(rule["expr"]) for rule in alert_rules()))
    exported = exported_series(relay_metrics_page) | exported_series(site_metrics_page)

    assert named - SYNTHETIC_SERIES - exported == set()


def test_every_metric_the_dashboard_names_is_exported_by_the_relay(relay_metrics_page: str) -> None:
    named = set().union(*(metric_names(query) for query in dashboard_queries()))

    assert named - SYNTHETIC_SERIES - exported_series(relay_metrics_page) == set()


def test_readiness_is_exported_per_dependency(relay_metrics_page: str) -> None:
    up = {
        sample.labels["dependency"]: sample.value
        for family in text_string_to_metric_families(relay_metrics_page)
        for sample in family.samples
        if sample.name == "relay_dependency_up"
    }

    assert up == {"postgres": 1.0, "clickhouse": 1.0}


def test_each_relay_says_which_version_it_runs(relay_metrics_page: str) -> None:
    [build] = [
        sample
        for family in text_string_to_metric_families(relay_metrics_page)
        for sample in family.samples
        if sample.name == "relay_build_info"
    ]

    assert build.labels == {"version": version("die-hard")}
    assert build.value == 1.0
