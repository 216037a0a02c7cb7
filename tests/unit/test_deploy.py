"""Beyond compose: deploy/'s systemd units and Kubernetes manifests run what compose runs, hardened."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from ruamel.yaml import YAML

from relay.app import EXIT_CONFIG, EXIT_SCHEMA, EXIT_USAGE
from tests.support.project import ROOT

SYSTEMD = ROOT / "deploy" / "systemd"
KUBERNETES = ROOT / "deploy" / "kubernetes"
INSTALL_DIR = "/opt/die-hard"
PROCESSES = ("web", "relay", "worker", "beat")
UNPRIVILEGED_UID = 10001
# The relay's default RELAY_SHUTDOWN_GRACE: whoever stops it must wait longer.
RELAY_SHUTDOWN_GRACE = 15


def compose_services() -> dict[str, dict[str, Any]]:
    services: dict[str, dict[str, Any]] = YAML(typ="safe").load(
        (ROOT / "compose.yaml").read_text(encoding="utf-8")
    )["services"]
    return services


def compose_command(process: str) -> list[str]:
    command = compose_services()[process]["command"]
    return list(command)


# --- systemd -------------------------------------------------------------------


def systemd_analyze() -> str:
    """The checker of the units; `make test-tools` installs it (Debian's systemd package)."""
    found = shutil.which("systemd-analyze")
    assert found is not None, "systemd-analyze not found: `make test-tools` installs Debian's systemd package"
    return found


def service_units() -> list[Path]:
    return sorted(SYSTEMD.glob("die-hard-*.service"))


class Unit:
    """A unit file's settings: every value of each key of each section, in order."""

    def __init__(self, path: Path) -> None:
        self.settings: dict[tuple[str, str], list[str]] = {}
        section = ""
        for raw in path.read_text(encoding="utf-8").splitlines():
            line = raw.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            key, value = line.split("=", 1)
            self.settings.setdefault((section, key), []).append(value)

    def values(self, section: str, key: str) -> list[str]:
        """Every value given to the key (an empty one included), in order."""
        return self.settings.get((section, key), [])

    def get(self, section: str, key: str) -> str:
        """The key's one value."""
        [value] = self.values(section, key)
        return value


def unit(name: str) -> Unit:
    return Unit(SYSTEMD / name)


@pytest.fixture
def installed_units(tmp_path: Path) -> list[Path]:
    """The units as if this checkout were the installation: their commands are its virtualenv's."""
    copies = []
    for source in [*service_units(), SYSTEMD / "die-hard.target"]:
        copy = tmp_path / source.name
        copy.write_text(source.read_text(encoding="utf-8").replace(INSTALL_DIR, str(ROOT)), encoding="utf-8")
        copies.append(copy)
    return copies


def test_there_is_a_unit_for_the_migration_and_each_process() -> None:
    assert [path.name for path in service_units()] == sorted(
        f"die-hard-{name}.service" for name in ("migrate", *PROCESSES)
    )


def test_systemd_analyze_verifies_every_unit(installed_units: list[Path]) -> None:
    result = subprocess.run(
        [systemd_analyze(), "verify", *map(str, installed_units)], capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


def test_systemd_analyze_verify_refuses_a_unit_whose_command_is_missing(tmp_path: Path) -> None:
    broken = tmp_path / "die-hard-broken.service"
    broken.write_text("[Service]\nExecStart=/nonexistent/relay\n", encoding="utf-8")

    result = subprocess.run(
        [systemd_analyze(), "verify", str(broken)], capture_output=True, text=True, check=False
    )

    assert result.returncode != 0


def test_every_service_is_hardened_to_an_exposure_of_at_most_2(installed_units: list[Path]) -> None:
    services = [str(path) for path in installed_units if path.suffix == ".service"]
    # The threshold is on a scale of 100: the 2.0 (of 10) it prints.
    result = subprocess.run(
        [systemd_analyze(), "security", "--offline=yes", "--threshold=20", "--no-pager", *services],
        capture_output=True,
        text=True,
        check=False,
    )
    exposures = re.findall(r"Overall exposure level for (\S+): ([\d.]+)", result.stdout)

    assert len(exposures) == len(services)
    assert result.returncode == 0, exposures


@pytest.mark.parametrize("path", service_units(), ids=lambda path: path.stem)
def test_every_unit_runs_unprivileged_on_a_read_only_system_with_its_settings_from_files(path: Path) -> None:
    parser = unit(path.name)

    for key, expected in {
        "DynamicUser": "yes",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert parser.values("Service", key) == [expected], key
    assert parser.get("Service", "WorkingDirectory") == INSTALL_DIR
    files = parser.values("Service", "EnvironmentFile")
    assert files[0] == "/etc/die-hard/common.env"
    assert all(file.startswith("/etc/die-hard/") for file in files)
    # Never a .env lying in the working directory.
    assert "DIE_HARD_ENV_FILE=/dev/null" in parser.get("Service", "Environment").split()


@pytest.mark.parametrize("process", PROCESSES)
def test_each_process_unit_runs_composes_command_restarts_on_failure_and_waits_for_the_migration(
    process: str,
) -> None:
    parser = unit(f"die-hard-{process}.service")
    [start] = parser.values("Service", "ExecStart")
    argv = shlex.split(start)
    expected = compose_command(process)
    if process == "web":  # behind a reverse proxy on the same machine
        expected = [*expected[:-1], "127.0.0.1:8000"]

    assert argv[0].startswith(f"{INSTALL_DIR}/.venv/bin/")
    assert [Path(argv[0]).name, *argv[1:]] == expected
    assert parser.get("Service", "Restart") == "on-failure"
    assert "die-hard-migrate.service" in parser.get("Unit", "Requires").split()
    assert "die-hard-migrate.service" in parser.get("Unit", "After").split()
    assert parser.get("Install", "WantedBy") == "die-hard.target"


def test_the_migration_unit_runs_composes_three_steps_once() -> None:
    parser = unit("die-hard-migrate.service")
    steps = [
        " ".join([Path(argv[0]).name, *argv[1:]])
        for argv in map(shlex.split, parser.values("Service", "ExecStart"))
    ]
    compose_steps = [step.strip() for step in compose_command("migrate")[-1].split("&&")]

    assert steps == compose_steps
    assert parser.get("Service", "Type") == "oneshot"
    assert parser.values("Service", "EnvironmentFile")[-1] == "/etc/die-hard/migrate.env"


def test_the_relay_unit_gives_the_relay_longer_to_stop_than_its_grace_and_no_restart_when_misconfigured() -> (
    None
):
    parser = unit("die-hard-relay.service")

    assert int(parser.get("Service", "TimeoutStopSec").rstrip("s")) > RELAY_SHUTDOWN_GRACE
    assert parser.get("Service", "RestartPreventExitStatus").split() == [
        str(code) for code in (EXIT_USAGE, EXIT_SCHEMA, EXIT_CONFIG)
    ]
    assert parser.values("Service", "EnvironmentFile")[-1] == "/etc/die-hard/relay.env"


def test_the_target_starts_every_process() -> None:
    parser = unit("die-hard.target")

    assert sorted(parser.get("Unit", "Wants").split()) == sorted(f"die-hard-{p}.service" for p in PROCESSES)


def test_the_manifests_run_as_the_user_the_image_creates() -> None:
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text(encoding="utf-8")

    assert re.search(rf"useradd [^\n]*--uid {UNPRIVILEGED_UID}\b", dockerfile)


def test_every_environment_file_a_unit_reads_has_an_example() -> None:
    read = {
        Path(file).name
        for path in service_units()
        for file in unit(path.name).values("Service", "EnvironmentFile")
    }

    assert {f"{name}.example" for name in read} == {path.name for path in (SYSTEMD / "env").iterdir()}


# --- Kubernetes ----------------------------------------------------------------

KUBERNETES_VERSION = kubernetes_validate.latest_version()


def manifests() -> list[Path]:
    return sorted(path for path in KUBERNETES.glob("*.yaml") if path.name != "kustomization.yaml")


def resources() -> list[dict[str, Any]]:
    return [
        document
        for path in manifests()
        for document in YAML(typ="safe").load_all(path.read_text(encoding="utf-8"))
        if document
    ]


def resource(kind: str, name: str) -> dict[str, Any]:
    [found] = [r for r in resources() if r["kind"] == kind and r["metadata"]["name"] == name]
    return found


def deployment(process: str) -> dict[str, Any]:
    return resource("Deployment", f"die-hard-{process}")


def pod(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def container(workload: dict[str, Any]) -> dict[str, Any]:
    [main] = pod(workload)["containers"]
    return dict(main)


@pytest.mark.parametrize("document", resources(), ids=lambda r: f"{r['kind']}/{r['metadata']['name']}")
def test_every_manifest_is_valid_against_the_kubernetes_schema(document: dict[str, Any]) -> None:
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_the_schema_check_refuses_a_misspelt_field() -> None:
    broken = {**deployment("relay"), "spec": {**deployment("relay")["spec"], "replica": 2}}

    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_the_kustomization_lists_every_manifest() -> None:
    kustomization = YAML(typ="safe").load((KUBERNETES / "kustomization.yaml").read_text(encoding="utf-8"))

    assert sorted(kustomization["resources"]) == [path.name for path in manifests()]


def _workloads() -> list[dict[str, Any]]:
    return [r for r in resources() if r["kind"] in {"Deployment", "Job"}]


@pytest.mark.parametrize("workload", _workloads(), ids=lambda r: r["metadata"]["name"])
def test_every_container_runs_as_the_images_user_on_a_read_only_root_without_privileges(
    workload: dict[str, Any],
) -> None:
    spec = pod(workload)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == UNPRIVILEGED_UID
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    for each in [*spec.get("initContainers", []), *spec["containers"]]:
        assert each["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }
        assert set(each["resources"]["requests"]) == {"cpu", "memory"}
        assert set(each["resources"]["limits"]) == {"memory"}


@pytest.mark.parametrize("process", PROCESSES)
def test_each_deployment_runs_composes_command(process: str) -> None:
    command = container(deployment(process))["command"]
    expected = compose_command(process)

    assert command[: len(expected)] == expected


def test_the_migration_job_runs_composes_migration() -> None:
    job = resource("Job", "die-hard-migrate")

    assert container(job)["command"] == compose_command("migrate")
    # The owners' credentials come last, so they win over the site's.
    assert container(job)["envFrom"][-1] == {"secretRef": {"name": "die-hard-migrate"}}


def test_the_relay_is_probed_on_livez_and_readyz_and_given_longer_to_stop_than_its_grace() -> None:
    relay = deployment("relay")
    main = container(relay)

    assert main["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert main["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert pod(relay)["terminationGracePeriodSeconds"] > RELAY_SHUTDOWN_GRACE
    assert {"name": "RELAY_HTTP_HOST", "value": "0.0.0.0"} in main["env"]


def test_the_web_is_ready_on_its_health_page_asked_for_an_allowed_host() -> None:
    main = container(deployment("web"))
    probe = main["readinessProbe"]["httpGet"]
    [host] = [header["value"] for header in probe["httpHeaders"] if header["name"] == "Host"]
    allowed = resource("ConfigMap", "die-hard-config")["data"]["ALLOWED_HOSTS"].split(",")

    assert probe["path"] == "/health/"
    assert host in allowed
    # A database outage takes the site out of the Service, never restarts it.
    assert "httpGet" not in main["livenessProbe"]


@pytest.mark.parametrize("process", ["worker", "beat"])
def test_the_worker_and_beat_are_probed_with_composes_healthcheck(process: str) -> None:
    kind, *command = compose_services()[process]["healthcheck"]["test"]
    command = [part.replace("$$", "$") for part in command]
    expected = command if kind == "CMD" else ["sh", "-c", command[0]]

    assert container(deployment(process))["livenessProbe"]["exec"]["command"] == expected


def test_exactly_one_beat_runs_even_during_a_rollout() -> None:
    beat = deployment("beat")

    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}


@pytest.mark.parametrize("process", ["web", "relay"])
def test_a_disruption_budget_keeps_one_pod_of_the_site_and_of_the_relay(process: str) -> None:
    budget = resource("PodDisruptionBudget", f"die-hard-{process}")

    assert budget["spec"]["minAvailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"] == deployment(process)["spec"]["selector"]["matchLabels"]
    assert deployment(process)["spec"]["replicas"] > 1


def test_every_pod_waits_for_the_schema_before_it_starts() -> None:
    for process in PROCESSES:
        [init] = pod(deployment(process))["initContainers"]
        expected = ["relay", "check"] if process == "relay" else ["python", "manage.py", "migrate", "--check"]
        assert init["command"] == expected, process
