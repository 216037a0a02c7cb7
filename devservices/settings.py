"""Where the services keep their state, and what the commands read from the environment.

Each command reads its variables once, at start, and checks them all: one error
names every bad one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from devservices.process import ServiceError

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
SERVICES = ROOT / ".services"  # every service's data, logs and pid files (git-ignored)

# A directory name of its own: no slash, no leading dot.
INSTANCE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]*")
# A ClickHouse identifier (it becomes an XML element and a macro).
CLUSTER_NAME = re.compile(r"[A-Za-z0-9_]+")


def parse_port(text: str) -> int | None:
    """A TCP port number, or None if `text` is not one."""
    text = text.strip()
    if text.isascii() and text.isdigit() and 0 < int(text) < 65536:
        return int(text)
    return None


class _Reader:
    """Reads variables with their defaults, collecting what is wrong instead of stopping at the first."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.errors: list[str] = []

    def text(self, variable: str, default: str) -> str:
        return self.environ.get(variable) or default

    def port(self, variable: str, default: int) -> int:
        text = self.text(variable, str(default))
        port = parse_port(text)
        if port is None:
            self.errors.append(f"{variable} must be a port number, not {text!r}")
            return default
        return port

    def ports(self, variable: str, default: str) -> tuple[int, ...]:
        text = self.text(variable, default)
        ports = [parse_port(word) for word in text.split()]
        if not ports or None in ports:
            self.errors.append(f"{variable} must be port numbers separated by spaces, not {text!r}")
        return tuple(port for port in ports if port is not None)

    def number(self, variable: str, default: int) -> int:
        text = self.text(variable, str(default))
        if not (text.isascii() and text.isdigit()):
            self.errors.append(f"{variable} must be a whole number, not {text!r}")
            return default
        return int(text)

    def name(self, variable: str, default: str, pattern: re.Pattern[str] = INSTANCE_NAME) -> str:
        text = self.text(variable, default)
        if not pattern.fullmatch(text):
            self.errors.append(f"invalid {variable}: {text!r}")
        return text

    def check(self) -> None:
        if self.errors:
            raise ServiceError("; ".join(self.errors))


def clickhouse_home(environ: Mapping[str, str]) -> Path:
    """Where ClickHouse is unpacked (`root/`) and each instance keeps its state (`NAME/`)."""
    return Path(environ.get("CLICKHOUSE_HOME") or SERVICES / "clickhouse")


@dataclass(frozen=True)
class ServicesSettings:
    """`make services`: PostgreSQL, Redis and the ClickHouse instance the site uses."""

    postgres_port: int
    postgres_user: str
    postgres_db: str
    redis_port: int
    clickhouse_port: int
    clickhouse_tcp_port: int
    clickhouse_name: str
    clickhouse_home: Path
    clickhouse_log_level: str


def services(environ: Mapping[str, str]) -> ServicesSettings:
    """POSTGRES_PORT, POSTGRES_USER, POSTGRES_DB, REDIS_PORT and the CLICKHOUSE_* below, checked."""
    read = _Reader(environ)
    settings = ServicesSettings(
        postgres_port=read.port("POSTGRES_PORT", 5432),
        postgres_user=read.text("POSTGRES_USER", "postgres"),
        postgres_db=read.text("POSTGRES_DB", "diehard"),
        redis_port=read.port("REDIS_PORT", 6379),
        clickhouse_port=read.port("CLICKHOUSE_PORT", 8123),
        clickhouse_tcp_port=read.port("CLICKHOUSE_TCP_PORT", 9000),
        clickhouse_name=read.name("CLICKHOUSE_NAME", "dev"),
        clickhouse_home=clickhouse_home(environ),
        clickhouse_log_level=read.text("CLICKHOUSE_LOG_LEVEL", "information"),
    )
    read.check()
    return settings


@dataclass(frozen=True)
class ClusterSettings:
    """`make cluster-up`: ZooKeeper and one shard of ClickHouse replicas, each with its own ports."""

    cluster: str
    prefix: str
    http_ports: tuple[int, ...]
    tcp_ports: tuple[int, ...]
    interserver_ports: tuple[int, ...]
    zookeeper_port: int
    session_timeout_ms: int
    clickhouse_home: Path
    log_level: str


def cluster(environ: Mapping[str, str]) -> ClusterSettings:
    """CLICKHOUSE_CLUSTER, CLUSTER_PREFIX, CLUSTER_*_PORTS, CLUSTER_ZOOKEEPER_PORT and the rest, checked."""
    read = _Reader(environ)
    settings = ClusterSettings(
        cluster=read.name("CLICKHOUSE_CLUSTER", "die_hard", CLUSTER_NAME),
        prefix=read.name("CLUSTER_PREFIX", "cluster"),
        http_ports=read.ports("CLUSTER_HTTP_PORTS", "8123 8124"),
        tcp_ports=read.ports("CLUSTER_TCP_PORTS", "9000 9001"),
        interserver_ports=read.ports("CLUSTER_INTERSERVER_PORTS", "9009 9010"),
        zookeeper_port=read.port("CLUSTER_ZOOKEEPER_PORT", 2181),
        session_timeout_ms=read.number("CLUSTER_SESSION_TIMEOUT_MS", 30000),
        clickhouse_home=clickhouse_home(environ),
        log_level=read.text("CLICKHOUSE_LOG_LEVEL", "information"),
    )
    if not read.errors and not (
        len(settings.http_ports) == len(settings.tcp_ports) == len(settings.interserver_ports)
    ):
        read.errors.append(
            "CLUSTER_HTTP_PORTS, CLUSTER_TCP_PORTS and CLUSTER_INTERSERVER_PORTS"
            " must name one port per replica"
        )
    read.check()
    return settings
