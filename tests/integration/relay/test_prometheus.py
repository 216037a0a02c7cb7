"""A real Prometheus scraping a real relay: the alert rules and every dashboard query work on its series."""

from __future__ import annotations

import json
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.clickhouse import ClickHouse
from tests.support.monitoring import ALERTS_FILE, alert_rules, dashboard_queries, prometheus_program
from tests.support.outbox_tables import Outbox
from tests.support.relays import RelayFactory, RelayProcess, delivered
from tests.support.waiting import free_port, wait_until

pytestmark = pytest.mark.slow

PrometheusFactory = Callable[[RelayProcess], "Prometheus"]


class Prometheus:
    """A Prometheus server of the test's own, scraping one relay every second."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process = process
        self.port = port
        self.log = log

    def api(self, path: str, **params: str) -> Any:
        """The `data` of an HTTP API answer; fails on an API error."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.port}/api/v1/{path}{query}", timeout=10
        ) as answer:
            document: dict[str, Any] = json.load(answer)
        assert document["status"] == "success", document
        return document["data"]

    def query(self, expression: str) -> list[dict[str, Any]]:
        """The instant vector an expression evaluates to now."""
        data = self.api("query", query=expression)
        assert data["resultType"] == "vector", data
        vector: list[dict[str, Any]] = data["result"]
        return vector

    def now(self) -> float:
        """The server's clock, in Unix seconds."""
        data = self.api("query", query="time()")
        return float(data["result"][1])

    def ready(self) -> bool:
        """Whether the server answers its readiness endpoint."""
        assert self.process.poll() is None, self.log.read_text(errors="replace")[-3000:]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def alerts(self) -> list[dict[str, Any]]:
        """Alerts pending or firing now."""
        alerts: list[dict[str, Any]] = self.api("alerts")["alerts"]
        return alerts


@pytest.fixture
def start_prometheus(tmp_path: Path) -> Iterator[PrometheusFactory]:
    """Start Prometheus with the project's alert rules against a relay; it is stopped afterwards."""
    started: list[Prometheus] = []

    def start(relay: RelayProcess) -> Prometheus:
        config = tmp_path / "prometheus.yml"
        config.write_text(
            json.dumps(  # JSON is YAML
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(ALERTS_FILE)],
                    "scrape_configs": [
                        {"job_name": "relay", "static_configs": [{"targets": [f"127.0.0.1:{relay.port}"]}]}
                    ],
                }
            ),
            encoding="utf-8",
        )
        port = free_port()
        log = tmp_path / "prometheus.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [
                    prometheus_program("prometheus"),
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'data'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=output,
                stderr=output,
            )
        server = Prometheus(process, port, log)
        started.append(server)
        wait_until(server.ready, timeout=30, interval=0.2)
        return server

    yield start
    for server in started:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


def every_rule_once_evaluated(prometheus: Prometheus) -> list[dict[str, Any]]:
    """The alerting rules, once Prometheus has evaluated each of them at least once (until then, none)."""
    rules = [rule for group in prometheus.api("rules")["groups"] for rule in group["rules"]]
    never = "0001-01-01T00:00:00Z"
    return rules if rules and all(rule["lastEvaluation"] != never for rule in rules) else []


def test_prometheus_evaluates_every_alert_rule_on_a_relay_without_error(
    start_relay: RelayFactory, start_prometheus: PrometheusFactory
) -> None:
    relay = start_relay(CLICKHOUSE_PORT=str(free_port()))  # ClickHouse unreachable: not ready
    prometheus = start_prometheus(relay)

    rules = wait_until(lambda: every_rule_once_evaluated(prometheus), timeout=30)

    assert {rule["name"]: rule["health"] for rule in rules} == {rule["alert"]: "ok" for rule in alert_rules()}


def test_a_relay_that_cannot_reach_clickhouse_sets_off_relay_not_ready_and_nothing_about_being_down(
    start_relay: RelayFactory, start_prometheus: PrometheusFactory
) -> None:
    relay = start_relay(CLICKHOUSE_PORT=str(free_port()))
    prometheus = start_prometheus(relay)

    alerts = wait_until(
        lambda: [alert for alert in prometheus.alerts() if alert["labels"]["alertname"] == "RelayNotReady"],
        timeout=30,
    )

    assert alerts[0]["labels"]["dependency"] == "clickhouse"
    assert alerts[0]["labels"]["instance"] == f"127.0.0.1:{relay.port}"
    assert alerts[0]["state"] == "pending"  # for 5 minutes before it fires
    names = {alert["labels"]["alertname"] for alert in prometheus.alerts()}
    assert names.isdisjoint({"RelayDown", "RelayAbsent"})


def test_every_dashboard_query_returns_series_for_a_relay_that_delivers(
    outbox: Outbox, clickhouse: ClickHouse, start_relay: RelayFactory, start_prometheus: PrometheusFactory
) -> None:
    relay = start_relay()
    prometheus = start_prometheus(relay)
    outbox.produce(20)
    wait_until(lambda: delivered(clickhouse) == 20, timeout=10)
    # Rates and derivatives need two samples after the delivery.
    first = wait_until(
        lambda: prometheus.query('timestamp(relay_events_delivered_total{job="relay"})'), timeout=15
    )
    start = float(first[0]["value"][1])
    wait_until(lambda: prometheus.now() > start + 2.5, timeout=15)

    empty = [query for query in dashboard_queries() if not prometheus.query(query)]

    assert empty == []
