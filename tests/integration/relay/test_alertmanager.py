"""A real Alertmanager with the compose configuration: inhibitions quiet what their cause explains."""

from __future__ import annotations

import datetime
import json
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.monitoring import alert_rules, load_yaml, prometheus_program
from tests.support.project import ROOT
from tests.support.waiting import free_port, wait_until

pytestmark = pytest.mark.slow

CONFIG = ROOT / "docker" / "alertmanager" / "alertmanager.yml"

Send = Callable[..., dict[str, str]]


class Alertmanager:
    """An Alertmanager of the test's own, without clustering, on a free port."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process = process
        self.port = port
        self.log = log

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def ready(self) -> bool:
        assert self.process.poll() is None, self.log.read_text(errors="replace")[-3000:]
        try:
            with urllib.request.urlopen(self.url("/-/ready"), timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def send(self, *alerts: dict[str, str]) -> None:
        """Post firing alerts as Prometheus does (labels; started a minute ago, ending in an hour)."""
        now = datetime.datetime.now(datetime.UTC)
        body = [
            {
                "labels": labels,
                "startsAt": (now - datetime.timedelta(minutes=1)).isoformat(),
                "endsAt": (now + datetime.timedelta(hours=1)).isoformat(),
            }
            for labels in alerts
        ]
        request = urllib.request.Request(
            self.url("/api/v2/alerts"),
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200

    def states(self) -> dict[str, str]:
        """alertname (and instance, when it has one) -> active or suppressed."""
        with urllib.request.urlopen(self.url("/api/v2/alerts"), timeout=10) as answer:
            alerts: list[dict[str, Any]] = json.load(answer)
        return {
            "/".join(filter(None, (alert["labels"]["alertname"], alert["labels"].get("instance")))): alert[
                "status"
            ]["state"]
            for alert in alerts
        }


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Alertmanager]:
    port = free_port()
    log = tmp_path / "alertmanager.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                prometheus_program("alertmanager"),
                f"--config.file={CONFIG}",
                f"--storage.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",  # no gossip port: a single instance
            ],
            stdout=output,
            stderr=output,
        )
    server = Alertmanager(process, port, log)
    try:
        wait_until(server.ready, timeout=30, interval=0.2)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def settled(alertmanager: Alertmanager, expected: dict[str, str]) -> dict[str, str]:
    """The alerts' states once they are `expected`, or as they are after 10 s.

    Alertmanager takes in a posted alert, and its inhibitor learns of it,
    asynchronously: the states settle shortly after the post.
    """
    deadline = time.monotonic() + 10
    while (states := alertmanager.states()) != expected and time.monotonic() < deadline:
        time.sleep(0.1)
    return states


def alert(name: str, **labels: str) -> dict[str, str]:
    """The labels Prometheus gives a firing alert of alerts.yml: its name and the rule's own labels."""
    [rule] = [rule for rule in alert_rules() if rule["alert"] == name]
    return {"alertname": name, **rule["labels"], **labels}


def test_the_configuration_passes_amtool_check_config() -> None:
    result = subprocess.run(
        [prometheus_program("amtool"), "check-config", str(CONFIG)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_named_in_an_inhibition_exists() -> None:
    names = {rule["alert"] for rule in alert_rules()}
    named = set()
    for inhibition in load_yaml(CONFIG)["inhibit_rules"]:
        for matcher in inhibition["source_matchers"] + inhibition["target_matchers"]:
            named |= set(matcher.partition("=")[2].strip('~"').split("|"))

    assert named - names == set()


def test_no_relay_at_all_keeps_each_relay_being_down_and_the_growing_lag_quiet(
    alertmanager: Alertmanager,
) -> None:
    alertmanager.send(
        alert("RelayDown", job="relay", instance="relay-1:8001"),
        alert("RelayDown", job="relay", instance="relay-2:8001"),
        alert("RelayLagging"),
        alert("SiteThrottlingSurge", action="sign_in"),
    )
    alone = settled(
        alertmanager,
        {
            "RelayDown/relay-1:8001": "active",
            "RelayDown/relay-2:8001": "active",
            "RelayLagging": "active",
            "SiteThrottlingSurge": "active",
        },
    )
    alertmanager.send(alert("RelayAbsent"))

    expected = {
        "RelayAbsent": "active",
        "RelayDown/relay-1:8001": "suppressed",
        "RelayDown/relay-2:8001": "suppressed",
        "RelayLagging": "suppressed",
        "SiteThrottlingSurge": "active",  # the site's business, whatever the relays do
    }
    together = settled(alertmanager, expected)

    assert set(alone.values()) == {"active"}
    assert together == expected


def test_the_critical_lag_keeps_the_warning_quiet_and_a_systemic_refusal_explains_the_missing_batches(
    alertmanager: Alertmanager,
) -> None:
    alertmanager.send(
        alert("RelayLagging"),
        alert("RelayLagCritical"),
        alert("RelaySystemicRefusal"),
        alert("RelayNoSuccessfulBatch"),
        alert("RelayDeadLetters"),
    )

    expected = {
        "RelayLagging": "suppressed",
        "RelayLagCritical": "active",
        "RelaySystemicRefusal": "active",
        "RelayNoSuccessfulBatch": "suppressed",
        "RelayDeadLetters": "active",
    }
    assert settled(alertmanager, expected) == expected
