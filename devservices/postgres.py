"""PostgreSQL for the site: a Debian cluster (`pg_ctlcluster`), the database and the application's roles.

A server that already answers is used as it is. Otherwise the Debian cluster
configured for the port is started (one is created when there is none), and
`.services/postgres/started-by-services` remembers which, so that `down`
stops it and nothing else.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from devservices import packages
from devservices.process import HOST, ServiceError, say, wait_for, warn
from devservices.settings import SERVICES

SERVER_VERSIONS = Path("/usr/lib/postgresql")
# The site's and the relay's own roles (least privilege): LOGIN, nothing else.
# `manage.py database_grants` (run by `make migrate`) gives them their rights
# on the tables; point DATABASE_URL and RELAY_DATABASE_URL at them to use them.
APP_ROLES = ("diehard_web", "diehard_relay")


def as_root(argv: Sequence[str]) -> list[str]:
    """`argv` run as root: directly when we are root, through sudo otherwise."""
    if os.geteuid() == 0:
        return list(argv)
    if shutil.which("sudo"):
        return ["sudo", *argv]
    raise ServiceError(f"need root for: {' '.join(argv)}")


def as_postgres(argv: Sequence[str]) -> list[str]:
    """`argv` run as the postgres OS user (peer authentication on the socket)."""
    try:
        if pwd.getpwuid(os.geteuid()).pw_name == "postgres":
            return list(argv)
    except KeyError:  # a user id without an account
        pass
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    if shutil.which("sudo"):
        return ["sudo", "-u", "postgres", *argv]
    raise ServiceError(f"cannot run as the postgres user: {' '.join(argv)}")


def cluster_on_port(listing: str, port: int) -> tuple[str, str] | None:
    """(version, name) of the cluster `pg_lsclusters --no-header` lists on `port`, if one is."""
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == str(port):
            return fields[0], fields[1]
    return None


def newest_version(directory: Path = SERVER_VERSIONS) -> str | None:
    """The newest PostgreSQL server version installed (Debian's layout: /usr/lib/postgresql/VERSION)."""
    versions = [path.name for path in directory.glob("*") if path.name.isdigit()]
    return max(versions, key=int, default=None)


def _run(argv: Sequence[str], *, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False, cwd="/")


@dataclass(frozen=True)
class Postgres:
    """The server on 127.0.0.1:`port`, reached as `user`; `database` is the site's."""

    port: int
    user: str
    database: str
    directory: Path = SERVICES / "postgres"

    @property
    def marker(self) -> Path:
        """Holds "<version> <cluster>" of the cluster `up` started."""
        return self.directory / "started-by-services"

    def answers(self) -> bool:
        if shutil.which("pg_isready") is None:
            return False
        return _run(["pg_isready", "-q", "-h", HOST, "-p", str(self.port)]).returncode == 0

    def psql(self, sql: str, *variables: str, database: str = "postgres") -> subprocess.CompletedProcess[str]:
        """Run `sql` (with psql's `:'name'` variables, given as "name=value") as `user` over TCP."""
        options = [arg for variable in variables for arg in ("-v", variable)]
        return _run(
            [
                *("psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-h", HOST, "-p", str(self.port)),
                *("-U", self.user, "-d", database, *options),
            ],
            stdin=sql,
        )

    def _as_postgres_psql(self, sql: str, *arguments: str) -> subprocess.CompletedProcess[str]:
        """Run `sql` as the postgres OS user, on the socket (it may log in when `user` cannot)."""
        return _run(
            as_postgres(
                ["psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-p", str(self.port), *arguments]
            ),
            stdin=sql,
        )

    def up(self) -> None:
        """Start the server unless it answers; then make sure of the login, the database and the roles."""
        if self.answers():
            say(f"postgres: already running on {HOST}:{self.port}")
        else:
            self._start()
            say(f"postgres: started on {HOST}:{self.port}")
        self._ensure_access()
        self._ensure_database()
        self._ensure_roles()

    def _start(self) -> None:
        if shutil.which("pg_lsclusters") is None or shutil.which("psql") is None:
            say("postgres: not installed, installing the Debian package")
            packages.install("postgresql")
            if self.answers():
                say(f"postgres: the package started its cluster on {HOST}:{self.port}")
                return
        listing = _run(["pg_lsclusters", "--no-header"]).stdout
        cluster = cluster_on_port(listing, self.port)
        if cluster is None and listing.strip():
            print(_run(["pg_lsclusters"]).stdout, file=sys.stderr, end="")
            raise ServiceError(
                f"postgres: no cluster is configured for port {self.port}"
                " (set POSTGRES_PORT to one of the ports above)"
            )
        if cluster is None:
            version = newest_version()
            if version is None:
                raise ServiceError(f"postgres: no PostgreSQL server version found under {SERVER_VERSIONS}")
            say(f"postgres: creating cluster {version}/main on port {self.port}")
            subprocess.run(
                as_root(["pg_createcluster", version, "main", "--port", str(self.port)]), check=True
            )
            cluster = (version, "main")
        version, name = cluster
        say(f"postgres: starting cluster {version}/{name}")
        subprocess.run(
            as_root(["pg_ctlcluster", "--skip-systemctl-redirect", version, name, "start"]), check=True
        )
        self.directory.mkdir(parents=True, exist_ok=True)
        self.marker.write_text(f"{version} {name}\n")
        if not wait_for(self.answers, 30):
            raise ServiceError(
                f"postgres: cluster {version}/{name} does not answer on {HOST}:{self.port}"
                " (see /var/log/postgresql/)"
            )

    def _ensure_access(self) -> None:
        """Let `user`@127.0.0.1 log in without a password and create databases, as the default URL expects.

        Trust is granted to that user alone, for every database: it may create
        databases anyway, and the project's are many (`postgres`, where psql,
        createdb, Django's test runner and the benchmarks connect first, the
        site's, Django's test database, and the benchmarks' scratch databases,
        named after each run's process id: `scratch_name` in benchmarks/scratch.py).
        """
        error = self.psql("SELECT 1").stderr.strip()
        if not error:
            return
        if f'role "{self.user}" does not exist' in error:
            say(f"postgres: creating role {self.user} (LOGIN CREATEDB)")
            self._as_postgres_psql('CREATE ROLE :"role" LOGIN CREATEDB', "-v", f"role={self.user}")
        elif "password" in error or "no pg_hba.conf entry" in error:
            hba = self._as_postgres_psql("SHOW hba_file").stdout.strip()
            lines = [
                "# added by `make services`: passwordless local TCP for development",
                f"host    all    {self.user}    127.0.0.1/32    trust",
                f"host    all    {self.user}    ::1/128         trust",
            ]
            # A system-wide file is edited: say so loudly, with how to undo it.
            warn(
                f"postgres: {self.user} could not log in on {HOST}:{self.port}; adding two lines at the top"
                f" of {hba}: '{lines[1]}' and the same for ::1/128"
                " (passwordless TCP logins for development; delete them to undo)"
            )
            subprocess.run(as_root(["sed", "-i", "1i\\\n" + "\\\n".join(lines), hba]), check=True)
            self._as_postgres_psql("SELECT pg_reload_conf()")
            time.sleep(0.5)
        else:
            raise ServiceError(f"postgres: cannot connect as {self.user}@{HOST}:{self.port}: {error}")
        error = self.psql("SELECT 1").stderr.strip()
        if error:
            raise ServiceError(f"postgres: still cannot connect as {self.user}@{HOST}:{self.port}: {error}")

    def _ensure_database(self) -> None:
        found = self.psql("SELECT 1 FROM pg_database WHERE datname = :'db'", f"db={self.database}")
        if found.stdout.strip() == "1":
            say(f"postgres: database {self.database} exists")
            return
        done = self.psql('CREATE DATABASE :"db"', f"db={self.database}")
        if done.returncode != 0:
            raise ServiceError(f"postgres: could not create database {self.database}: {done.stderr.strip()}")
        say(f"postgres: created database {self.database}")

    def _ensure_roles(self) -> None:
        for role in APP_ROLES:
            found = self.psql("SELECT 1 FROM pg_roles WHERE rolname = :'role'", f"role={role}")
            if found.stdout.strip() == "1":
                continue
            done = self.psql(
                'CREATE ROLE :"role" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT', f"role={role}"
            )
            if done.returncode != 0:
                raise ServiceError(f"postgres: could not create role {role}: {done.stderr.strip()}")
            say(f"postgres: created role {role}")

    def down(self) -> None:
        """Stop the cluster `up` started; a server it did not start is left alone."""
        try:
            version, name = self.marker.read_text().split()
        except (OSError, ValueError):
            say("postgres: not started here, left alone")
            return
        say(f"postgres: stopping cluster {version}/{name}")
        subprocess.run(
            as_root(["pg_ctlcluster", "--skip-systemctl-redirect", version, name, "stop"]), check=False
        )
        self.marker.unlink(missing_ok=True)
