"""Start, stop and ask after the local services.

  python -m devservices up                  start PostgreSQL, Redis and ClickHouse unless they answer
  python -m devservices status              what answers (exit 1 if something does not)
  python -m devservices down [SERVICE...]   stop what `up` started: every such service, or the
                                            ones named (postgres, redis, clickhouse)
  python -m devservices clickhouse start|stop|status|client [--name N] [--http-port P] [--tcp-port Q]
  python -m devservices cluster up|status|down [PART...]|purge|pid PART

A service that already answers is used as it is, and nothing is ever stopped
that was not started here. Missing programs are installed with
`scripts/packages.sh`.

Environment (all optional):
  POSTGRES_PORT (5432)  POSTGRES_USER (postgres)  POSTGRES_DB (diehard)  REDIS_PORT (6379)
  CLICKHOUSE_PORT (8123, HTTP)  CLICKHOUSE_TCP_PORT (9000)  CLICKHOUSE_NAME (dev)
  CLICKHOUSE_LOG_LEVEL (information)  CLICKHOUSE_HOME (.services/clickhouse)
  the cluster's: CLICKHOUSE_CLUSTER (die_hard)  CLUSTER_PREFIX (cluster)
    CLUSTER_HTTP_PORTS ("8123 8124")  CLUSTER_TCP_PORTS ("9000 9001")
    CLUSTER_INTERSERVER_PORTS ("9009 9010")  CLUSTER_ZOOKEEPER_PORT (2181)
    CLUSTER_SESSION_TIMEOUT_MS (30000: how long a dead replica still counts toward a quorum)
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from devservices import settings
from devservices.backing import Backing
from devservices.clickhouse import Installation, Instance
from devservices.cluster import Cluster
from devservices.process import ServiceError


def _port(text: str) -> int:
    port = settings.parse_port(text)
    if port is None:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}")
    return port


def _name(text: str) -> str:
    if not settings.INSTANCE_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(f"invalid instance name: {text!r}")
    return text


def _backing() -> Backing:
    return Backing(settings.services(os.environ))


def _cluster() -> Cluster:
    return Cluster(settings.cluster(os.environ))


def _instance(options: argparse.Namespace) -> Instance:
    defaults = settings.services(os.environ)
    return Instance(
        options.name or defaults.clickhouse_name,
        options.http_port or defaults.clickhouse_port,
        options.tcp_port or defaults.clickhouse_tcp_port,
        Installation(defaults.clickhouse_home),
        log_level=defaults.clickhouse_log_level,
    )


def _cluster_pid(options: argparse.Namespace) -> None:
    print(_cluster().pid(options.part))


# Each command either answers a question (False: something does not answer,
# the exit status is 1) or does something (None); a failure raises ServiceError.
type Command = Callable[[argparse.Namespace], bool | None]

SERVICES: dict[str, tuple[Command, str]] = {
    "up": (lambda _: _backing().up(), "start whatever does not answer yet"),
    "status": (lambda _: _backing().status(), "what answers; exit 1 if something does not"),
    "down": (lambda options: _backing().down(options.services), "stop what `up` started"),
}
CLICKHOUSE: dict[str, tuple[Command, str]] = {
    "start": (
        lambda options: _instance(options).start(),
        "start the instance unless its port answers; wait until it does",
    ),
    "stop": (lambda options: _instance(options).stop(), "stop the instance, if it runs"),
    "status": (lambda options: _instance(options).status(), "whether the port answers, and whose it is"),
    "client": (lambda options: _instance(options).client(options.arguments), "clickhouse-client"),
}
CLUSTER: dict[str, tuple[Command, str]] = {
    "up": (lambda _: _cluster().up(), "start whatever part is not running"),
    "status": (lambda _: _cluster().status(), "what answers; exit 1 if something does not"),
    "down": (lambda options: _cluster().down(options.parts), "stop what `up` started (the data is kept)"),
    "purge": (lambda _: _cluster().purge(), "stop everything and delete the cluster's data"),
    "pid": (_cluster_pid, "the process id of a running part"),
}


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m devservices",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = top.add_subparsers(required=True, metavar="COMMAND")
    for name, (command, summary) in SERVICES.items():
        sub = commands.add_parser(name, help=summary)
        if name == "down":
            sub.add_argument("services", nargs="*", metavar="SERVICE", help="postgres, redis or clickhouse")
        sub.set_defaults(run=command, prog="services")

    clickhouse = commands.add_parser("clickhouse", help="a ClickHouse instance of this checkout")
    clickhouse_commands = clickhouse.add_subparsers(required=True, metavar="COMMAND")
    for name, (command, summary) in CLICKHOUSE.items():
        sub = clickhouse_commands.add_parser(name, help=summary)
        sub.add_argument("--name", type=_name, help="instance name (CLICKHOUSE_NAME, dev)")
        sub.add_argument("--http-port", type=_port, help="HTTP port (CLICKHOUSE_PORT, 8123)")
        sub.add_argument("--tcp-port", type=_port, help="native port (CLICKHOUSE_TCP_PORT, 9000)")
        if name == "client":
            sub.add_argument("arguments", nargs="*", help="clickhouse-client's, after --")
        sub.set_defaults(run=command, prog="clickhouse")

    cluster = commands.add_parser("cluster", help="ZooKeeper and ClickHouse replicas")
    cluster_commands = cluster.add_subparsers(required=True, metavar="COMMAND")
    for name, (command, summary) in CLUSTER.items():
        sub = cluster_commands.add_parser(name, help=summary)
        if name == "down":
            sub.add_argument("parts", nargs="*", metavar="PART", help="zookeeper, replica1, replica2, ...")
        if name == "pid":
            sub.add_argument("part", metavar="PART")
        sub.set_defaults(run=command, prog="cluster")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    options = parser().parse_args(argv)
    try:
        outcome = options.run(options)
    except ServiceError as error:
        print(f"{options.prog}: error: {error}", file=sys.stderr)
        return 1
    return 1 if outcome is False else 0


if __name__ == "__main__":
    sys.exit(main())
