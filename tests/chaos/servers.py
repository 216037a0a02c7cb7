"""The suite's own servers: a scratch PostgreSQL cluster and a private ClickHouse.

Neither is the machine's: each listens on a free port of its own, keeps its
data in a scratch directory and is a child of the suite (see `processes`), so
the suite may kill, stop and restart them at will.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from tests.support.processes import Children
from tests.support.scratch_clickhouse import CLICKHOUSE_HOME, ServerError, wait_for
from tests.support.waiting import free_port

ROOT = Path(__file__).resolve().parents[2]
INSTANCE_PREFIX = "chaos-"
SCRATCH_PREFIX = "diehard-chaos-"
# PostgreSQL refuses to run as root: as root, the cluster runs as the postgres
# account; as anyone else, as that user.
POSTGRES_ACCOUNT = "postgres" if os.geteuid() == 0 else None


def postgres_bindir() -> Path:
    """The newest PostgreSQL server binaries installed (Debian's layout)."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda path: int(path.parts[-3])
    )
    if not candidates:
        raise ServerError(
            "no PostgreSQL server binaries under /usr/lib/postgresql: apt-get install postgresql"
        )
    return candidates[-1].parent


@dataclass
class ScratchPostgres:
    """A PostgreSQL cluster of the suite's own, created with `initdb`, on a free port."""

    children: Children
    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    bindir: Path = field(default_factory=postgres_bindir)

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def log(self) -> Path:
        return self.directory / "postgres.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def create(self) -> None:
        """`initdb` a new cluster (trust authentication: it only listens on loopback)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if POSTGRES_ACCOUNT is not None:
            account = pwd.getpwnam(POSTGRES_ACCOUNT)
            os.chown(self.directory, account.pw_uid, account.pw_gid)
        self.children.spawn(
            [
                self.bindir / "initdb",
                "--pgdata",
                self.data,
                "--username",
                "postgres",
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--no-sync",
            ],
            log=self.directory / "initdb.log",
            run_as=POSTGRES_ACCOUNT,
            cwd=self.directory,
        ).wait()
        if not (self.data / "PG_VERSION").exists():
            raise ServerError(f"initdb failed: {(self.directory / 'initdb.log').read_text()[-2000:]}")

    def start(self) -> None:
        """Start the postmaster and wait until it accepts connections."""
        self.launch()
        self.wait_ready()

    def wait_ready(self) -> None:
        """Wait until the postmaster accepts connections (any thread)."""
        wait_for(self.accepts_connections, timeout=60, what="PostgreSQL did not accept connections")

    def launch(self) -> None:
        """Start the postmaster (main thread) without waiting for it."""
        self.process = self.children.spawn(
            [
                self.bindir / "postgres",
                "-D",
                self.data,
                "-p",
                str(self.port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={self.directory}",
                # The OS survives every crash the suite causes, so the page
                # cache keeps what fsync would have forced to disk; commits
                # stay synchronous, so an acknowledged commit is in the WAL.
                "-c",
                "fsync=off",
                "-c",
                "max_connections=200",
                "-c",
                "log_min_messages=warning",
            ],
            log=self.log,
            run_as=POSTGRES_ACCOUNT,
            cwd=self.directory,
        )

    def accepts_connections(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise ServerError(f"postgres exited: {self.log.read_text()[-2000:]}")
        try:
            with psycopg.connect(self.url(), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def stop(self, *, mode: str = "fast") -> None:
        """`fast` (SIGINT: roll back, checkpoint, exit) or `immediate` (SIGQUIT: a crash)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT if mode == "fast" else signal.SIGQUIT)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        # Backends notice their postmaster is gone and exit; a new postmaster
        # needs them gone, or it finds their shared memory still attached.
        wait_for(
            lambda: not (self.data / "postmaster.pid").exists() or self._orphans_gone(),
            timeout=30,
            what="PostgreSQL backends did not exit",
        )

    def _orphans_gone(self) -> bool:
        try:
            pid_line = (self.data / "postmaster.pid").read_text().splitlines()[0]
        except (OSError, IndexError):
            return True
        try:
            os.kill(int(pid_line), 0)
        except (ProcessLookupError, ValueError):
            return True
        return False

    def restart(self, *, mode: str = "fast") -> None:
        self.stop(mode=mode)
        self.start()

    def execute(self, sql: str, database: str = "postgres") -> list[tuple[Any, ...]]:
        """Run one statement in autocommit mode; return its rows (if any)."""
        with psycopg.connect(self.url(database), autocommit=True, connect_timeout=5) as connection:
            cursor = connection.execute(sql.encode())
            return list(cursor.fetchall()) if cursor.description else []

    def remove(self) -> None:
        self.stop(mode="immediate")
        shutil.rmtree(self.directory, ignore_errors=True)


def _suite_alive(pid: str) -> bool:
    try:
        return b"tests.chaos" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def sweep_stale_instances(scratch_root: Path) -> None:
    """Remove the server data of earlier runs whose suite is gone (killed); their logs stay."""
    for directory in CLICKHOUSE_HOME.glob(f"{INSTANCE_PREFIX}*"):
        owner = directory.name.removeprefix(INSTANCE_PREFIX)
        if owner.isdigit() and not _suite_alive(owner):
            shutil.rmtree(directory, ignore_errors=True)
    for directory in scratch_root.glob(f"{SCRATCH_PREFIX}*-*"):
        owner = directory.name.removeprefix(SCRATCH_PREFIX).split("-", 1)[0]
        if owner.isdigit() and not _suite_alive(owner):
            shutil.rmtree(directory / "postgres", ignore_errors=True)
