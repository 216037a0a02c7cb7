"""ZooKeeper for a replicated ClickHouse cluster: Debian's package, run as a process of our own."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from devservices import packages
from devservices.process import (
    HOST,
    ServiceError,
    live_pid,
    probe,
    say,
    spawn_detached,
    stop_pid_file,
    tail,
    wait_for,
)

JAR = Path("/usr/share/java/zookeeper.jar")
START_TIMEOUT = 60


def answers(port: int) -> bool:
    """Whether ZooKeeper answers `ruok` with `imok` on 127.0.0.1:`port`."""
    return probe(HOST, port, b"ruok", b"imok")


def render_config(directory: Path, port: int) -> str:
    """A standalone server's `zoo.cfg`: data under `directory`, loopback only, `ruok` allowed."""
    return (
        "tickTime=1000\n"
        "initLimit=10\n"
        "syncLimit=5\n"
        f"dataDir={directory / 'data'}\n"
        f"clientPort={port}\n"
        f"clientPortAddress={HOST}\n"
        "maxClientCnxns=0\n"
        "admin.enableServer=false\n"
        "4lw.commands.whitelist=ruok\n"
        "autopurge.purgeInterval=1\n"
    )


def install() -> None:
    """Install Debian's package unless it is there."""
    if not JAR.exists():
        say("zookeeper: not installed, installing the Debian package")
        packages.install("zookeeper")


@dataclass(frozen=True)
class ZooKeeper:
    """A server whose configuration, data, log and pid file live in `directory`."""

    directory: Path
    port: int

    @property
    def config(self) -> Path:
        return self.directory / "zoo.cfg"

    @property
    def pid_file(self) -> Path:
        return self.directory / "zookeeper.pid"

    @property
    def log(self) -> Path:
        return self.directory / "zookeeper.log"

    def pid(self) -> int | None:
        """The running server's pid, if it is ours: its command line names our configuration."""
        return live_pid(self.pid_file, str(self.config))

    def answers(self) -> bool:
        return answers(self.port)

    def up(self) -> None:
        """Start the server unless ours runs; a port another process holds is an error."""
        pid = self.pid()
        if pid is not None and self.answers():
            say(f"zookeeper: already running on {HOST}:{self.port} (pid {pid})")
            return
        if pid is not None:
            raise ServiceError(
                f"zookeeper: pid {pid} runs but does not answer on {self.port} (see {self.log})"
            )
        install()
        java = shutil.which("java")
        if java is None:
            raise ServiceError("zookeeper: java not found (install a JRE, e.g. openjdk-17-jre-headless)")
        (self.directory / "data").mkdir(parents=True, exist_ok=True)
        self.config.write_text(render_config(self.directory, self.port))
        pid = spawn_detached(
            [
                *(java, "-Xms64m", "-Xmx256m", f"-Dzookeeper.log.dir={self.directory}"),
                *("-Dzookeeper.root.logger=INFO,CONSOLE", "-cp", "/usr/share/java/*:/etc/zookeeper/conf"),
                *("org.apache.zookeeper.server.quorum.QuorumPeerMain", str(self.config)),
            ],
            log=self.log,
            cwd=self.directory,
        )
        self.pid_file.write_text(f"{pid}\n")
        if not wait_for(self.answers, START_TIMEOUT):
            raise ServiceError(
                f"zookeeper: no answer on {HOST}:{self.port} after {START_TIMEOUT} s"
                f" (see {self.log})\n{tail(self.log, 20)}".rstrip()
            )
        say(f"zookeeper: started on {HOST}:{self.port} (log {self.log})")

    def down(self) -> None:
        """Stop our server; a process that is not ours is left alone."""
        if not stop_pid_file("zookeeper", self.pid_file, str(self.config)):
            say("zookeeper: not running (or not started here), left alone")
