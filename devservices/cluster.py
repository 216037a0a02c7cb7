"""A replicated ClickHouse cluster on 127.0.0.1: ZooKeeper and the replicas of one shard.

Nothing it did not start is ever stopped. A port another process holds fails
`up` with its name before anything starts. State and logs live under
`.services/zookeeper/PREFIX/` and `.services/clickhouse/PREFIX-replicaN/`.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass

from devservices.clickhouse import CONFIG, USERS, Installation, Instance
from devservices.process import HOST, ServiceError, port_taken, say
from devservices.settings import SERVICES, ClusterSettings
from devservices.zookeeper import ZooKeeper

ZOOKEEPER = "zookeeper"


@dataclass(frozen=True)
class Replica:
    """One replica's number (from 1) and ports."""

    number: int
    http_port: int
    tcp_port: int
    interserver_port: int

    @property
    def part(self) -> str:
        return f"replica{self.number}"


def replicas(settings: ClusterSettings) -> list[Replica]:
    return [
        Replica(number, http, tcp, interserver)
        for number, (http, tcp, interserver) in enumerate(
            zip(settings.http_ports, settings.tcp_ports, settings.interserver_ports, strict=True), start=1
        )
    ]


def render_replica_config(
    base: str, replica: Replica, members: Sequence[Replica], settings: ClusterSettings
) -> str:
    """A replica's configuration: the standalone server's `base`, plus what makes it a replica.

    ZooKeeper, its macros, the cluster's members and the replication port.
    Its paths stay relative to the instance's directory; users.xml is shared.
    """
    head = base.replace("<users_config>users.xml</users_config>", f"<users_config>{USERS}</users_config>")
    head = "".join(line for line in head.splitlines(keepends=True) if "</yandex>" not in line)
    hosts = "".join(
        f"                <replica><host>{HOST}</host><port>{member.tcp_port}</port></replica>\n"
        for member in members
    )
    name = settings.cluster
    return f"""{head}    <!-- Written by devservices: replica {replica.number} of cluster {name}. -->
    <interserver_http_host>{HOST}</interserver_http_host>
    <interserver_http_port>{replica.interserver_port}</interserver_http_port>
    <zookeeper>
        <node><host>{HOST}</host><port>{settings.zookeeper_port}</port></node>
        <session_timeout_ms>{settings.session_timeout_ms}</session_timeout_ms>
    </zookeeper>
    <macros>
        <cluster>{name}</cluster>
        <shard>01</shard>
        <replica>{replica.part}</replica>
    </macros>
    <remote_servers>
        <{name}>
            <shard>
                <internal_replication>true</internal_replication>
{hosts}            </shard>
        </{name}>
    </remote_servers>
    <distributed_ddl>
        <path>/clickhouse/task_queue/ddl</path>
    </distributed_ddl>
</yandex>
"""


class Cluster:
    """ZooKeeper and the replicas the settings describe."""

    def __init__(self, settings: ClusterSettings) -> None:
        self.settings = settings
        self.installation = Installation(settings.clickhouse_home)
        self.zookeeper = ZooKeeper(SERVICES / "zookeeper" / settings.prefix, settings.zookeeper_port)
        self.replicas = replicas(settings)

    def parts(self) -> list[str]:
        """ZooKeeper, then each replica."""
        return [ZOOKEEPER, *(replica.part for replica in self.replicas)]

    def instance(self, replica: Replica) -> Instance:
        name = f"{self.settings.prefix}-{replica.part}"
        return Instance(
            name,
            replica.http_port,
            replica.tcp_port,
            self.installation,
            config=self.installation.home / name / "cluster-config.xml",
            log_level=self.settings.log_level,
            label=replica.part,
        )

    def check_parts(self, parts: Sequence[str]) -> None:
        for part in parts:
            if part not in self.parts():
                raise ServiceError(f"unknown part: {part} ({' '.join(self.parts())})")

    def taken_ports(self) -> list[str]:
        """Every port a part not running yet would take that another process holds, and whose it is."""
        taken = []
        if self.zookeeper.pid() is None and port_taken(self.zookeeper.port):
            taken.append(f"{self.zookeeper.port} (zookeeper; CLUSTER_ZOOKEEPER_PORT)")
        for replica in self.replicas:
            if self.instance(replica).pid() is not None:
                continue
            taken.extend(
                f"{port} ({replica.part}; CLUSTER_HTTP_PORTS, CLUSTER_TCP_PORTS, CLUSTER_INTERSERVER_PORTS)"
                for port in (replica.http_port, replica.tcp_port, replica.interserver_port)
                if port_taken(port)
            )
        return taken

    def up(self) -> None:
        """Start whatever part is not running; checks every port first, so a clash starts nothing."""
        taken = self.taken_ports()
        if taken:
            raise ServiceError(f"ports taken by other processes: {', '.join(taken)}")
        self.installation.ensure()
        self.zookeeper.up()
        for replica in self.replicas:
            self._replica_up(replica)
        ports = ",".join(str(replica.http_port) for replica in self.replicas)
        say(
            f"cluster: {self.settings.cluster} is up, replicas on http://{HOST}:{{{ports}}},"
            f" ZooKeeper on {HOST}:{self.zookeeper.port}"
        )

    def _replica_up(self, replica: Replica) -> None:
        instance = self.instance(replica)
        pid = instance.pid()
        if pid is not None and instance.answers():
            say(f"{replica.part}: already running on {HOST}:{replica.http_port} (pid {pid})")
            return
        instance.config.parent.mkdir(parents=True, exist_ok=True)
        instance.config.write_text(
            render_replica_config(CONFIG.read_text(), replica, self.replicas, self.settings)
        )
        instance.start()

    def down(self, parts: Sequence[str] = ()) -> None:
        """Stop the parts named (all by default) that run and are ours: the replicas first, ZooKeeper last."""
        wanted = parts or self.parts()
        self.check_parts(wanted)
        for replica in self.replicas:
            if replica.part not in wanted:
                continue
            self.instance(replica).stop()
        if ZOOKEEPER in wanted:
            self.zookeeper.down()

    def purge(self) -> None:
        """Stop everything, then delete the cluster's data."""
        self.down()
        for replica in self.replicas:
            shutil.rmtree(self.instance(replica).directory, ignore_errors=True)
        shutil.rmtree(self.zookeeper.directory, ignore_errors=True)
        say(f"cluster: purged, the data of {self.settings.prefix} is gone")

    def status(self) -> bool:
        """Say what answers; whether everything does."""
        answers = {ZOOKEEPER: (self.zookeeper.answers(), self.zookeeper.port)}
        answers.update(
            {replica.part: (self.instance(replica).answers(), replica.http_port) for replica in self.replicas}
        )
        for part, (answering, port) in answers.items():
            say(f"{part}: {'running' if answering else 'not answering'} on {HOST}:{port}")
        return all(answering for answering, _ in answers.values())

    def pid(self, part: str) -> int:
        """The process id of a running part."""
        self.check_parts([part])
        if part == ZOOKEEPER:
            pid = self.zookeeper.pid()
        else:
            pid = self.instance(next(replica for replica in self.replicas if replica.part == part)).pid()
        if pid is None:
            raise ServiceError(f"{part} is not running")
        return pid
