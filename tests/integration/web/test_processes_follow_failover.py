"""The real site (gunicorn) and Celery worker, given both hosts of a PostgreSQL pair, follow a failover.

`test_database_failover` shows that Django's connection settings can reach the
promoted standby; this runs the processes as production does, with nothing
closing their connections by hand, and checks that each of them writes to
whichever server took over.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from tests.chaos.servers import PostgresPair, ScratchPostgres
from tests.support.http import answers, http_post_json
from tests.support.postgres_pair import running_pair
from tests.support.processes import Children
from tests.support.project import ROOT, production_env
from tests.support.smtp import Inbox
from tests.support.waiting import RedisServer, free_port, running_redis, wait_until
from webapp.users.services import WELCOME_SUBJECT

pytestmark = pytest.mark.slow

DATABASE = "diehard"
# Each process names its connections, so the servers can tell whose they are.
SITE, WORKER = "site", "worker"
# As the Procfile starts them, but with one gunicorn worker of one thread:
# every request is served on the same thread, so the connection it keeps
# (CONN_MAX_AGE) is the one the failover breaks.
SERVE = ["manage.py", "serve", "--workers", "1", "--threads", "1"]
CELERY_WORKER = ["-m", "celery", "-A", "webapp.config", "worker", "--concurrency", "1", "-l", "INFO"]


@dataclass
class Processes:
    """The site and the worker, running against the pair; where the site listens and where they log."""

    children: Children
    site_url: str
    logs: list[Path]

    def alive(self) -> bool:
        """Whether neither has exited; fails with their logs if one has."""
        for process in self.children.processes:
            if process.poll() is not None:
                raise AssertionError(f"{process.args!r} exited with {process.returncode}:\n{self.output()}")
        return True

    def output(self) -> str:
        """The end of what each process wrote so far."""
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}" for log in self.logs)


def environment(
    database_url: str, *, application_name: str, redis: RedisServer, smtp_port: int, home: Path
) -> dict[str, str]:
    """Production mode, no .env, pointed at the pair, a private Redis and the test's SMTP server."""
    return production_env(
        ALLOWED_HOSTS="127.0.0.1",
        SECURE_SSL_REDIRECT="false",
        DATABASE_URL=f"{database_url}&application_name={application_name}",
        REDIS_URL=redis.url,
        EMAIL_HOST="127.0.0.1",
        EMAIL_PORT=str(smtp_port),
        EMAIL_USE_TLS="false",
        # gunicorn's and Celery's files in the test's own directory, not the machine's.
        HOME=str(home),
        XDG_RUNTIME_DIR=str(home),
    )


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[PostgresPair]:
    """A primary with a synchronous standby, holding the site's schema (migrated through both hosts)."""
    with running_pair() as pair:
        pair.primary.execute(f"CREATE DATABASE {DATABASE}")
        env = production_env(DATABASE_URL=pair.url(DATABASE), HOME=str(tmp_path))
        migrate = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--no-input"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert migrate.returncode == 0, migrate.stdout[-2000:] + migrate.stderr[-2000:]
        yield pair


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """The processes' broker and cache, nobody else's."""
    directory = tmp_path / "redis"
    directory.mkdir()
    with running_redis(directory) as server:
        yield server


@pytest.fixture
def mailbox() -> Iterator[tuple[Inbox, int]]:
    """A real SMTP server the worker delivers to, and its port."""
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield inbox, controller.port
    finally:
        controller.stop()


@pytest.fixture
def processes(
    pair: PostgresPair, redis_server: RedisServer, mailbox: tuple[Inbox, int], tmp_path: Path
) -> Iterator[Processes]:
    """`manage.py serve` (gunicorn) and a Celery worker, as the Procfile starts them, until the test ends."""
    _, smtp_port = mailbox
    database_url = pair.url(DATABASE)
    children = Children()
    port = free_port()
    site_log, worker_log = tmp_path / "site.log", tmp_path / "worker.log"
    running = Processes(children, f"http://127.0.0.1:{port}", [site_log, worker_log])
    try:
        children.spawn(
            [sys.executable, *SERVE, "--bind", f"127.0.0.1:{port}"],
            log=site_log,
            env=environment(
                database_url, application_name=SITE, redis=redis_server, smtp_port=smtp_port, home=tmp_path
            ),
            cwd=ROOT,
        )
        children.spawn(
            [sys.executable, *CELERY_WORKER],
            log=worker_log,
            env=environment(
                database_url, application_name=WORKER, redis=redis_server, smtp_port=smtp_port, home=tmp_path
            ),
            cwd=ROOT,
        )
        schema = f"{running.site_url}/api/schema/"
        wait_until(lambda: running.alive() and answers(schema), timeout=90, interval=0.2)
        yield running
    finally:
        groups = [process.pid for process in children.processes]
        children.stop_all(grace=10)
        # gunicorn's workers and Celery's pool processes live in their leader's group.
        for group in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)


def sign_up(site_url: str, email: str) -> int:
    """POST a sign-up to the site's API; the status it answers."""
    body = {"email": email, "password": "c0rrect-horse-battery", "first_name": "Al", "last_name": "Powell"}
    return http_post_json(f"{site_url}/api/users/", body, timeout=30)[0]


def welcomed(inbox: Inbox, address: str) -> bool:
    """Whether the welcome e-mail to `address` reached the SMTP server."""
    delivered = zip(list(inbox.recipients), list(inbox.messages), strict=False)
    return any(address in to and message["Subject"] == WELCOME_SUBJECT for to, message in delivered)


def wait_for_welcome(inbox: Inbox, address: str, running: Processes, *, timeout: float) -> None:
    try:
        wait_until(lambda: running.alive() and welcomed(inbox, address), timeout=timeout, interval=0.1)
    except AssertionError as error:
        raise AssertionError(f"no welcome e-mail to {address}: {error}\n{running.output()}") from error


def connections_of(server: ScratchPostgres, application_name: str) -> int:
    """How many sessions a process (by its connections' name) has open on `server`."""
    query = f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{application_name}'"
    rows = server.execute(query)
    return int(rows[0][0])


def count(server: ScratchPostgres, query: str) -> int:
    return int(server.execute(query, DATABASE)[0][0])


def test_the_site_and_the_worker_write_to_the_promoted_standby_after_the_primary_dies(
    pair: PostgresPair, processes: Processes, mailbox: tuple[Inbox, int]
) -> None:
    inbox, _ = mailbox
    assert sign_up(processes.site_url, "before@example.com") == 201, processes.output()
    wait_for_welcome(inbox, "before@example.com", processes, timeout=90)
    # The site's thread kept its connection to the primary: the failover breaks it under the site's feet.
    assert connections_of(pair.primary, SITE) >= 1

    pair.fail_over()

    # The very first request succeeds, no retry: CONN_HEALTH_CHECKS makes Django
    # run `SELECT 1` on a kept connection before a request's first query, find
    # it dead and reconnect; libpq then finds the old primary refusing and
    # keeps the promoted standby, the only host that takes writes.
    assert sign_up(processes.site_url, "after@example.com") == 201, processes.output()
    assert count(pair.standby, "SELECT count(*) FROM users_user WHERE email = 'after@example.com'") == 1
    # Celery's Django fix-up closes the worker's connection around every task,
    # so the task that sends this e-mail connects afresh, to the promoted standby.
    wait_for_welcome(inbox, "after@example.com", processes, timeout=60)
    # The worker deletes each sent message's row there: it wrote to the new primary too.
    wait_until(lambda: count(pair.standby, "SELECT count(*) FROM mail_outgoingemail") == 0, timeout=30)
