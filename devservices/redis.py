"""Redis for the site's Celery broker and cache: the machine's if one answers, else a daemon of our own."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from devservices import packages
from devservices.process import HOST, ServiceError, probe, say, stop_pid_file, wait_for
from devservices.settings import SERVICES


def answers(port: int) -> bool:
    """Whether a Redis server answers PING on 127.0.0.1:`port`."""
    return probe(HOST, port, b"PING\r\n", b"+PONG")


@dataclass(frozen=True)
class Redis:
    """A Redis on `port`; `directory` holds our daemon's log, pid file and start marker."""

    port: int
    directory: Path = SERVICES / "redis"

    @property
    def marker(self) -> Path:
        return self.directory / "started-by-services"

    @property
    def pid_file(self) -> Path:
        return self.directory / "redis.pid"

    @property
    def log(self) -> Path:
        return self.directory / "redis.log"

    def answers(self) -> bool:
        return answers(self.port)

    def up(self) -> None:
        """Start a daemon unless a Redis answers on the port (installing the package if need be)."""
        if self.answers():
            say(f"redis: already running on {HOST}:{self.port}")
            return
        if shutil.which("redis-server") is None:
            say("redis: not installed, installing the Debian package")
            packages.install("redis-server")
            if self.answers():
                say(f"redis: the package started its service on {HOST}:{self.port}")
                return
        self.directory.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                *("redis-server", "--daemonize", "yes", "--bind", HOST, "--port", str(self.port)),
                *("--save", "", "--appendonly", "no", "--dir", str(self.directory)),
                *("--logfile", str(self.log), "--pidfile", str(self.pid_file)),
            ],
            check=True,
        )
        self.marker.touch()
        if not wait_for(self.answers, 15):
            raise ServiceError(f"redis: does not answer on {HOST}:{self.port} (see {self.log})")
        say(f"redis: started on {HOST}:{self.port} (log {self.log})")

    def down(self) -> None:
        """Stop the daemon `up` started; a Redis it did not start is left alone."""
        if not self.marker.exists():
            say("redis: not started here, left alone")
            return
        if not stop_pid_file("redis", self.pid_file, "redis-server"):
            say("redis: not running")
        self.marker.unlink(missing_ok=True)
