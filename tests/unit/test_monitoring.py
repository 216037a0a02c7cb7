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
    alerts_renderer,
    as_prometheus_sees_it,
    dashboard,
    dashboard_panels,
    dashboard_queries,
    load_yaml,
    metric_names,
    promtool,
    vector_selectors,
)
from tests.support.project import ROOT

Parameters, render = alerts_renderer()
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
    assert guide == Parameters().runbook_base_url
    assert anchor == rule["alert"].lower()
    assert anchor in markdown_anchors(OPERATIONS_GUIDE)


def test_the_shipped_rules_are_the_template_rendered_with_the_default_parameters() -> None:
    assert ALERTS_FILE.read_text(encoding="utf-8") == render(Parameters()), (
        "alerts.yml differs from its template: run `python docker/prometheus/render.py`"
    )


def test_the_defaults_are_absolute_urls_and_the_compose_jobs() -> None:
    defaults = Parameters()
    jobs = {config["job_name"] for config in load_yaml(PROMETHEUS_CONFIG)["scrape_configs"]}

    assert defaults.runbook_base_url.startswith("https://")
    assert {defaults.relay_selector, defaults.site_selector} == {f'job="{job}"' for job in ("relay", "web")}
    assert {"relay", "web"} <= jobs


def test_rules_rendered_for_another_deployment_select_only_its_series_and_pass_promtool(
    tmp_path: Path,
) -> None:
    parameters = Parameters(
        relay_selector='job="analytics-relay", namespace="shop"',
        site_selector='job="shop-web"',
        runbook_base_url="https://wiki.example.org/runbooks/die-hard",
        lag_warning_seconds=120,
        lag_critical_seconds=900,
        reconcile_stale_seconds=7200,
    )
    rules_file = tmp_path / "alerts.yml"
    rules_file.write_text(render(parameters), encoding="utf-8")

    result = run_promtool("check", "rules", str(rules_file))

    assert result.returncode == 0, result.stdout + result.stderr
    wanted = {
        "die-hard-relay": {"job": "analytics-relay", "namespace": "shop"},
        "die-hard-site": {"job": "shop-web"},
    }
    rules = {}
    for group in load_yaml(rules_file)["groups"]:
        for rule in group["rules"]:
            rules[rule["alert"]] = rule["expr"]
            for selector in vector_selectors(rule["expr"]):
                labels = {matcher.name: matcher.value for matcher in selector.matchers.matchers}
                assert wanted[group["name"]].items() <= labels.items(), (rule["alert"], selector.name)
            assert rule["annotations"]["runbook_url"] == (
                f"https://wiki.example.org/runbooks/die-hard#{rule['alert'].lower()}"
            )
    assert rules["RelayLagging"].endswith("> 120")
    assert rules["RelayLagCritical"].endswith("> 900")
    assert "> 7200" in rules["RelayReconcileStale"]


@pytest.mark.parametrize(
    ("parameter", "value"),
    [
        ("relay_selector", "relay"),
        ("site_selector", 'job="web"}'),
        ("runbook_base_url", "docs/OPERATIONS.md"),
        ("runbook_base_url", "https://wiki.example.org/ops#runbooks"),
        ("lag_critical_seconds", 30),
    ],
)
def test_parameters_that_would_break_the_rules_are_refused(parameter: str, value: object) -> None:
    with pytest.raises(ValueError, match=parameter.split("_seconds", maxsplit=1)[0]):
        Parameters(**{parameter: value})


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


def test_every_dashboard_query_selects_the_chosen_job_and_none_is_hard_coded() -> None:
    variables = {variable["name"]: variable for variable in dashboard()["templating"]["list"]}
    targets = [target["expr"] for panel in dashboard_panels() for target in panel.get("targets", [])]

    assert variables["job"]["type"] == "query"
    assert variables["job"]["current"]["value"] == "relay"  # what compose scrapes the relays as
    assert 'job="$job"' in variables["instance"]["definition"]
    for query in targets:
        for selector in vector_selectors(as_prometheus_sees_it(query)):
            jobs = [matcher for matcher in selector.matchers.matchers if matcher.name == "job"]
            assert len(jobs) == 1, (selector.name, query)
        assert set(re.findall(r'\bjob\s*=~?\s*"([^"]*)"', query)) == {"$job"}, query


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
