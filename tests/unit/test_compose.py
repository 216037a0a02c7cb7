"""The container stack: `compose.yaml` follows the Compose specification and runs the system safely."""

from __future__ import annotations

import ipaddress
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from ruamel.yaml import YAML

from relay.settings import RelaySettings
from tests.support.project import ROOT

COMPOSE_FILE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

# Variable names every application container must get: its mode, secrets,
# hosts, the services' addresses and credentials, Sentry and the environment name.
CONTAINER_SETTINGS = (
    "DEBUG",
    "SECRET_KEY",
    "ALLOWED_HOSTS",
    "DATABASE_URL",
    "REDIS_URL",
    "CLICKHOUSE_HOST",
    "CLICKHOUSE_PORT",
    "CLICKHOUSE_USER",
    "CLICKHOUSE_PASSWORD",
    "CLICKHOUSE_DATABASE",
    "SENTRY_CONFIG_DSN",
    "SENTRY_CONFIG_ENVIRONMENT",
    "ENVIRONMENT",
)
APP_SERVICES = ("migrate", "web", "relay", "worker", "beat")
MONITORING_SERVICES = ("prometheus", "alertmanager", "grafana")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)")
_UNIT_SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """`compose.yaml` as data, anchors and merge keys resolved."""
    document: dict[str, Any] = YAML(typ="safe").load(COMPOSE_FILE.read_text(encoding="utf-8"))
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The services of `compose.yaml` by name."""
    by_name: dict[str, dict[str, Any]] = compose["services"]
    return by_name


def one_shot(services: dict[str, dict[str, Any]]) -> set[str]:
    """Services that others wait for to *complete*: jobs, not daemons."""
    return {
        name
        for service in services.values()
        for name, dependency in dependencies(service).items()
        if dependency.get("condition") == "service_completed_successfully"
    }


def dependencies(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`depends_on` in its long form, whichever form the file uses."""
    depends_on = service.get("depends_on", {})
    if isinstance(depends_on, list):
        return {name: {} for name in depends_on}
    long_form: dict[str, dict[str, Any]] = depends_on
    return long_form


def seconds(duration: str) -> float:
    """A Compose duration such as `1m30s` in seconds."""
    parts = _DURATION_PART.findall(duration)
    assert parts, f"not a duration: {duration!r}"
    assert "".join(value + unit for value, unit in parts) == duration, f"not a duration: {duration!r}"
    return sum(float(value) * _UNIT_SECONDS[unit] for value, unit in parts)


def test_compose_file_follows_the_compose_specification() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(COMPOSE_FILE),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_file_has_no_obsolete_version_key(compose: dict[str, Any]) -> None:
    assert "version" not in compose


def test_every_long_running_service_has_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    daemons = set(services) - one_shot(services)
    without = sorted(
        name
        for name in daemons
        if not services[name].get("healthcheck", {}).get("test")
        or services[name]["healthcheck"].get("disable")
    )
    assert daemons >= {"postgres", "redis", "clickhouse", "web", "relay", "worker", "beat"}
    assert without == []


def test_dependencies_on_services_with_a_healthcheck_wait_until_they_are_healthy(
    services: dict[str, dict[str, Any]],
) -> None:
    careless = sorted(
        f"{name} -> {target}"
        for name, service in services.items()
        for target, dependency in dependencies(service).items()
        if "healthcheck" in services[target] and dependency.get("condition") != "service_healthy"
    )
    assert careless == []


def test_every_dependency_is_a_service_of_the_file(services: dict[str, dict[str, Any]]) -> None:
    unknown = sorted(
        f"{name} -> {target}"
        for name, service in services.items()
        for target in dependencies(service)
        if target not in services
    )
    assert unknown == []


def test_the_schema_is_migrated_once_before_the_processes_start(services: dict[str, dict[str, Any]]) -> None:
    command = " ".join(services["migrate"]["command"])
    assert "manage.py migrate --no-input" in command
    assert "relay migrate" in command
    for name in ("web", "relay", "worker"):
        assert dependencies(services[name])["migrate"] == {"condition": "service_completed_successfully"}


def test_clickhouse_image_is_pinned_to_a_version_tag(services: dict[str, dict[str, Any]]) -> None:
    repository, _, tag = services["clickhouse"]["image"].rpartition(":")
    assert repository == "clickhouse/clickhouse-server"
    assert re.fullmatch(r"\d+\.\d+(\.\d+){0,2}", tag), f"not a version tag: {tag!r}"


def test_no_image_floats_on_latest(services: dict[str, dict[str, Any]]) -> None:
    floating = sorted(
        name
        for name, service in services.items()
        if ":" not in service["image"].rpartition("/")[2] or service["image"].endswith(":latest")
    )
    assert floating == []


def test_relay_runs_as_its_own_service_with_a_restart_policy(services: dict[str, dict[str, Any]]) -> None:
    relay = services["relay"]
    assert relay["command"] == ["relay"]
    assert relay["restart"] in {"always", "unless-stopped", "on-failure"}


def test_relay_is_given_longer_to_stop_than_its_shutdown_grace(services: dict[str, dict[str, Any]]) -> None:
    default = RelaySettings.model_fields["relay_shutdown_grace"].default
    grace = float(services["relay"]["environment"].get("RELAY_SHUTDOWN_GRACE", default))
    assert seconds(services["relay"]["stop_grace_period"]) > grace


def test_relay_http_endpoint_listens_beyond_its_container(services: dict[str, dict[str, Any]]) -> None:
    assert services["relay"]["environment"]["RELAY_HTTP_HOST"] == "0.0.0.0"
    assert "/livez" in " ".join(services["relay"]["healthcheck"]["test"])


@pytest.mark.parametrize("name", APP_SERVICES)
def test_application_service_gets_every_container_setting(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    missing = [setting for setting in CONTAINER_SETTINGS if setting not in services[name]["environment"]]
    assert missing == []


@pytest.mark.parametrize("name", APP_SERVICES)
def test_application_service_runs_in_production_mode(services: dict[str, dict[str, Any]], name: str) -> None:
    assert services[name]["environment"]["DEBUG"] == "false"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_application_service_reads_dotenv_only_if_it_exists(
    services: dict[str, dict[str, Any]], name: str
) -> None:
    assert services[name]["env_file"] == [{"path": ".env", "required": False}]


def test_published_ports_are_reachable_from_this_machine_only(services: dict[str, dict[str, Any]]) -> None:
    published = {name: service["ports"] for name, service in services.items() if "ports" in service}
    assert published == {
        "web": ["127.0.0.1:8000:8000"],
        "relay": ["127.0.0.1:8001:8001"],
        "prometheus": ["127.0.0.1:9090:9090"],
        "alertmanager": ["127.0.0.1:9093:9093"],
        "grafana": ["127.0.0.1:3000:3000"],
    }


def test_databases_keep_their_data_in_named_volumes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("postgres", "redis", "clickhouse"):
        volume = services[name]["volumes"][0].split(":")[0]
        assert volume in compose["volumes"], f"{name} keeps its data in an anonymous or host path"


def bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> file or folder of this repository, for every bind mount of a service."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            mounts[target] = ROOT / source
    return mounts


def test_monitoring_services_start_only_with_the_monitoring_profile(
    services: dict[str, dict[str, Any]],
) -> None:
    monitoring = {
        name: service["profiles"]
        for name, service in services.items()
        if "monitoring" in service.get("profiles", [])
    }
    assert monitoring == {name: ["monitoring"] for name in MONITORING_SERVICES}


def test_every_file_mounted_from_the_repository_exists(services: dict[str, dict[str, Any]]) -> None:
    missing = sorted(
        f"{name}: {source}"
        for name, service in services.items()
        for source in bind_mounts(service).values()
        if not source.exists()
    )
    assert missing == []


def test_prometheus_loads_the_alert_rules_beside_its_configuration(
    services: dict[str, dict[str, Any]],
) -> None:
    prometheus = services["prometheus"]
    mounts = bind_mounts(prometheus)
    config_path = next(
        arg.split("=", 1)[1] for arg in prometheus["command"] if arg.startswith("--config.file=")
    )
    config = YAML(typ="safe").load(mounts[config_path].read_text(encoding="utf-8"))

    for rule_file in config["rule_files"]:
        in_container = str(Path(config_path).parent / rule_file)
        assert mounts[in_container] == ROOT / "docker" / "prometheus" / "alerts.yml"


def test_prometheus_scrapes_every_relay_on_its_http_port(services: dict[str, dict[str, Any]]) -> None:
    config = YAML(typ="safe").load(
        (ROOT / "docker" / "prometheus" / "prometheus.yml").read_text(encoding="utf-8")
    )
    relay_job = next(job for job in config["scrape_configs"] if job["job_name"] == "relay")

    # DNS discovery of the service name finds every copy after `--scale relay=N`.
    assert relay_job["dns_sd_configs"] == [
        {
            "names": ["relay"],
            "type": "A",
            "port": int(services["relay"]["environment"]["RELAY_HTTP_PORT"]),
            "refresh_interval": "30s",
        }
    ]


def prometheus_config() -> dict[str, Any]:
    config: dict[str, Any] = YAML(typ="safe").load(
        (ROOT / "docker" / "prometheus" / "prometheus.yml").read_text(encoding="utf-8")
    )
    return config


def test_prometheus_scrapes_the_site_by_a_name_it_serves_from_the_one_address_it_trusts(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    web_job = next(job for job in prometheus_config()["scrape_configs"] if job["job_name"] == "web")
    [target] = web_job["static_configs"][0]["targets"]
    host, port = target.split(":")
    prometheus_address = ipaddress.ip_address(services["prometheus"]["networks"]["default"]["ipv4_address"])
    [subnet] = [
        ipaddress.ip_network(config["subnet"]) for config in compose["networks"]["default"]["ipam"]["config"]
    ]
    web = services["web"]["environment"]
    trusted = [ipaddress.ip_network(network) for network in web["INTERNAL_NETWORKS"].split(",")]

    assert host == "web"
    assert services["web"]["command"][-1].endswith(f":{port}")
    # The default, when ALLOWED_HOSTS is not set: `${ALLOWED_HOSTS:-<default>}`.
    assert host in web["ALLOWED_HOSTS"].removeprefix("${ALLOWED_HOSTS:-").removesuffix("}").split(",")
    assert any(prometheus_address in network for network in trusted)
    assert prometheus_address in subnet
    # Nothing else on the compose network (the gateway that published ports come through included).
    assert not any(network.overlaps(subnet) and network.num_addresses > 1 for network in trusted)


def test_prometheus_sends_alerts_to_the_alertmanager_that_loads_the_repositorys_configuration(
    services: dict[str, dict[str, Any]],
) -> None:
    alertmanager = services["alertmanager"]
    mounts = bind_mounts(alertmanager)
    config_path = next(
        arg.split("=", 1)[1] for arg in alertmanager["command"] if arg.startswith("--config.file=")
    )
    [target] = prometheus_config()["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]

    assert mounts[config_path] == ROOT / "docker" / "alertmanager" / "alertmanager.yml"
    assert target == "alertmanager:9093"
    assert alertmanager["ports"] == ["127.0.0.1:9093:9093"]


def test_prometheus_keeps_running_while_the_relays_are_down(services: dict[str, dict[str, Any]]) -> None:
    assert "depends_on" not in services["prometheus"]


def test_grafana_reads_its_provisioning_and_the_dashboards_from_the_repository(
    services: dict[str, dict[str, Any]],
) -> None:
    grafana = services["grafana"]
    mounts = bind_mounts(grafana)

    assert mounts["/etc/grafana/provisioning"] == ROOT / "docker" / "grafana" / "provisioning"
    assert mounts["/etc/grafana/dashboards"] == ROOT / "docker" / "grafana" / "dashboards"
    home = Path(grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert (mounts[str(home.parent)] / home.name).is_file()
    assert dependencies(grafana) == {"prometheus": {"condition": "service_healthy"}}


def test_grafana_gets_its_admin_password_only_from_the_environment_as_a_secret(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    grafana = services["grafana"]

    assert "GF_SECURITY_ADMIN_PASSWORD" not in grafana["environment"]
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana_admin_password"
    assert grafana["secrets"] == ["grafana_admin_password"]
    assert compose["secrets"]["grafana_admin_password"] == {"environment": "GRAFANA_ADMIN_PASSWORD"}


def test_image_runs_as_a_non_root_user() -> None:
    users = re.findall(r"^USER\s+(\S+)", DOCKERFILE.read_text(encoding="utf-8"), flags=re.MULTILINE)
    assert users, "the image never leaves root"
    assert users[-1].split(":")[0] not in {"root", "0"}


def test_image_build_context_leaves_dotenv_out() -> None:
    lines = [line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()]
    assert "*" in lines, ".dockerignore should exclude everything not let back in"
    assert not any(line.startswith("!.env") for line in lines)
    copies = re.findall(r"^(?:COPY|ADD)\s.*$", DOCKERFILE.read_text(encoding="utf-8"), flags=re.MULTILINE)
    assert not [line for line in copies if re.search(r"(^|[\s/])\.env\b", line)]


_SUBSTITUTION = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?P<rest>[^}]*)\}")


def test_compose_has_no_default_secret_and_refuses_to_start_without_one() -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    secrets = {
        match["name"]: match["rest"]
        for match in _SUBSTITUTION.finditer(text)
        if match["name"] == "SECRET_KEY" or "PASSWORD" in match["name"] or match["name"].endswith("_SECRET")
    }
    assert {
        "SECRET_KEY",
        "POSTGRES_PASSWORD",
        "REDIS_PASSWORD",
        "CLICKHOUSE_ADMIN_PASSWORD",
        # Its own secret, not the admin's password over again: a leak of one is not a leak of both.
        "CLICKHOUSE_CLUSTER_SECRET",
    } <= set(secrets)
    # `${NAME:?message}` stops `docker compose up` with the message while NAME is unset or empty.
    assert {name: rest for name, rest in secrets.items() if not rest.startswith(":?")} == {}


def test_compose_refuses_to_start_without_a_mail_server(services: dict[str, dict[str, Any]]) -> None:
    # Production mode would refuse it too, container by container; compose says so first.
    for name in ("web", "worker", "beat"):
        assert services[name]["environment"]["EMAIL_HOST"].startswith("${EMAIL_HOST:?")


def credentials(service: dict[str, Any]) -> tuple[str, str]:
    """The PostgreSQL role and the ClickHouse user a service connects as."""
    role = re.match(r"postgres://([^:]+):", service["environment"]["DATABASE_URL"])
    assert role is not None
    return role[1], service["environment"]["CLICKHOUSE_USER"]


def test_each_process_connects_with_its_own_least_privileged_role_and_user(
    services: dict[str, dict[str, Any]],
) -> None:
    assert credentials(services["web"]) == ("diehard_web", "diehard_reader")
    assert credentials(services["worker"]) == ("diehard_web", "diehard_reader")
    assert credentials(services["relay"]) == ("diehard_relay", "diehard_relay")
    # Only the one-shot migration uses the owners of the schemas.
    assert credentials(services["migrate"])[0] == services["postgres"]["environment"]["POSTGRES_USER"]
    assert (
        services["migrate"]["environment"]["CLICKHOUSE_ADMIN_USER"]
        == services["clickhouse"]["environment"]["CLICKHOUSE_USER"]
    )
    assert "database_grants" in " ".join(services["migrate"]["command"])


CLUSTER_SERVICES = ("keeper", "clickhouse-1", "clickhouse-2")
REPLICAS = ("clickhouse-1", "clickhouse-2")
CLUSTER_CONFIG = ROOT / "docker" / "clickhouse" / "cluster.xml"
KEEPER_CONFIG = ROOT / "docker" / "clickhouse" / "keeper.xml"


def test_the_cluster_profile_alone_starts_keeper_and_two_replicas(
    services: dict[str, dict[str, Any]],
) -> None:
    in_cluster = {
        name: service["profiles"]
        for name, service in services.items()
        if "cluster" in service.get("profiles", [])
    }

    assert in_cluster == {name: ["cluster"] for name in CLUSTER_SERVICES}


def test_the_replicas_run_the_single_servers_release_and_keeper_the_same_one(
    services: dict[str, dict[str, Any]],
) -> None:
    release = services["clickhouse"]["image"].rpartition(":")[2]

    assert [services[name]["image"] for name in REPLICAS] == [f"clickhouse/clickhouse-server:{release}"] * 2
    assert services["keeper"]["image"] == f"clickhouse/clickhouse-keeper:{release}"


def test_each_replica_names_itself_as_its_host_and_keeps_its_own_data(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    for name in REPLICAS:
        replica = services[name]
        assert replica["hostname"] == name
        assert replica["environment"]["CLICKHOUSE_REPLICA"] == name
        assert f"{name}-data:/var/lib/clickhouse" in replica["volumes"]
        assert (
            "./docker/clickhouse/cluster.xml:/etc/clickhouse-server/config.d/cluster.xml:ro"
            in (replica["volumes"])
        )
        assert (
            "./docker/clickhouse/init-users.sh:/docker-entrypoint-initdb.d/10-users.sh:ro"
            in (replica["volumes"])
        )
        assert (
            replica["environment"]["CLICKHOUSE_USER"]
            == services["clickhouse"]["environment"]["CLICKHOUSE_USER"]
        )
        assert dependencies(replica)["keeper"] == {"condition": "service_healthy"}
    assert {"keeper-data", "clickhouse-1-data", "clickhouse-2-data"} <= set(compose["volumes"])


def test_the_cluster_config_names_both_replicas_and_keeper() -> None:
    config = ElementTree.parse(CLUSTER_CONFIG).getroot()
    keeper = ElementTree.parse(KEEPER_CONFIG).getroot()

    shards = config.findall("remote_servers/die_hard/shard")
    assert [replica.findtext("host") for replica in shards[0].findall("replica")] == list(REPLICAS)
    assert len(shards) == 1
    assert shards[0].findtext("internal_replication") == "true"
    assert config.findtext("zookeeper/node/host") == "keeper"
    assert config.findtext("zookeeper/node/port") == keeper.findtext("keeper_server/tcp_port")
    assert config.find("macros/replica").get("from_env") == "CLICKHOUSE_REPLICA"  # type: ignore[union-attr]
    assert config.find("distributed_ddl/path") is not None
    # Replicas query each other as the asking user, not as a shared account.
    assert config.find("remote_servers/die_hard/secret").get("from_env") == "CLICKHOUSE_CLUSTER_SECRET"  # type: ignore[union-attr]
    assert config.find("remote_servers/die_hard/shard/replica/user") is None


def test_the_migration_waits_for_the_replicas_when_the_cluster_profile_runs_them(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in REPLICAS:
        assert dependencies(services["migrate"])[name] == {"condition": "service_healthy", "required": False}


def test_the_site_and_the_relay_can_be_pointed_at_the_cluster(services: dict[str, dict[str, Any]]) -> None:
    for name in APP_SERVICES:
        environment = services[name]["environment"]
        assert environment["CLICKHOUSE_CLUSTER"] == "${CLICKHOUSE_CLUSTER:-}"
        assert environment["CLICKHOUSE_HOSTS"] == "${CLICKHOUSE_HOSTS:-}"


def test_image_installs_the_project_dependencies_and_no_dependency_group() -> None:
    syncs = re.findall(r"uv sync [^\n]*", DOCKERFILE.read_text(encoding="utf-8"))
    assert syncs
    # --no-dev alone would still install the other default groups (bench).
    assert all("--no-default-groups" in sync for sync in syncs), syncs


def test_image_takes_its_base_as_a_build_argument_defaulting_to_the_official_python() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    assert re.search(r"^ARG BASE_IMAGE=docker\.io/library/python:3\.13-slim$", text, flags=re.MULTILINE)
    bases = re.findall(r"^FROM\s+(\S+)", text, flags=re.MULTILINE)
    assert bases
    assert set(bases) == {"${BASE_IMAGE}"}
