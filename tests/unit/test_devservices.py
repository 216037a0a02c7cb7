"""The local services' tooling, without a service: which process is ours, what it renders, what it accepts."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import pytest

from devservices import __main__ as cli
from devservices import postgres, settings
from devservices.backing import Backing
from devservices.clickhouse import CONFIG, USERS, Installation, Instance
from devservices.cluster import Cluster, render_replica_config, replicas
from devservices.process import ServiceError, command_line, gone, live_pid, wait_for
from devservices.redis import Redis
from devservices.zookeeper import ZooKeeper, render_config
from tests.support.project import ROOT

CLUSTER_ENVIRONMENT = {
    "CLICKHOUSE_CLUSTER": "die_hard",
    "CLUSTER_PREFIX": "unit",
    "CLUSTER_HTTP_PORTS": "18123 18124",
    "CLUSTER_TCP_PORTS": "19000 19001",
    "CLUSTER_INTERSERVER_PORTS": "19009 19010",
    "CLUSTER_ZOOKEEPER_PORT": "12181",
    "CLUSTER_SESSION_TIMEOUT_MS": "4000",
}


def orphan(name: str) -> int:
    """A `sleep` whose command line starts with `name`, not our child (its parent has exited): its pid."""
    started = subprocess.run(
        ["bash", "-c", f"(exec -a {name} sleep 60) >/dev/null 2>&1 & echo $!"],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(started.stdout)
    # `$!` is the subshell's pid before its `exec`: wait until it is the `sleep`.
    assert wait_for(lambda: name in (command_line(pid) or ""), 5, interval=0.01)
    return pid


@pytest.fixture
def orphans() -> Iterator[list[int]]:
    """The orphans a test starts, killed afterwards whatever happened."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if not gone(pid):
            os.kill(pid, 9)


def running(pid: int) -> bool:
    return not gone(pid)


# ---- which process is ours ----


def test_a_pid_file_names_our_process_only_while_its_command_line_matches(
    tmp_path: Path, orphans: list[int]
) -> None:
    orphans.append(pid := orphan("clickhouse-server"))
    pid_file = tmp_path / "server.pid"
    pid_file.write_text(f"{pid}\n")

    assert live_pid(pid_file, "clickhouse-server") == pid
    # The same pid, given by the kernel to a process that is not the server the file was written for.
    assert live_pid(pid_file, "redis-server") is None


@pytest.mark.parametrize("content", ["", "not a pid", "12 34", "-1", "²"])
def test_a_pid_file_without_one_pid_names_nothing(tmp_path: Path, content: str) -> None:
    pid_file = tmp_path / "server.pid"
    pid_file.write_text(content)

    assert live_pid(pid_file, "") is None


def test_a_missing_pid_file_names_nothing(tmp_path: Path) -> None:
    assert live_pid(tmp_path / "absent.pid", "") is None


def test_a_pid_file_naming_an_exited_process_names_nothing(tmp_path: Path) -> None:
    exited = subprocess.Popen(["true"])
    exited.wait()
    pid_file = tmp_path / "server.pid"
    pid_file.write_text(str(exited.pid))

    assert live_pid(pid_file, "") is None


# ---- never stopping what was not started here ----


def test_clickhouse_stop_stops_the_server_its_pid_file_names(tmp_path: Path, orphans: list[int]) -> None:
    instance = Instance("ours", 18123, 19000, Installation(tmp_path))
    instance.directory.mkdir()
    orphans.append(server := orphan("clickhouse-server"))
    instance.pid_file.write_text(str(server))

    instance.stop()

    assert gone(server)
    assert not instance.pid_file.exists()


def test_clickhouse_stop_leaves_another_process_holding_the_pid_alone(
    tmp_path: Path, orphans: list[int]
) -> None:
    instance = Instance("reused", 18123, 19000, Installation(tmp_path))
    instance.directory.mkdir()
    orphans.append(stranger := orphan("someone-else"))
    instance.pid_file.write_text(str(stranger))

    instance.stop()

    assert running(stranger)
    assert not instance.pid_file.exists()


def test_cluster_down_stops_only_the_parts_whose_pid_files_name_them(
    tmp_path: Path, orphans: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("devservices.cluster.SERVICES", tmp_path)
    cluster = Cluster(settings.cluster({**CLUSTER_ENVIRONMENT, "CLICKHOUSE_HOME": str(tmp_path / "ch")}))
    replica1, replica2 = (cluster.instance(replica) for replica in cluster.replicas)
    for instance, name in ((replica1, "clickhouse-server"), (replica2, "someone-else")):
        instance.directory.mkdir(parents=True)
        orphans.append(pid := orphan(name))
        instance.pid_file.write_text(str(pid))
    cluster.zookeeper.directory.mkdir(parents=True)
    orphans.append(java := orphan("java"))
    cluster.zookeeper.pid_file.write_text(str(java))

    cluster.down()

    replica1_pid, replica2_pid = orphans[:2]
    assert gone(replica1_pid)
    assert running(replica2_pid)
    assert running(java), "a process without our zoo.cfg on its command line is not our ZooKeeper"


def test_zookeeper_is_ours_when_its_command_line_names_our_configuration(
    tmp_path: Path, orphans: list[int]
) -> None:
    zookeeper = ZooKeeper(tmp_path, 12181)
    orphans.append(pid := orphan(f"java-{zookeeper.config}"))
    zookeeper.pid_file.write_text(str(pid))

    assert zookeeper.pid() == pid
    zookeeper.down()
    assert gone(pid)


def test_redis_down_leaves_a_redis_it_did_not_start_alone(tmp_path: Path, orphans: list[int]) -> None:
    redis = Redis(16379, tmp_path)
    orphans.append(pid := orphan("redis-server"))
    redis.pid_file.write_text(str(pid))

    redis.down()

    assert running(pid), "no marker: not started here"


def test_redis_down_stops_the_daemon_it_started(tmp_path: Path, orphans: list[int]) -> None:
    redis = Redis(16379, tmp_path)
    orphans.append(pid := orphan("redis-server"))
    redis.pid_file.write_text(str(pid))
    redis.marker.touch()

    redis.down()

    assert gone(pid)
    assert not redis.marker.exists()


def test_postgres_down_without_its_marker_runs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"ran {args}")

    monkeypatch.setattr(subprocess, "run", refuse)

    postgres.Postgres(15432, "postgres", "diehard", tmp_path).down()


def test_services_down_refuses_an_unknown_service_before_stopping_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What `Backing.down` stops through, recorded instead: never the checkout's real services.
    stopped: list[str] = []
    monkeypatch.setattr(Instance, "stop", lambda _: stopped.append("clickhouse"))
    monkeypatch.setattr(Redis, "down", lambda _: stopped.append("redis"))
    monkeypatch.setattr(postgres.Postgres, "down", lambda _: stopped.append("postgres"))
    backing = Backing(settings.services({"CLICKHOUSE_HOME": str(tmp_path)}))

    with pytest.raises(ServiceError, match="unknown service: mysql"):
        backing.down(["redis", "mysql"])

    assert stopped == []
    backing.down(["redis"])
    assert stopped == ["redis"], "the recording stands in for what down stops"


# ---- what is rendered ----


def test_a_replica_configuration_is_the_standalone_one_plus_zookeeper_macros_and_members() -> None:
    cluster_settings = settings.cluster(CLUSTER_ENVIRONMENT)
    members = replicas(cluster_settings)

    rendered = render_replica_config(CONFIG.read_text(), members[1], members, cluster_settings)

    root = ElementTree.fromstring(rendered)
    assert root.findtext("listen_host") == "127.0.0.1", "the standalone configuration is kept"
    assert root.findtext("users_config") == str(USERS), "one users.xml for every replica"
    assert root.findtext("interserver_http_port") == "19010"
    assert root.findtext("zookeeper/node/port") == "12181"
    assert root.findtext("zookeeper/session_timeout_ms") == "4000"
    assert root.findtext("macros/replica") == "replica2"
    assert root.findtext("macros/cluster") == "die_hard"
    shard = root.find("remote_servers/die_hard/shard")
    assert shard is not None
    assert [port.text for port in shard.iterfind("replica/port")] == ["19000", "19001"]


def test_zookeeper_configuration_keeps_data_in_its_directory_and_listens_on_loopback(tmp_path: Path) -> None:
    lines = dict(line.split("=", 1) for line in render_config(tmp_path, 12181).splitlines())

    assert lines["dataDir"] == str(tmp_path / "data")
    assert lines["clientPort"] == "12181"
    assert lines["clientPortAddress"] == "127.0.0.1"
    assert lines["4lw.commands.whitelist"] == "ruok"


def test_the_debian_cluster_on_the_port_is_found_in_pg_lsclusters_output() -> None:
    listing = (
        "16  main    5432 online postgres /var/lib/postgresql/16/main  /var/log/postgresql/16.log\n"
        "17  other   5433 down   postgres /var/lib/postgresql/17/other /var/log/postgresql/17.log\n"
    )

    assert postgres.cluster_on_port(listing, 5433) == ("17", "other")
    assert postgres.cluster_on_port(listing, 5434) is None


def test_the_newest_server_version_is_compared_as_a_number(tmp_path: Path) -> None:
    for version in ("9", "13", "17", "common"):
        (tmp_path / version).mkdir()

    assert postgres.newest_version(tmp_path) == "17"


# ---- what is accepted ----


@pytest.mark.parametrize(("text", "port"), [("8123", 8123), (" 1 ", 1), ("65535", 65535)])
def test_a_port_is_a_number_from_1_to_65535(text: str, port: int) -> None:
    assert settings.parse_port(text) == port


@pytest.mark.parametrize("text", ["", "0", "65536", "-1", "80a", "٣"])
def test_anything_else_is_not_a_port(text: str) -> None:
    assert settings.parse_port(text) is None


def test_every_bad_cluster_variable_is_named_in_one_error() -> None:
    with pytest.raises(ServiceError) as error:
        settings.cluster(
            {"CLUSTER_PREFIX": ".hidden", "CLUSTER_HTTP_PORTS": "8123 http", "CLICKHOUSE_CLUSTER": "a-b"}
        )

    message = str(error.value)
    assert "CLUSTER_PREFIX" in message
    assert "CLUSTER_HTTP_PORTS" in message
    assert "CLICKHOUSE_CLUSTER" in message


def test_a_cluster_needs_one_port_of_each_kind_per_replica() -> None:
    with pytest.raises(ServiceError, match="one port per replica"):
        settings.cluster({"CLUSTER_HTTP_PORTS": "8123 8124 8125"})


def test_the_services_default_to_the_machines_usual_ports() -> None:
    defaults = settings.services({})

    assert (defaults.postgres_port, defaults.redis_port, defaults.clickhouse_port) == (5432, 6379, 8123)
    assert defaults.clickhouse_name == "dev"
    assert defaults.clickhouse_home == ROOT / ".services" / "clickhouse"


@pytest.mark.parametrize(
    "argv",
    [
        ["clickhouse", "start", "--http-port", "http"],
        ["clickhouse", "stop", "--name", "../elsewhere"],
        ["clickhouse", "status", "--name", ".hidden"],
        ["cluster", "pid"],
        ["restart"],
    ],
)
def test_the_command_line_refuses_bad_arguments(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)

    assert exit_.value.code == 2
    assert "error" in capsys.readouterr().err


def test_an_unknown_cluster_part_fails_with_the_parts_there_are(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in CLUSTER_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)

    assert cli.main(["cluster", "pid", "replica3"]) == 1
    assert (
        capsys.readouterr().err.strip()
        == "cluster: error: unknown part: replica3 (zookeeper replica1 replica2)"
    )


# ---- what it runs on ----


def test_devservices_imports_the_standard_library_only() -> None:
    """It runs in the virtualenv `make install` builds, and before any package is installed at all."""
    imported: set[str] = set()
    for module in (ROOT / "devservices").glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])

    assert imported - sys.stdlib_module_names == {"devservices"}
