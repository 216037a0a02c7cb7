"""Alert rules and the dashboard are files operators load as they are: they must be valid and tested."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.monitoring import (
    ALERTS_FILE,
    ALERTS_TEST_FILE,
    DASHBOARD_FILE,
    GRAFANA_DIR,
    PROMETHEUS_CONFIG,
    alert_rules,
    as_prometheus_sees_it,
    dashboard,
    dashboard_panels,
    dashboard_queries,
    load_yaml,
    metric_names,
    promtool,
)
from tests.support.project import ROOT

OPERATIONS_GUIDE = ROOT / "docs" / "OPERATIONS.md"
SEVERITIES = {"critical", "warning", "info"}


def run_promtool(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    """promtool with the given arguments; its output is kept for the assertion message."""
    return subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60
    )


def markdown_anchors(path: Path) -> set[str]:
    """The anchors a Markdown renderer gives the file's headings (lower case, spaces to dashes)."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", path.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading).strip().lower().replace(" ", "-") for heading in headings}


def test_alert_rules_pass_promtool_check() -> None:
    result = run_promtool("check", "rules", str(ALERTS_FILE))

    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_pass_their_unit_tests() -> None:
    result = run_promtool("test", "rules", ALERTS_TEST_FILE.name, cwd=ALERTS_TEST_FILE.parent)

    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_configuration_passes_promtool_check_with_the_rules_it_loads() -> None:
    result = run_promtool("check", "config", str(PROMETHEUS_CONFIG))

    assert result.returncode == 0, result.stdout + result.stderr
    assert load_yaml(PROMETHEUS_CONFIG)["rule_files"] == [ALERTS_FILE.name]


def test_every_alert_is_unit_tested_both_firing_and_staying_quiet() -> None:
    checks = [check for test in load_yaml(ALERTS_TEST_FILE)["tests"] for check in test["alert_rule_test"]]
    fired = {check["alertname"] for check in checks if check.get("exp_alerts")}
    quiet = {check["alertname"] for check in checks if not check.get("exp_alerts")}
    alerts = {rule["alert"] for rule in alert_rules()}

    assert alerts - fired == set(), "alerts never shown firing"
    assert alerts - quiet == set(), "alerts never shown staying quiet"


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_has_a_severity_a_summary_and_a_runbook_in_the_operations_guide(rule: dict[str, Any]) -> None:
    annotations = rule["annotations"]

    assert rule["labels"]["severity"] in SEVERITIES
    assert annotations["summary"]
    assert annotations["description"]
    guide, _, anchor = annotations["runbook_url"].partition("#")
    assert guide == "docs/OPERATIONS.md"
    assert anchor == rule["alert"].lower()
    assert anchor in markdown_anchors(OPERATIONS_GUIDE)


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    # promtool parses each query as Prometheus itself would, as a recording rule.
    rules = tmp_path / "dashboard-queries.yml"
    rules.write_text(
        json.dumps(  # JSON is YAML
            {
                "groups": [
                    {
                        "name": "dashboard",
                        "rules": [
                            {"record": f"dashboard:query_{number}", "expr": query}
                            for number, query in enumerate(dashboard_queries())
                        ],
                    }
                ]
            }
        ),
        encoding="utf-8",
    )

    result = run_promtool("check", "rules", str(rules))

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(dashboard_queries())} rules found" in result.stdout


def test_every_dashboard_panel_has_a_title_a_description_and_a_query() -> None:
    panels = [panel for panel in dashboard_panels() if panel["type"] != "row"]

    assert len(panels) >= 12
    for panel in panels:
        assert panel["title"], panel
        assert panel["description"], panel["title"]
        assert panel["targets"], panel["title"]
        assert all(metric_names(as_prometheus_sees_it(target["expr"])) for target in panel["targets"]), panel[
            "title"
        ]


def test_every_dashboard_panel_reads_from_the_chosen_prometheus() -> None:
    variables = {variable["name"]: variable for variable in dashboard()["templating"]["list"]}

    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in dashboard_panels():
        if panel["type"] == "row":
            continue
        sources = [panel["datasource"]] + [target["datasource"] for target in panel["targets"]]
        assert all(source == {"type": "prometheus", "uid": "${datasource}"} for source in sources), panel[
            "title"
        ]


def test_dashboard_panel_ids_are_unique() -> None:
    ids = [panel["id"] for panel in dashboard_panels()]

    assert len(ids) == len(set(ids))


def test_dashboard_covers_what_operators_watch() -> None:
    queried = set().union(*(metric_names(query) for query in dashboard_queries()))

    assert {
        "relay_events_delivered_total",  # throughput
        "relay_event_lag_seconds_bucket",  # lag percentiles
        "relay_outbox_pending_events",  # backlog
        "relay_batch_size_events_bucket",
        "relay_batch_duration_seconds_bucket",
        "relay_delivery_errors_total",  # errors by kind
        "relay_dead_letter_events",
        "process_resident_memory_bytes",  # relay RSS
    } <= queried


def test_grafana_provisions_the_compose_prometheus_and_the_dashboard_folder() -> None:
    datasource = load_yaml(GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml")["datasources"][0]
    provider = load_yaml(GRAFANA_DIR / "provisioning" / "dashboards" / "die-hard.yml")["providers"][0]

    assert (datasource["type"], datasource["url"], datasource["isDefault"]) == (
        "prometheus",
        "http://prometheus:9090",
        True,
    )
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/etc/grafana/dashboards"
    assert DASHBOARD_FILE.parent.name == "dashboards"
