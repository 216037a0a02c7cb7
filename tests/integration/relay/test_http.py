"""The relay's HTTP endpoint tells ops, with curl alone, whether events flow and how far behind it is."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.clickhouse import ClickHouse
from tests.support.monitoring import promtool
from tests.support.outbox_tables import Outbox
from tests.support.relays import RelayFactory, delivered
from tests.support.waiting import free_port, wait_until

pytestmark = pytest.mark.slow

REQUIRED_METRICS = {
    "relay_archive_events": "gauge",
    "relay_reconcile_missing_events": "counter",
    "relay_reconcile_resent_events": "counter",
    "relay_reconcile_extra_events": "gauge",
    "relay_reconcile_last_success_timestamp_seconds": "gauge",
    "relay_systemic_refusal": "gauge",
    "relay_outbox_pending_events": "gauge",
    "relay_outbox_oldest_pending_age_seconds": "gauge",
    "relay_events_delivered": "counter",
    "relay_batch_duration_seconds": "histogram",
    "relay_event_lag_seconds": "histogram",
    "relay_delivery_errors": "counter",
    "relay_dead_letter_events": "gauge",
    "relay_dead_letters": "counter",
    "relay_last_success_timestamp_seconds": "gauge",
    "relay_listener_reconnects": "counter",
    "relay_bytes_delivered": "counter",
    "relay_batches": "counter",
    "relay_batch_size_events": "histogram",
    "relay_wakeups": "counter",
}


def test_metrics_parse_as_prometheus_text_and_name_every_documented_metric(start_relay: RelayFactory) -> None:
    relay = start_relay()

    status, body = relay.get("/metrics")
    families = {family.name: family.type for family in text_string_to_metric_families(body)}

    assert status == 200
    assert REQUIRED_METRICS.items() <= families.items()


def test_metrics_pass_promtool_check(
    outbox: Outbox, clickhouse: ClickHouse, start_relay: RelayFactory
) -> None:
    relay = start_relay()
    outbox.produce(10)
    wait_until(lambda: delivered(clickhouse) == 10, timeout=10)

    result = subprocess.run(
        [promtool(), "check", "metrics"],
        input=relay.get("/metrics")[1],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_counters_move_when_events_flow(
    outbox: Outbox, clickhouse: ClickHouse, start_relay: RelayFactory
) -> None:
    relay = start_relay(batch_size=100)
    assert relay.metric("relay_events_delivered_total") == 0

    outbox.produce(250)
    wait_until(lambda: delivered(clickhouse) == 250, timeout=10)
    # ClickHouse holds the last batch a moment before the relay commits and counts it.
    wait_until(lambda: relay.metric("relay_events_delivered_total") == 250, timeout=5)

    assert relay.metric("relay_batches_total") >= 3
    assert relay.metric("relay_batch_duration_seconds_count") >= 3
    assert relay.metric("relay_event_lag_seconds_count") >= 3
    assert relay.metric("relay_last_success_timestamp_seconds") > 0


def test_status_shows_the_backlog_and_its_age_while_clickhouse_is_unreachable(
    outbox: Outbox, start_relay: RelayFactory
) -> None:
    outbox.produce(40)
    relay = start_relay(CLICKHOUSE_PORT=free_port())  # nothing listens there

    first = wait_until(lambda: _with_stats(relay.status()), timeout=10)
    later = wait_until(
        lambda: _older(relay.status(), than=first),
        timeout=10,
    )

    assert later["pending_events"] == 40
    assert later["events_delivered"] == 0
    assert relay.metric("relay_outbox_pending_events") == 40
    assert relay.metric("relay_outbox_oldest_pending_age_seconds") > 0
    assert relay.get("/readyz")[0] == 503
    assert relay.get("/livez")[0] == 200


def test_readiness_names_the_dependency_that_does_not_answer_without_internals(
    start_relay: RelayFactory,
) -> None:
    relay = start_relay(CLICKHOUSE_PORT=free_port())

    status, body = relay.get("/readyz")

    assert status == 503
    assert json.loads(body) == {
        "status": "unavailable",
        "checks": {"postgres": "ok", "clickhouse": "unavailable"},
    }


def test_readiness_is_probed_on_a_timer_for_prometheus_without_calling_readyz(
    start_relay: RelayFactory,
) -> None:
    relay = start_relay(CLICKHOUSE_PORT=free_port())

    wait_until(lambda: "relay_dependency_up{" in relay.get("/metrics")[1], timeout=10)

    assert relay.metric("relay_dependency_up", dependency="clickhouse") == 0
    assert relay.metric("relay_dependency_up", dependency="postgres") == 1


def test_status_reports_the_last_error_kind_and_time(outbox: Outbox, start_relay: RelayFactory) -> None:
    relay = start_relay()
    outbox.produce(1, metadata_version=-1)

    document = wait_until(lambda: relay.status()["last_error"], timeout=10)

    assert document["kind"] == "rejected"
    assert document["at"]
    wait_until(lambda: relay.status()["dead_letters"] == 1, timeout=10)


def _with_stats(status: dict[str, Any]) -> dict[str, Any] | None:
    return status if status["pending_events"] is not None else None


def _older(status: dict[str, Any], *, than: dict[str, Any]) -> dict[str, Any] | None:
    return status if status["oldest_pending_age_seconds"] > than["oldest_pending_age_seconds"] else None
