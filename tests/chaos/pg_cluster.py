"""`make pg-cluster-up` / `make pg-cluster-down`: a PostgreSQL primary with a synchronous standby here.

    python -m tests.chaos.pg_cluster up|down|status|failover|purge

The chaos suite's scratch PostgreSQL, kept: two clusters of Debian's
PostgreSQL under `.services/pg-cluster/` (`node1`, `node2`), on 127.0.0.1:5433
and 5434 by default (`PG_CLUSTER_PORTS="5433 5434"`), trust authentication on
loopback only, never the machine's own server on 5432. The standby is a
`pg_basebackup -R` of the primary and streams its WAL; the primary waits for
it at every commit (`synchronous_standby_names`, `synchronous_commit=on`)
unless `PG_CLUSTER_SYNCHRONOUS=off`.

- `up`: create what is missing (`initdb`, the database `PG_CLUSTER_DATABASE`,
  default `diehard`, the roles `diehard_web` and `diehard_relay`, the
  standby), start what is stopped, wait until the
  standby streams, print the `DATABASE_URL` naming both hosts. After a
  `failover`, the old primary is rebuilt as a standby of the new one.
- `down`: stop both (fast shutdown); the data is kept.
- `failover`: crash the primary (immediate shutdown) and promote the standby.
- `status`: each node's role and the replication state.
- `purge`: `down`, then delete the data.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from devservices.process import port_taken
from tests.chaos.servers import (
    STANDBY_NAME,
    PostgresPair,
    ScratchPostgres,
    multi_host_url,
)
from tests.support.processes import Children
from tests.support.scratch_clickhouse import ServerError

ROOT = Path(__file__).resolve().parents[2]
HOME = ROOT / ".services" / "pg-cluster"
NODES = ("node1", "node2")
# Which node is the primary now (`failover` changes it).
PRIMARY_FILE = HOME / "primary"
# The site's and the relay's own roles, as `make services` creates them on the
# machine's server (`make migrate` grants them their rights).
APP_ROLES = ("diehard_web", "diehard_relay")


def ports() -> tuple[int, int]:
    """The two nodes' ports, from `PG_CLUSTER_PORTS`."""
    text = os.environ.get("PG_CLUSTER_PORTS", "5433 5434")
    values = [int(value) for value in text.replace(",", " ").split()]
    if len(values) != 2 or len(set(values)) != 2:
        raise SystemExit(f"PG_CLUSTER_PORTS must name two different ports, not {text!r}")
    return values[0], values[1]


def synchronous() -> bool:
    return os.environ.get("PG_CLUSTER_SYNCHRONOUS", "on").lower() not in ("off", "false", "0", "no")


def database() -> str:
    name = os.environ.get("PG_CLUSTER_DATABASE", "diehard")
    if not name.replace("_", "").isalnum():
        raise SystemExit(f"PG_CLUSTER_DATABASE must be a plain name, not {name!r}")
    return name


def pair(children: Children) -> PostgresPair:
    """The two nodes, the current primary first."""
    primary_name = PRIMARY_FILE.read_text().strip() if PRIMARY_FILE.exists() else NODES[0]
    nodes = {
        name: ScratchPostgres(children, HOME / name, port=port, settings={"fsync": "on"})
        for name, port in zip(NODES, ports(), strict=True)
    }
    standby_name = NODES[1] if primary_name == NODES[0] else NODES[0]
    return PostgresPair(primary=nodes[primary_name], standby=nodes[standby_name], synchronous=synchronous())


def _start(node: ScratchPostgres) -> None:
    if node.running_detached():
        return
    if port_taken(node.port):
        raise SystemExit(f"127.0.0.1:{node.port} is taken by another process: choose PG_CLUSTER_PORTS")
    node.start_detached()


def up(children: Children) -> int:
    """Create and start whatever is missing; wait until the standby streams."""
    HOME.mkdir(parents=True, exist_ok=True)
    nodes = pair(children)
    primary, standby = nodes.primary, nodes.standby
    # Role settings go on the command line, never into a file a base backup
    # copies: a promoted standby must not wait for a standby of its own.
    primary.settings.update(synchronous_commit="on")
    if nodes.synchronous:
        primary.settings["synchronous_standby_names"] = STANDBY_NAME
    if not (primary.data / "PG_VERSION").exists():
        print(f"pg-cluster: initdb {primary.directory.name} (primary, port {primary.port})")
        primary.create()
    _start(primary)
    wanted = primary.settings.get("synchronous_standby_names", "")
    if primary.execute("SHOW synchronous_standby_names")[0][0] != wanted:
        # A standby promoted by `failover` runs with a standby's settings.
        print(f"pg-cluster: restarting {primary.directory.name} with synchronous_standby_names={wanted!r}")
        primary.stop_detached(mode="fast")
        primary.start_detached()
    if (standby.data / "PG_VERSION").exists() and not (standby.data / "standby.signal").exists():
        # The primary before a failover: its WAL went on past what the new
        # primary has; a fresh base backup makes it a standby again.
        print(f"pg-cluster: {standby.directory.name}, the primary before a failover, becomes a standby again")
        standby.stop_detached(mode="fast")
        shutil.rmtree(standby.data)
    if not (standby.data / "PG_VERSION").exists():
        print(f"pg-cluster: pg_basebackup -R {standby.directory.name} (standby, port {standby.port})")
        standby.clone(primary, standby=True)
    standby.settings["primary_conninfo"] = (
        f"host=127.0.0.1 port={primary.port} user=postgres application_name={STANDBY_NAME}"
    )
    _start(standby)
    deadline = time.monotonic() + 60
    while not nodes.streaming():
        if time.monotonic() > deadline:
            raise SystemExit("pg-cluster: the standby did not stream within 60 s (see its postgres.log)")
        time.sleep(0.2)
    # Only now: a synchronous primary's commits wait for the standby.
    if not primary.execute(f"SELECT 1 FROM pg_database WHERE datname = '{database()}'"):
        primary.execute(f"CREATE DATABASE {database()}")
    for role in APP_ROLES:
        if not primary.execute(f"SELECT 1 FROM pg_roles WHERE rolname = '{role}'"):
            primary.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT")
    PRIMARY_FILE.write_text(primary.directory.name + "\n")
    status(children)
    return 0


def down(children: Children) -> int:
    """Stop both nodes (the data is kept)."""
    nodes = pair(children)
    for node in (nodes.primary, nodes.standby):
        if node.running_detached():
            node.stop_detached(mode="fast")
            print(f"pg-cluster: stopped {node.directory.name} (port {node.port})")
    return 0


def failover(children: Children) -> int:
    """Crash the primary (immediate shutdown: no checkpoint) and promote the standby."""
    nodes = pair(children)
    if not nodes.standby.running_detached():
        raise SystemExit("pg-cluster: the standby does not run: nothing to fail over to")
    nodes.primary.stop_detached(mode="immediate")
    print(f"pg-cluster: crashed the primary {nodes.primary.directory.name} (port {nodes.primary.port})")
    nodes.standby.promote()
    PRIMARY_FILE.write_text(nodes.standby.directory.name + "\n")
    print(f"pg-cluster: promoted {nodes.standby.directory.name} (port {nodes.standby.port})")
    print("pg-cluster: `up` makes the other node its standby again")
    return 0


def status(children: Children) -> int:
    """Each node's role, and the replication state as the primary sees it."""
    nodes = pair(children)
    for node in (nodes.primary, nodes.standby):
        if not node.running_detached():
            print(f"{node.directory.name}  127.0.0.1:{node.port}  stopped")
            continue
        role = "standby" if node.in_recovery() else "primary"
        print(f"{node.directory.name}  127.0.0.1:{node.port}  {role}")
    if nodes.primary.running_detached() and not nodes.primary.in_recovery():
        for name, state, sync_state in nodes.primary.execute(
            "SELECT application_name, state, sync_state FROM pg_stat_replication"
        ):
            print(f"replication: {name} {state} ({sync_state})")
    url = multi_host_url(sorted(ports()), database())
    print(f"DATABASE_ADMIN_URL={url}")
    print(f"DATABASE_URL={url.replace('postgres@', 'diehard_web@', 1)}")
    print(f"RELAY_DATABASE_URL={url.replace('postgres@', 'diehard_relay@', 1)}")
    return 0


def purge(children: Children) -> int:
    """Stop both nodes and delete their data."""
    down(children)
    shutil.rmtree(HOME, ignore_errors=True)
    print(f"pg-cluster: deleted {HOME}")
    return 0


COMMANDS = {"up": up, "down": down, "status": status, "failover": failover, "purge": purge}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.chaos.pg_cluster", description=__doc__.splitlines()[0]
    )
    parser.add_argument("command", choices=sorted(COMMANDS))
    options = parser.parse_args(argv)
    try:
        return COMMANDS[options.command](Children())
    except ServerError as error:
        print(f"pg-cluster: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
