"""A replicated cluster (ZooKeeper and two ClickHouse replicas of the tests' own): durable, exactly once.

The cluster is started once for the module on free ports (`python -m
devservices cluster`) and purged at the end, whatever happened. Each test gets
a database of its own, created `ON CLUSTER` as `relay migrate` does. The relay
writes with a quorum of both replicas, so an acknowledged batch is on both.

During an outage two forwarders may split a re-claimed batch differently from
the attempt that failed, so a raw copy can be stored (the view hides it); with
one forwarder the retry is the same bytes, and the replicated table drops it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiochclient import ChClient

from relay.app import EXIT_SCHEMA
from relay.core import schema
from tests.support.clickhouse import ClickHouse
from tests.support.outbox_tables import Outbox
from tests.support.project import ROOT
from tests.support.relays import RelayFactory, RelayProcess
from tests.support.waiting import free_port, wait_until

pytestmark = pytest.mark.slow

COMMAND = (sys.executable, "-m", "devservices", "cluster")
CLUSTER = "die_hard"
# A dead replica stops counting toward the quorum once its ZooKeeper session
# expires: short here, so the tests do not wait 30 s for it.
SESSION_TIMEOUT_MS = 4000


@dataclass
class LocalCluster:
    """ZooKeeper and two ClickHouse replicas, driven through `python -m devservices cluster`."""

    prefix: str
    http_ports: tuple[int, int]
    tcp_ports: tuple[int, int]
    interserver_ports: tuple[int, int]
    zookeeper_port: int

    @property
    def env(self) -> dict[str, str]:
        """The script's environment for this cluster."""
        return {
            **os.environ,
            "CLICKHOUSE_CLUSTER": CLUSTER,
            "CLUSTER_PREFIX": self.prefix,
            "CLUSTER_HTTP_PORTS": " ".join(map(str, self.http_ports)),
            "CLUSTER_TCP_PORTS": " ".join(map(str, self.tcp_ports)),
            "CLUSTER_INTERSERVER_PORTS": " ".join(map(str, self.interserver_ports)),
            "CLUSTER_ZOOKEEPER_PORT": str(self.zookeeper_port),
            "CLUSTER_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
        }

    def script(self, *args: str) -> str:
        """Run `python -m devservices cluster` with these arguments; its output."""
        result = subprocess.run(
            [*COMMAND, *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert result.returncode == 0, f"cluster {' '.join(args)}:\n{result.stdout}{result.stderr}"
        return result.stdout

    def up(self) -> None:
        """Start whatever part is not running."""
        self.script("up")

    def kill(self, part: str) -> None:
        """SIGKILL one part (`replica1`, `replica2`, `zookeeper`): no shutdown at all."""
        os.kill(int(self.script("pid", part)), signal.SIGKILL)

    def stop(self, part: str) -> None:
        """Stop one part the orderly way."""
        self.script("down", part)

    @property
    def hosts(self) -> str:
        """`CLICKHOUSE_HOSTS` for a relay that knows both replicas."""
        return ",".join(f"127.0.0.1:{port}" for port in self.http_ports)

    def replica(self, number: int, database: str = "default") -> ClickHouse:
        """A client for one replica."""
        return ClickHouse(f"http://127.0.0.1:{self.http_ports[number - 1]}/", database)


@pytest.fixture(scope="module")
def local_cluster() -> Iterator[LocalCluster]:
    """A cluster of the tests' own on free ports; stopped and deleted afterwards, even after a failure."""
    cluster = LocalCluster(
        prefix=f"test-{uuid.uuid4().hex[:8]}",
        http_ports=(free_port(), free_port()),
        tcp_ports=(free_port(), free_port()),
        interserver_ports=(free_port(), free_port()),
        zookeeper_port=free_port(),
    )
    try:
        cluster.up()
        yield cluster
    finally:
        cluster.script("purge")


@pytest.fixture
def cluster(local_cluster: LocalCluster) -> LocalCluster:
    """The module's cluster with every part running (a test before may have stopped one).

    A replica that just came back may still be reconnecting to ZooKeeper: wait
    until no replicated table of either replica is read-only.
    """
    local_cluster.up()
    wait_until(lambda: all(_writable(local_cluster.replica(number)) for number in (1, 2)), timeout=60)
    return local_cluster


def _writable(replica: ClickHouse) -> bool:
    return replica.value("SELECT count() FROM system.replicas WHERE is_readonly") == "0"


@pytest.fixture
def clickhouse(cluster: LocalCluster) -> ClickHouse:
    """Replica 1's view of a fresh database with the schema created on the whole cluster."""
    database = f"test_cluster_{uuid.uuid4().hex[:8]}"
    asyncio.run(_migrate(cluster.replica(1).url, database))
    return cluster.replica(1, database)


async def _migrate(url: str, database: str) -> None:
    async with aiohttp.ClientSession() as session:
        await schema.apply(ChClient(session, url=url), database, CLUSTER)


@pytest.fixture
def start_cluster_relay(start_relay: RelayFactory, cluster: LocalCluster) -> RelayFactory:
    """Start relays that know both replicas and write with a quorum of both."""

    def start(**settings: object) -> RelayProcess:
        defaults: dict[str, object] = {
            "CLICKHOUSE_HOSTS": cluster.hosts,
            "CLICKHOUSE_CLUSTER": CLUSTER,
            "clickhouse_timeout": 3,
        }
        return start_relay(**(defaults | settings))

    return start


def raw_rows(replica: ClickHouse) -> int:
    """Rows as stored on one replica, duplicates included (what insert-time deduplication saw)."""
    return int(replica.value("SELECT count() FROM event_log"))


def distinct_events(replica: ClickHouse) -> int:
    """Different events stored on one replica."""
    return int(replica.value("SELECT uniqExact(event_id) FROM event_log"))


def visible_on(replica: ClickHouse) -> int:
    """Rows of the deduplicated view, read through one replica."""
    return int(replica.value("SELECT count() FROM event_log_dedup"))


def both(cluster: LocalCluster, database: str, count: Callable[[ClickHouse], int]) -> tuple[int, int]:
    """A count on replica 1 and on replica 2."""
    return count(cluster.replica(1, database)), count(cluster.replica(2, database))


def test_migrate_creates_a_replicated_table_and_a_distributed_one_on_every_replica(
    cluster: LocalCluster, clickhouse: ClickHouse
) -> None:
    for number in (1, 2):
        engines = dict(
            cluster.replica(number).rows(
                f"SELECT name, engine FROM system.tables WHERE database = '{clickhouse.database}'"
            )
        )
        assert (
            engines.items()
            >= {
                "event_log": "ReplicatedReplacingMergeTree",
                "event_log_distributed": "Distributed",
                "event_log_dedup": "View",
                # The per-account copy, replicated like event_log, and the view filling it on each replica.
                "event_log_by_user": "ReplicatedReplacingMergeTree",
                "event_log_by_user_mv": "MaterializedView",
            }.items()
        )


def test_migrating_again_changes_nothing(cluster: LocalCluster, clickhouse: ClickHouse) -> None:
    tables = f"SELECT name, engine FROM system.tables WHERE database = '{clickhouse.database}' ORDER BY name"
    before = cluster.replica(2).rows(tables)

    asyncio.run(_migrate(cluster.replica(2).url, clickhouse.database))

    assert cluster.replica(2).rows(tables) == before


def test_events_arrive_on_both_replicas_exactly_once(
    cluster: LocalCluster, clickhouse: ClickHouse, outbox: Outbox, start_cluster_relay: RelayFactory
) -> None:
    ids = outbox.produce(1000)
    relay = start_cluster_relay()

    wait_until(lambda: outbox.pending() == 0, timeout=30)

    # The quorum acknowledged every batch: both replicas hold every event already.
    assert both(cluster, clickhouse.database, raw_rows) == (1000, 1000)
    assert both(cluster, clickhouse.database, visible_on) == (1000, 1000)
    stored = cluster.replica(2, clickhouse.database).rows("SELECT event_id FROM event_log")
    assert {row[0] for row in stored} == set(ids)
    # Each event about an account (all but user 0's) also in the per-account copy, on both replicas.
    by_user = "SELECT count() FROM event_log_by_user FINAL"
    wait_until(
        lambda: [cluster.replica(n, clickhouse.database).value(by_user) for n in (1, 2)] == ["999", "999"],
        timeout=30,
    )
    configured = relay.log_events("clickhouse_inserts_configured")
    assert configured[-1]["insert_quorum"] == 2


@dataclass(frozen=True)
class Outage:
    """A part of the cluster failing, and how long the relay may take to catch up once it is back."""

    cause: Callable[[LocalCluster], None]
    recovery_timeout: float


@pytest.mark.parametrize(
    "outage",
    [
        pytest.param(Outage(lambda cluster: cluster.kill("replica2"), 90), id="a replica killed"),
        pytest.param(Outage(lambda cluster: cluster.stop("zookeeper"), 120), id="zookeeper stopped"),
    ],
)
def test_an_outage_mid_stream_holds_events_back_and_loses_or_doubles_none(
    cluster: LocalCluster,
    clickhouse: ClickHouse,
    outbox: Outbox,
    start_cluster_relay: RelayFactory,
    outage: Outage,
) -> None:
    relay = start_cluster_relay()
    outbox.produce(300)
    wait_until(lambda: outbox.pending() == 0, timeout=30)

    outage.cause(cluster)
    outbox.produce(300)

    # Without the quorum no batch is acknowledged: the events stay in the outbox.
    wait_until(lambda: relay.log_events("batch_failed"), timeout=30)
    assert outbox.pending() == 300
    cluster.up()

    wait_until(lambda: outbox.pending() == 0, timeout=outage.recovery_timeout, interval=0.5)
    wait_until(lambda: both(cluster, clickhouse.database, visible_on) == (600, 600), timeout=30)
    assert both(cluster, clickhouse.database, distinct_events) == (600, 600)
    assert relay.process.poll() is None, "the relay must ride the outage out"


def test_a_batch_resent_after_the_relay_died_between_quorum_ack_and_commit_is_dropped_at_insert(
    cluster: LocalCluster, clickhouse: ClickHouse, outbox: Outbox, start_cluster_relay: RelayFactory
) -> None:
    outbox.produce(1000)
    doomed = start_cluster_relay(fault="kill_after_ack", concurrency=1, wait=False)
    assert doomed.wait(timeout=60) == -signal.SIGKILL
    # ClickHouse has the batch on both replicas; PostgreSQL rolled its removal back.
    assert outbox.pending() == 1000
    assert both(cluster, clickhouse.database, raw_rows) == (1000, 1000)

    survivor = start_cluster_relay(concurrency=1)
    wait_until(lambda: outbox.pending() == 0, timeout=30)

    resent = sum(int(line["events"]) for line in survivor.log_events("batch_delivered"))
    assert resent == 1000
    # The identical block was dropped by the replicated table: no raw duplicate anywhere.
    assert both(cluster, clickhouse.database, raw_rows) == (1000, 1000)
    assert both(cluster, clickhouse.database, visible_on) == (1000, 1000)


def test_the_relay_moves_on_to_the_other_replica_when_its_first_one_is_gone(
    cluster: LocalCluster, clickhouse: ClickHouse, outbox: Outbox, start_cluster_relay: RelayFactory
) -> None:
    cluster.stop("replica1")
    # Both replicas must hold an acknowledged batch; with one left, ask for a quorum of one.
    relay = start_cluster_relay(insert_quorum=1)
    outbox.produce(200)

    wait_until(lambda: outbox.pending() == 0, timeout=30)
    cluster.up()

    wait_until(lambda: both(cluster, clickhouse.database, raw_rows) == (200, 200), timeout=60)
    assert relay.log_events("clickhouse_replica_failed")


def test_a_quorum_larger_than_the_shard_stops_the_relay_at_start(
    clickhouse: ClickHouse, start_cluster_relay: RelayFactory
) -> None:
    relay = start_cluster_relay(insert_quorum=3, wait=False)

    assert relay.wait(timeout=30) == EXIT_SCHEMA
    assert "RELAY_INSERT_QUORUM=3" in relay.log()


def test_a_relay_pointed_at_an_unreplicated_table_refuses_to_start(
    cluster: LocalCluster, start_cluster_relay: RelayFactory
) -> None:
    # A single-server schema (migrated without CLICKHOUSE_CLUSTER), used with it.
    database = f"test_single_{uuid.uuid4().hex[:8]}"
    asyncio.run(_migrate_single(cluster.replica(1).url, database))

    relay = start_cluster_relay(CLICKHOUSE_DATABASE=database, wait=False)

    assert relay.wait(timeout=30) == EXIT_SCHEMA
    assert "event_log is not replicated on cluster die_hard" in relay.log()


def test_a_relay_given_a_cluster_the_servers_do_not_know_refuses_to_start(
    clickhouse: ClickHouse, start_cluster_relay: RelayFactory
) -> None:
    relay = start_cluster_relay(CLICKHOUSE_CLUSTER="elsewhere", wait=False)

    assert relay.wait(timeout=30) == EXIT_SCHEMA
    assert "ClickHouse knows no cluster elsewhere" in relay.log()


async def _migrate_single(url: str, database: str) -> None:
    async with aiohttp.ClientSession() as session:
        await schema.apply(ChClient(session, url=url), database)


def test_cluster_up_again_leaves_the_running_parts_as_they_are(cluster: LocalCluster) -> None:
    pids = [cluster.script("pid", part) for part in ("zookeeper", "replica1", "replica2")]

    output = cluster.script("up")

    assert output.count("already running") == 3
    assert [cluster.script("pid", part) for part in ("zookeeper", "replica1", "replica2")] == pids


def test_cluster_up_names_a_taken_port_and_starts_nothing() -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        cluster = LocalCluster(
            prefix=f"test-{uuid.uuid4().hex[:8]}",
            http_ports=(free_port(), taken),
            tcp_ports=(free_port(), free_port()),
            interserver_ports=(free_port(), free_port()),
            zookeeper_port=free_port(),
        )

        result = subprocess.run(
            [*COMMAND, "up"], cwd=ROOT, env=cluster.env, capture_output=True, text=True, check=False
        )

    assert result.returncode == 1
    assert f"ports taken by other processes: {taken} (replica2" in result.stderr
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", cluster.zookeeper_port)) != 0, "ZooKeeper was started"
