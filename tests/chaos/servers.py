"""The suite's own servers: a scratch PostgreSQL cluster and a private ClickHouse.

Neither is the machine's: each listens on a free port of its own, keeps its
data in a scratch directory and is a child of the suite (see `processes`), so
the suite may kill, stop and restart them at will.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shlex
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from devservices.postgres import SERVER_VERSIONS, newest_version
from devservices.process import command_line, gone
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
    version = newest_version()
    if version is None:
        raise ServerError(
            f"no PostgreSQL server binaries under {SERVER_VERSIONS}: apt-get install postgresql"
        )
    bindir = SERVER_VERSIONS / version / "bin"
    if not (bindir / "postgres").exists():
        raise ServerError(f"no PostgreSQL server binaries in {bindir}: apt-get install postgresql-{version}")
    return bindir


@dataclass
class ScratchPostgres:
    """A PostgreSQL cluster of the suite's own, created with `initdb`, on a free port."""

    children: Children
    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    bindir: Path = field(default_factory=postgres_bindir)
    # Server settings given on the command line: a base backup never copies
    # them, so a standby cloned from this server does not inherit them.
    settings: dict[str, str] = field(default_factory=dict)

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

    def clone(self, source: ScratchPostgres, *, standby: bool) -> None:
        """Make this cluster a base backup of `source` (`pg_basebackup`), a standby of it if asked.

        `standby=True` writes `standby.signal`: the server then streams from
        `source` (or from whatever `primary_conninfo` in `settings` names).
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        if POSTGRES_ACCOUNT is not None:
            account = pwd.getpwnam(POSTGRES_ACCOUNT)
            os.chown(self.directory, account.pw_uid, account.pw_gid)
        log = self.directory / "basebackup.log"
        done = self.children.spawn(
            [
                self.bindir / "pg_basebackup",
                "--pgdata",
                self.data,
                "--host",
                "127.0.0.1",
                "--port",
                str(source.port),
                "--username",
                "postgres",
                "--wal-method",
                "stream",
                "--checkpoint",
                "fast",
                "--no-sync",
                *(["--write-recovery-conf"] if standby else []),
            ],
            log=log,
            run_as=POSTGRES_ACCOUNT,
            cwd=self.directory,
        ).wait()
        if done != 0:
            raise ServerError(f"pg_basebackup failed: {log.read_text()[-2000:]}")

    def start(self) -> None:
        """Start the postmaster and wait until it accepts connections."""
        self.launch()
        self.wait_ready()

    def wait_ready(self) -> None:
        """Wait until the postmaster accepts connections (any thread)."""
        wait_for(self.accepts_connections, timeout=60, what="PostgreSQL did not accept connections")

    def options(self) -> list[str]:
        """The server's command-line settings (after `-D <data>`)."""
        settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.directory),
            # The OS survives every crash the suite causes, so the page
            # cache keeps what fsync would have forced to disk; commits
            # stay synchronous, so an acknowledged commit is in the WAL.
            "fsync": "off",
            "max_connections": "200",
            "log_min_messages": "warning",
            **self.settings,
        }
        return ["-p", str(self.port), *(f"--{name}={value}" for name, value in settings.items())]

    def launch(self) -> None:
        """Start the postmaster (main thread) without waiting for it."""
        self.process = self.children.spawn(
            [self.bindir / "postgres", "-D", self.data, *self.options()],
            log=self.log,
            run_as=POSTGRES_ACCOUNT,
            cwd=self.directory,
        )

    def start_detached(self) -> None:
        """Start the server with `pg_ctl` so it outlives this process; wait until it accepts connections."""
        done = self.children.spawn(
            [
                self.bindir / "pg_ctl",
                "start",
                "--pgdata",
                self.data,
                "--log",
                self.log,
                "--wait",
                "--timeout",
                "60",
                "--options",
                shlex.join(self.options()),
            ],
            log=self.directory / "pg_ctl.log",
            run_as=POSTGRES_ACCOUNT,
            cwd=self.directory,
        ).wait()
        if done != 0:
            raise ServerError(f"pg_ctl start failed: {self.log.read_text()[-2000:]}")
        self.wait_ready()

    def stop_detached(self, *, mode: str = "fast") -> None:
        """`pg_ctl stop` (`fast`, or `immediate`: a crash) a server started with `start_detached`."""
        self.children.spawn(
            [self.bindir / "pg_ctl", "stop", "--pgdata", self.data, "--mode", mode, "--wait"],
            log=self.directory / "pg_ctl.log",
            run_as=POSTGRES_ACCOUNT,
            cwd=self.directory,
        ).wait()

    def running_detached(self) -> bool:
        """Whether `pg_ctl status` finds the server running."""
        if not (self.data / "PG_VERSION").exists():
            return False
        done = self.children.spawn(
            [self.bindir / "pg_ctl", "status", "--pgdata", self.data],
            log=self.directory / "pg_ctl.log",
            run_as=POSTGRES_ACCOUNT,
            cwd=self.directory,
        ).wait()
        return done == 0

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
        return not pid_line.isdigit() or gone(int(pid_line))

    def kill(self) -> None:
        """SIGKILL the postmaster and every backend at once, as when the machine dies."""
        if self.process is None or self.process.poll() is not None:
            return
        # Every backend, the WAL sender included, is a session of its own
        # (PostgreSQL's children call setsid), so no group signal reaches them.
        # The postmaster is frozen first, so that it forks nothing more; then
        # its children, so that nothing goes out between their kills.
        postmaster = self.process.pid
        os.kill(postmaster, signal.SIGSTOP)
        backends = children_of(postmaster)
        for pid in backends:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        for pid in (postmaster, *backends):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait()

    def promote(self) -> None:
        """`pg_ctl promote`: a standby ends recovery and takes writes; waits until it does."""
        log = self.directory / "promote.log"
        done = self.children.spawn(
            [self.bindir / "pg_ctl", "promote", "--pgdata", self.data, "--wait", "--timeout", "60"],
            log=log,
            run_as=POSTGRES_ACCOUNT,
            cwd=self.directory,
        ).wait()
        if done != 0:
            raise ServerError(f"pg_ctl promote failed: {log.read_text()[-2000:]}")

    def in_recovery(self) -> bool:
        """Whether the server is a standby (read-only, replaying a primary's WAL)."""
        return bool(self.execute("SELECT pg_is_in_recovery()")[0][0])

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


# The standby's name on the primary (`application_name`), as
# `synchronous_standby_names` and `pg_stat_replication` know it.
STANDBY_NAME = "standby"


def children_of(parent: int) -> list[int]:
    """The processes whose parent is `parent` right now (Linux's /proc)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # pid (comm) state ppid ...: comm may hold spaces and parentheses.
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent:
            children.append(int(stat.parent.name))
    return children


def multi_host_url(ports: list[int], database: str) -> str:
    """One URL naming every server: drivers try them in turn and keep the one that takes writes."""
    hosts = ",".join(f"127.0.0.1:{port}" for port in ports)
    return f"postgres://postgres@{hosts}/{database}?target_session_attrs=read-write"


@dataclass
class PostgresPair:
    """A primary and a standby streaming its WAL, synchronously or not; clients are given both."""

    primary: ScratchPostgres
    standby: ScratchPostgres
    synchronous: bool

    @classmethod
    def under(cls, children: Children, directory: Path, *, synchronous: bool) -> PostgresPair:
        """A pair whose clusters live in `directory` (not created yet)."""
        return cls(
            primary=ScratchPostgres(children, directory / "primary"),
            standby=ScratchPostgres(children, directory / "standby"),
            synchronous=synchronous,
        )

    def url(self, database: str = "postgres") -> str:
        """Both servers, the primary first; a driver connects to whichever takes writes."""
        return multi_host_url([self.primary.port, self.standby.port], database)

    def create(self, *, source: ScratchPostgres | None = None, replication_port: int | None = None) -> None:
        """Create and start both (main thread); the primary is `source`'s base backup if given.

        The standby streams from `replication_port` (a proxy in front of the
        primary, say), else from the primary itself. Wait for `streaming()`
        before relying on the standby.
        """
        if source is None:
            self.primary.create()
        else:
            self.primary.clone(source, standby=False)
        # On the command line, not in a file: the standby's base backup must
        # not inherit them (a promoted standby would wait for a standby of its own).
        self.primary.settings["synchronous_commit"] = "on"
        if self.synchronous:
            self.primary.settings["synchronous_standby_names"] = STANDBY_NAME
        self.primary.start()
        self.standby.clone(self.primary, standby=True)
        self.standby.settings["primary_conninfo"] = (
            f"host=127.0.0.1 port={replication_port or self.primary.port} user=postgres"
            f" application_name={STANDBY_NAME}"
        )
        self.standby.start()

    def streaming(self, *, as_configured: bool = True) -> bool:
        """Whether the standby streams from the primary (as its sync standby, for a synchronous pair).

        `as_configured=False`: streaming at all (a promoted primary waits
        for no standby until `resume_synchronous`).
        """
        rows = self.primary.execute(
            f"SELECT state, sync_state FROM pg_stat_replication WHERE application_name = '{STANDBY_NAME}'"
        )
        wanted = {"sync" if self.synchronous else "async"} if as_configured else {"sync", "async"}
        return any(state == "streaming" and sync_state in wanted for state, sync_state in rows)

    def lag_bytes(self) -> int | None:
        """WAL the primary wrote that the standby has not yet flushed, or None if it is not connected."""
        rows = self.primary.execute(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), flush_lsn)::bigint FROM pg_stat_replication"
            f" WHERE application_name = '{STANDBY_NAME}'"
        )
        return int(rows[0][0]) if rows and rows[0][0] is not None else None

    def fail_over(self) -> None:
        """The primary dies (SIGKILL, every process at once); the standby is promoted in its place."""
        self.primary.kill()
        self.standby.promote()

    def rejoin(self) -> None:
        """After `fail_over` (main thread): a fresh standby of the new primary where the old one was.

        It takes the old primary's port, so a URL naming both hosts stays
        right; the roles swap. Wait for `streaming()`, then `resume_synchronous()`.
        """
        old, promoted = self.primary, self.standby
        old.remove()
        fresh = ScratchPostgres(old.children, old.directory, port=old.port, bindir=old.bindir)
        fresh.settings.update(
            {name: value for name, value in promoted.settings.items() if name != "primary_conninfo"}
        )
        fresh.clone(promoted, standby=True)
        _forget_setting(fresh.data / "postgresql.auto.conf", "synchronous_standby_names")
        fresh.settings["primary_conninfo"] = (
            f"host=127.0.0.1 port={promoted.port} user=postgres application_name={STANDBY_NAME}"
        )
        fresh.launch()
        self.primary, self.standby = promoted, fresh

    def resume_synchronous(self) -> None:
        """Make the (promoted) primary wait for its new standby again, without a restart."""
        if self.synchronous:
            # In postgresql.auto.conf, which the next rejoin's base backup drops again.
            self.primary.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{STANDBY_NAME}'")
            self.primary.execute("SELECT pg_reload_conf()")

    def remove(self) -> None:
        self.primary.remove()
        self.standby.remove()


def _forget_setting(path: Path, name: str) -> None:
    """Drop a setting a base backup copied (`ALTER SYSTEM`'s file) from the copy."""
    if path.exists():
        kept = [line for line in path.read_text().splitlines() if not line.strip().startswith(name)]
        path.write_text("\n".join(kept) + "\n")


def _suite_alive(pid: str) -> bool:
    return "tests.chaos" in (command_line(int(pid)) or "")


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
