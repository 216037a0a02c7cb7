"""A ClickHouse server of a test's own (a `devservices` instance): started, stopped, restarted, removed.

The chaos suite and the relay's outage test both use it. It listens on free
ports, keeps its data under `.services/clickhouse/<name>` and is a child of
the test (see `tests.support.processes`), which may kill, stop and restart it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from devservices.clickhouse import Installation, Instance
from devservices.process import wait_for as poll
from devservices.settings import clickhouse_home
from tests.support.processes import Children
from tests.support.waiting import free_port

CLICKHOUSE_HOME = clickhouse_home(os.environ)


class ServerError(RuntimeError):
    """A scratch server did not start or stop as asked."""


def wait_for(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    if not poll(condition, timeout, interval=0.1):
        raise ServerError(f"{what} within {timeout:.0f} s")


@dataclass
class ScratchClickHouse:
    """A private ClickHouse server, a child of the test's."""

    children: Children
    log: Path
    name: str = field(default_factory=lambda: f"scratch-{os.getpid()}")
    http_port: int = field(default_factory=free_port)
    tcp_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/"

    @property
    def instance(self) -> Instance:
        return Instance(
            self.name, self.http_port, self.tcp_port, Installation(CLICKHOUSE_HOME), log_level="warning"
        )

    def start(self) -> None:
        """Start the server and wait until it answers."""
        self.launch()
        self.wait_ready()

    def wait_ready(self) -> None:
        """Wait until the server answers `/ping` (any thread)."""
        # Generous: after a kill, a busy server first checks and cleans its parts.
        wait_for(self.answers, timeout=300, what="ClickHouse did not answer /ping")

    def launch(self) -> None:
        """Start the server (main thread), logging to the console, which is `log`."""
        instance = self.instance
        self.process = self.children.spawn(
            instance.console_command(),
            log=self.log,
            env=instance.installation.environment(os.environ),
            cwd=instance.prepare(),
        )

    def answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise ServerError(f"clickhouse exited: {self.log.read_text()[-2000:]}")
        return self.instance.answers()

    def kill(self) -> None:
        """SIGKILL: the server gets no chance to finish anything."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        """SIGTERM, and SIGKILL if it has not exited after 30 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()

    def query(self, sql: str, *, database: str = "default", timeout: float = 120) -> str:
        """Run a statement over HTTP; return the answer's text."""
        request = urllib.request.Request(f"{self.url}?database={database}", data=sql.encode(), method="POST")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                body: bytes = response.read()
                return body.decode()
        except urllib.error.HTTPError as error:
            raise ServerError(f"ClickHouse refused {sql[:80]!r}: {error.read().decode()[:300]}") from error

    def remove(self) -> None:
        self.kill()
        shutil.rmtree(self.instance.directory, ignore_errors=True)
