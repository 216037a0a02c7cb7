"""The production image, run as containers against the machine's services (`make image-test`).

These tests need podman and a built image; they run only when `--image` names
one (`make image-test` builds it first), and are skipped otherwise, so plain
`make test` needs no container engine.

Each container gets a network namespace of its own, as under compose, so the
healthcheck commands of `compose.yaml` reach their fixed ports (8000, 8001)
unchanged, whatever listens on those ports on this machine; and with a
read-only root file system, as deploy/kubernetes/ runs them. The machine's
loopback is reachable from inside as 10.0.2.2 (slirp4netns with
`allow_host_loopback`): the local PostgreSQL and ClickHouse see the
connections coming from 127.0.0.1, as their least-privileged roles and users
require. The test run gets a PostgreSQL database, a ClickHouse database, a
Redis server and an SMTP server of its own.
"""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from psycopg import sql
from ruamel.yaml import YAML

from shared.settings import CommonSettings
from tests.support.clickhouse import ClickHouse
from tests.support.http import answers
from tests.support.project import ROOT
from tests.support.waiting import RedisServer, free_port, running_redis, wait_until

IMAGE_SCRIPT = ROOT / "scripts" / "image.sh"
COMPOSE_FILE = ROOT / "compose.yaml"
# The machine's loopback, as the containers see it.
HOST_LOOPBACK = "10.0.2.2"
NETWORK = "slirp4netns:allow_host_loopback=true"
# The processes compose runs from the image, each with a long-running command.
PROCESSES = ("web", "relay", "worker", "beat")
# What the local services call their least-privileged roles and users
# (devservices/postgres.py, scripts/clickhouse/users.xml).
WEB_ROLE, RELAY_ROLE = "diehard_web", "diehard_relay"
CLICKHOUSE_RELAY_USER, CLICKHOUSE_READER_USER = "diehard_relay", "diehard_reader"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--image"):
        return
    skip = pytest.mark.skip(reason="runs the built container image: make image-test")
    for item in items:
        # The marker, not a keyword: a directory named `image` is a keyword of every test below it.
        if item.get_closest_marker("image") is not None:
            item.add_marker(skip)


def podman(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run podman with the project's settings (runc, no default rlimits) through scripts/image.sh."""
    result = subprocess.run(
        [str(IMAGE_SCRIPT), "podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed ({result.returncode}): {result.stderr[-2000:]}")
    return result


def compose_services() -> dict[str, dict[str, Any]]:
    """The services of compose.yaml."""
    services: dict[str, dict[str, Any]] = YAML(typ="safe").load(COMPOSE_FILE.read_text(encoding="utf-8"))[
        "services"
    ]
    return services


def on_host_loopback(url: str) -> str:
    """The same URL as the containers reach it when it points at this machine's loopback."""
    parts = urlsplit(url)
    if parts.hostname in {"127.0.0.1", "localhost"}:
        return parts._replace(netloc=parts.netloc.replace(parts.hostname, HOST_LOOPBACK, 1)).geturl()
    return url


class Mailbox:
    """An aiosmtpd handler that keeps every message it is given."""

    def __init__(self) -> None:
        self.port = 0
        self.messages: list[tuple[list[str], Message]] = []
        self._lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802  (aiosmtpd's hook name)
        content = envelope.original_content or b""
        with self._lock:
            self.messages.append((list(envelope.rcpt_tos), BytesParser().parsebytes(content)))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[Message]:
        """Messages delivered to this address so far."""
        with self._lock:
            return [message for recipients, message in self.messages if address in recipients]


@dataclass
class Stack:
    """The image's processes running as containers, and what they run against."""

    image: str
    prefix: str
    postgres_owner_url: str
    clickhouse: ClickHouse
    mailbox: Mailbox
    environment: dict[str, str]
    web_port: int = field(default_factory=free_port)
    relay_port: int = field(default_factory=free_port)
    migrate_output: str = ""

    def name(self, process: str) -> str:
        """The container of a process."""
        return f"{self.prefix}-{process}"

    @property
    def web_url(self) -> str:
        """The site, published on this machine's loopback."""
        return f"http://127.0.0.1:{self.web_port}"

    @property
    def relay_url(self) -> str:
        """The relay's HTTP endpoint, published on this machine's loopback."""
        return f"http://127.0.0.1:{self.relay_port}"

    def env(self, process: str) -> dict[str, str]:
        """A process's environment: compose's, pointed at the local services and their roles."""
        env = dict(self.environment)
        if process == "relay":
            env.update(
                DATABASE_URL=self._postgres_url(RELAY_ROLE),
                CLICKHOUSE_USER=CLICKHOUSE_RELAY_USER,
                RELAY_HTTP_HOST="0.0.0.0",
                RELAY_HTTP_PORT="8001",
            )
        elif process == "migrate":
            env.update(
                DATABASE_URL=on_host_loopback(self.postgres_owner_url),
                CLICKHOUSE_USER="default",
                CLICKHOUSE_ADMIN_USER="default",
            )
        return env

    def _postgres_url(self, role: str) -> str:
        parts = urlsplit(on_host_loopback(self.postgres_owner_url))
        address = parts.netloc.rsplit("@", 1)[-1]
        return parts._replace(netloc=f"{role}@{address}").geturl()

    def run(self, process: str, command: list[str], *, detach: bool, timeout: float = 300) -> str:
        """Start a process's container (or run it to the end); return its id or its output."""
        # A read-only root file system, as the Kubernetes manifests ask (podman
        # mounts a tmpfs on /tmp, /var/tmp and /run): stricter than compose.
        args = ["run", "--name", self.name(process), "--network", NETWORK, "--init", "--read-only"]
        for key, value in self.env(process).items():
            args += ["--env", f"{key}={value}"]
        if process == "web":
            args += ["--publish", f"127.0.0.1:{self.web_port}:8000"]
        if process == "relay":
            args += ["--publish", f"127.0.0.1:{self.relay_port}:8001"]
        grace = compose_services()[process].get("stop_grace_period")
        if grace:
            args += ["--stop-timeout", str(int(str(grace).rstrip("s")))]
        args += ["--detach"] if detach else []
        result = podman(*args, self.image, *command, timeout=timeout, check=False)
        if result.returncode != 0:
            raise AssertionError(
                f"{process} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result.stdout.strip()

    def exec(self, process: str, *command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a command inside a process's running container."""
        return podman("exec", self.name(process), *command, timeout=timeout, check=False)

    def logs(self, process: str) -> str:
        """Everything a process's container wrote so far."""
        result = podman("logs", self.name(process), check=False)
        return result.stdout + result.stderr

    def remove_all(self) -> None:
        """Stop and remove every container of this stack."""
        names = [self.name(process) for process in (*PROCESSES, "migrate")]
        podman("rm", "--force", "--ignore", "--time", "5", *names, check=False)


@pytest.fixture(scope="session")
def image(request: pytest.FixtureRequest) -> str:
    """The image under test, as `--image` names it."""
    name = str(request.config.getoption("--image"))
    podman("image", "exists", name)
    return name


@pytest.fixture(scope="session")
def postgres_database(common_settings: CommonSettings) -> Iterator[str]:
    """A PostgreSQL database of this run's own; the URL of its owner.

    Made as the tables' owner (DATABASE_ADMIN_URL): the site's own role, which
    DATABASE_URL names by default, may not create databases.
    """
    server = urlsplit(common_settings.postgres_admin_dsn)
    name = f"diehard_image_{os.getpid()}"
    admin_url = server._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield server._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(admin_url, autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private Redis: the broker and cache of the containers, and nobody else's."""
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="session")
def mailbox() -> Iterator[Mailbox]:
    """A real SMTP server on this machine's loopback, which the worker sends e-mail to."""
    # aiosmtpd tells every connection at INFO: not what a test run wants to read.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    handler = Mailbox()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    handler.port = controller.port
    try:
        yield handler
    finally:
        controller.stop()


@pytest.fixture(scope="session")
def stack(
    *,
    image: str,
    common_settings: CommonSettings,
    postgres_database: str,
    clickhouse_server: ClickHouse,
    clickhouse_database: str,
    redis_server: RedisServer,
    mailbox: Mailbox,
) -> Iterator[Stack]:
    """migrate run to the end, then web, relay, worker and beat started as compose starts them."""
    clickhouse = ClickHouse(
        clickhouse_server.url, clickhouse_database, clickhouse_server.user, clickhouse_server.password
    )
    environment = {
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "ENVIRONMENT": "Local",
        "SECURE_SSL_REDIRECT": "false",
        "LOG_FORMAT": "json",
        "DATABASE_URL": "",  # per process, below
        "REDIS_URL": on_host_loopback(redis_server.url),
        "CLICKHOUSE_HOST": HOST_LOOPBACK
        if common_settings.clickhouse_host in {"127.0.0.1", "localhost"}
        else common_settings.clickhouse_host,
        "CLICKHOUSE_PORT": str(common_settings.clickhouse_port),
        "CLICKHOUSE_USER": CLICKHOUSE_READER_USER,
        "CLICKHOUSE_DATABASE": clickhouse_database,
        "EMAIL_HOST": HOST_LOOPBACK,
        "EMAIL_PORT": str(mailbox.port),
        "EMAIL_USE_TLS": "false",
        "MAIL_DISPATCH_INTERVAL": "2",
    }
    stack = Stack(
        image=image,
        prefix=f"die-hard-test-{os.getpid()}",
        postgres_owner_url=postgres_database,
        clickhouse=clickhouse,
        mailbox=mailbox,
        environment=environment,
    )
    environment["DATABASE_URL"] = stack._postgres_url(WEB_ROLE)
    services = compose_services()
    stack.remove_all()
    try:
        stack.migrate_output = stack.run("migrate", services["migrate"]["command"], detach=False)
        for process in PROCESSES:
            stack.run(process, services[process]["command"], detach=True)
        wait_until(lambda: answers(f"{stack.web_url}/health/"), timeout=90, interval=0.5)
        wait_until(lambda: answers(f"{stack.relay_url}/readyz"), timeout=60, interval=0.5)
        yield stack
    finally:
        stack.remove_all()
