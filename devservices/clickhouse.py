"""ClickHouse 18.16 servers of this checkout: one directory each under `.services/clickhouse/`.

`scripts/packages.sh clickhouse-server` unpacks the server into
`.services/clickhouse/root/` (never system-wide); each instance keeps its
data, logs and pid file in `.services/clickhouse/NAME/`, the server's working
directory, which the paths in `scripts/clickhouse/config.xml` are relative to.
"""

from __future__ import annotations

import os
import platform
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

from devservices import packages
from devservices.process import (
    HOST,
    ServiceError,
    gone,
    live_pid,
    say,
    spawn_detached,
    stop_pid_file,
    tail,
    wait_for,
)
from devservices.settings import SCRIPTS

CONFIG = SCRIPTS / "clickhouse" / "config.xml"
USERS = SCRIPTS / "clickhouse" / "users.xml"
# Debian's name for the libraries' directory, by the machine's architecture.
MULTIARCH = {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu"}
START_TIMEOUT = 30
# What a server's command line contains (see `live_pid`).
PROCESS = "clickhouse-server"


def _get(port: int, path: str) -> str | None:
    try:
        with urllib.request.urlopen(f"http://{HOST}:{port}/{path}", timeout=2) as response:
            body: bytes = response.read()
            return body.decode(errors="replace")
    except (OSError, urllib.error.URLError):
        return None


def pings(port: int) -> bool:
    """Whether a ClickHouse server answers HTTP on 127.0.0.1:`port`."""
    return _get(port, "ping") == "Ok.\n"


def version(port: int) -> str:
    """What the server on 127.0.0.1:`port` says it is."""
    return (_get(port, "?query=SELECT%20version()") or "").strip()


@dataclass(frozen=True)
class Installation:
    """The unpacked server and client under `home/root/`."""

    home: Path

    @property
    def root(self) -> Path:
        return self.home / "root"

    @property
    def server(self) -> Path:
        return self.root / "usr" / "sbin" / "clickhouse-server"

    @property
    def client(self) -> Path:
        return self.root / "usr" / "bin" / "clickhouse-client"

    def installed(self) -> bool:
        return (self.root / ".installed").is_file() and os.access(self.server, os.X_OK)

    def ensure(self) -> None:
        """Unpack the server unless it is there."""
        if not self.installed():
            packages.install("clickhouse-server", environ={**os.environ, "CLICKHOUSE_HOME": str(self.home)})

    def environment(self, base: Mapping[str, str]) -> dict[str, str]:
        """`base` plus what the unpacked binaries need: their libraries, and a time zone database.

        The server aborts without a time zone database; the system's is used where there is one.
        """
        triplet = MULTIARCH.get(platform.machine())
        if triplet is None:
            raise ServiceError(f"clickhouse: unsupported architecture {platform.machine()}")
        libraries = [str(self.root / "usr" / "lib" / triplet), str(self.root / "lib" / triplet)]
        if base.get("LD_LIBRARY_PATH"):
            libraries.append(base["LD_LIBRARY_PATH"])
        environment = {**base, "LD_LIBRARY_PATH": ":".join(libraries)}
        zoneinfo = self.root / "usr" / "share" / "zoneinfo"
        if not Path("/usr/share/zoneinfo/UTC").exists() and zoneinfo.is_dir():
            environment["TZDIR"] = str(zoneinfo)
        return environment


@dataclass(frozen=True)
class Instance:
    """One server: its name (its directory), its ports, its configuration."""

    name: str
    http_port: int
    tcp_port: int
    installation: Installation
    config: Path = CONFIG
    log_level: str = "information"
    # What its messages start with.
    label: str = field(default="clickhouse", compare=False)

    @property
    def directory(self) -> Path:
        return self.installation.home / self.name

    @property
    def pid_file(self) -> Path:
        return self.directory / "server.pid"

    @property
    def stdout_log(self) -> Path:
        return self.directory / "log" / "stdout.log"

    def pid(self) -> int | None:
        """The running server's pid, if this instance's pid file names one."""
        return live_pid(self.pid_file, PROCESS)

    def answers(self) -> bool:
        return pings(self.http_port)

    def command(self) -> list[str]:
        """The server's command line: the instance's settings override the configuration file's."""
        return [
            str(self.installation.server),
            f"--config-file={self.config}",
            "--",
            f"--http_port={self.http_port}",
            f"--tcp_port={self.tcp_port}",
            f"--logger.level={self.log_level}",
        ]

    def console_command(self) -> list[str]:
        """The command line for a process that supervises the server: it logs to the console too."""
        return [*self.command(), "--logger.console=1"]

    def prepare(self) -> Path:
        """Install the server if need be and make the instance's directories; the working directory."""
        self.installation.ensure()
        (self.directory / "log").mkdir(parents=True, exist_ok=True)
        return self.directory

    def _say(self, message: str) -> None:
        say(f"{self.label}: {message}")

    def start(self) -> None:
        """Start the server in the background unless something answers on its port; wait until it answers."""
        if self.answers():
            address = f"http://{HOST}:{self.http_port}"
            self._say(f"already answering on {address} (instance '{self.name}' not started again)")
            return
        self.prepare()
        pid = self.pid()
        if pid is not None:
            self._say(
                f"instance '{self.name}' already running (pid {pid})"
                f" but not answering on port {self.http_port} yet"
            )
        else:
            self._say(f"starting '{self.name}': http {HOST}:{self.http_port}, tcp {HOST}:{self.tcp_port}")
            pid = spawn_detached(
                self.command(),
                log=self.stdout_log,
                cwd=self.directory,
                env=self.installation.environment(os.environ),
            )
            self.pid_file.write_text(f"{pid}\n")
        # The server answers, or has exited: either way, waiting is over. (Its
        # pid, not its command line: that is empty for a moment during exec.)
        server = pid
        wait_for(lambda: self.answers() or gone(server), START_TIMEOUT)
        if self.answers():
            self._say(f"'{self.name}' is up (pid {pid}), {version(self.http_port)}")
            self._say(f"logs in {self.directory / 'log'}")
            return
        if not gone(pid):
            problem = f"no answer on http://{HOST}:{self.http_port}/ping after {START_TIMEOUT} s"
        else:
            problem = "server process exited during startup"
            self.pid_file.unlink(missing_ok=True)
        logs = ("clickhouse-server.err.log", "clickhouse-server.log")
        details = "".join(
            tail(path) for path in (self.stdout_log, *(self.directory / "log" / log for log in logs))
        )
        raise ServiceError(f"{self.label}: '{self.name}': {problem}\n{details}".rstrip())

    def stop(self) -> None:
        """Stop the server this instance's pid file names, if it runs; never another."""
        if stop_pid_file(f"{self.label} '{self.name}'", self.pid_file, PROCESS):
            self._say(f"stopped '{self.name}'")
        else:
            self._say(f"instance '{self.name}' is not running")

    def status(self) -> bool:
        """Say whether the port answers, and whose server it is; whether it answers."""
        pid = self.pid()
        owner = "" if pid is None else f" (instance {self.name}, pid {pid})"
        answers = self.answers()
        self._say(f"{'answering' if answers else 'not answering'} on http://{HOST}:{self.http_port}{owner}")
        return answers

    def client(self, arguments: Sequence[str]) -> NoReturn:
        """Become `clickhouse-client` connected to this instance."""
        client = self.installation.client
        if not os.access(client, os.X_OK):
            raise ServiceError("clickhouse: not installed: run scripts/packages.sh clickhouse-server")
        command = [str(client), "--host", HOST, "--port", str(self.tcp_port), *arguments]
        os.execve(command[0], command, self.installation.environment(os.environ))  # noqa: S606 (the unpacked client, by its path)
