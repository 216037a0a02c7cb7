"""What the alert rules and the dashboard ask Prometheus for, read from their files."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
from ruamel.yaml import YAML

from tests.support.project import ROOT

PROMETHEUS_DIR = ROOT / "docker" / "prometheus"
ALERTS_FILE = PROMETHEUS_DIR / "alerts.yml"
ALERTS_TEST_FILE = PROMETHEUS_DIR / "alerts.test.yml"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
GRAFANA_DIR = ROOT / "docker" / "grafana"
DASHBOARD_FILE = GRAFANA_DIR / "dashboards" / "die-hard.json"

# Series Prometheus makes itself for every target; no exporter exports them.
SYNTHETIC_SERIES = frozenset({"up"})

# Grafana's interval macros, and any dashboard variable, as Prometheus would receive them.
_INTERVAL_MACRO = re.compile(r"\$__(rate_interval|interval|range)\b")
_VARIABLE = re.compile(r"\$\{?\w+\}?")


def alerts_renderer() -> tuple[Any, Any]:
    """`Parameters` and `render` of docker/prometheus/render.py (a script beside the rules, not a package)."""
    spec = importlib.util.spec_from_file_location("die_hard_alerts_render", PROMETHEUS_DIR / "render.py")
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building the class
    spec.loader.exec_module(module)
    return module.Parameters, module.render


def prometheus_program(name: str) -> str:
    """`promtool` or `prometheus` from .tools (scripts/prometheus.sh, run by `make install`), or PATH."""
    installed = ROOT / ".tools" / "bin" / name
    if installed.exists():
        return str(installed)
    found = shutil.which(name)
    assert found, f"{name} is missing: run scripts/prometheus.sh (make install does)"
    return found


def promtool() -> str:
    """Prometheus' checking and unit-testing tool."""
    return prometheus_program("promtool")


def load_yaml(path: Path) -> Any:
    """A YAML file as data."""
    return YAML(typ="safe").load(path.read_text(encoding="utf-8"))


def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule of alerts.yml."""
    return [rule for group in load_yaml(ALERTS_FILE)["groups"] for rule in group["rules"] if "alert" in rule]


def dashboard() -> dict[str, Any]:
    """The Grafana dashboard as data."""
    document: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
    return document


def dashboard_panels() -> Iterator[dict[str, Any]]:
    """Every panel, rows' children included."""
    for panel in dashboard()["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_queries() -> list[str]:
    """Every PromQL query of the dashboard (panels and variables), Grafana's macros filled in."""
    queries = [target["expr"] for panel in dashboard_panels() for target in panel.get("targets", [])]
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            label_values = re.fullmatch(r"label_values\((.+),\s*\w+\)", variable["definition"])
            assert label_values, f"unexpected variable query {variable['definition']!r}"
            queries.append(label_values.group(1))
    return [as_prometheus_sees_it(query) for query in queries]


def as_prometheus_sees_it(query: str) -> str:
    """A dashboard query with Grafana's macros and variables replaced by what Grafana sends by default."""
    defaults = {}
    for variable in dashboard()["templating"]["list"]:
        current = variable.get("current", {}).get("value")
        defaults[variable["name"]] = (
            variable.get("allValue", ".*") if current in (None, "$__all") else current
        )
    return _VARIABLE.sub(
        lambda match: defaults.get(match.group(0).strip("${}"), ".*"), _INTERVAL_MACRO.sub("5m", query)
    )


def vector_selectors(query: str) -> list[promql_parser.VectorSelector]:
    """Every series selector of a PromQL query."""
    found: list[promql_parser.VectorSelector] = []

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)

    promql_parser.walk(promql_parser.parse(query), visit)
    return found


def metric_names(query: str) -> set[str]:
    """Names of the series a PromQL query selects."""
    names: set[str] = set()

    def visit(node: object) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"a selector without a metric name in {query!r}"
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(query), visit)
    return names
