"""Least privilege: the relay and the site each get their own PostgreSQL role and ClickHouse user.

ClickHouse here is a private 18.16 server started from the project's own
`scripts/clickhouse/users.xml` (the shared one may run an older users file):
`default` administers, `diehard_relay` inserts and reads without DDL,
`diehard_reader` only reads.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from django.core.management import call_command

from devservices.settings import clickhouse_home
from relay import app, commands
from relay.settings import RelaySettings
from shared.outbox import DEAD_LETTER_TABLE, OUTBOX_TABLE
from tests.support.clickhouse import ClickHouse
from tests.support.outbox_tables import Outbox
from tests.support.project import ROOT, production_env
from tests.support.relays import RelayProcess
from tests.support.waiting import free_port, running_redis, wait_until

pytestmark = pytest.mark.slow

RELAY_USER = "diehard_relay"
READER_USER = "diehard_reader"
WEB_ROLE = "diehard_web"
RELAY_ROLE = "diehard_relay"


@pytest.fixture(scope="module")
def private_clickhouse() -> Iterator[str]:
    """A ClickHouse server of this module's own, with the project's users; its HTTP URL."""
    name = f"privileges-{uuid.uuid4().hex[:8]}"
    http_port, tcp_port = free_port(), free_port()
    command = [sys.executable, "-m", "devservices", "clickhouse"]
    subprocess.run(
        [*command, "start", "--name", name, "--http-port", str(http_port), "--tcp-port", str(tcp_port)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    try:
        yield f"http://127.0.0.1:{http_port}/"
    finally:
        subprocess.run(
            [*command, "stop", "--name", name], cwd=ROOT, check=False, capture_output=True, timeout=60
        )
        shutil.rmtree(clickhouse_home(os.environ) / name, ignore_errors=True)


@pytest.fixture
def migrated(private_clickhouse: str) -> str:
    """A fresh database on the private server with `event_log`, created by `relay migrate` as admin."""
    database = f"privileges_{uuid.uuid4().hex[:8]}"
    address = urlsplit(private_clickhouse)
    settings = RelaySettings(
        _env_file=None,
        clickhouse_host=address.hostname or "127.0.0.1",
        clickhouse_port=address.port or 8123,
        clickhouse_database=database,
        # The relay's own user could not create anything: migrations run as the admin.
        clickhouse_user=RELAY_USER,
        clickhouse_admin_user="default",
    )
    assert asyncio.run(commands.migrate(settings)) == app.EXIT_OK
    return database


def as_user(url: str, user: str, database: str = "default") -> ClickHouse:
    return ClickHouse(url, database, user)


def refused(client: ClickHouse, sql: str) -> str:
    """The error ClickHouse answers `sql` with; fails if it is accepted."""
    with pytest.raises(AssertionError, match="ClickHouse refused") as error:
        client.query(sql)
    return str(error.value)


@pytest.mark.parametrize(
    "statement",
    [
        "DROP TABLE {db}.event_log",
        "ALTER TABLE {db}.event_log DELETE WHERE 1",
        "ALTER TABLE {db}.event_log ADD COLUMN extra String",
        "CREATE TABLE {db}.other (x UInt8) ENGINE = Memory",
        "TRUNCATE TABLE {db}.event_log",
    ],
)
def test_the_relays_clickhouse_user_cannot_change_or_drop_the_table(
    private_clickhouse: str, migrated: str, statement: str
) -> None:
    relay = as_user(private_clickhouse, RELAY_USER)

    error = refused(relay, statement.format(db=migrated))

    assert "prohibited" in error
    assert as_user(private_clickhouse, "default").value(f"EXISTS TABLE {migrated}.event_log") == "1"


def test_the_relays_clickhouse_user_can_insert_and_read(private_clickhouse: str, migrated: str) -> None:
    relay = as_user(private_clickhouse, RELAY_USER, migrated)

    relay.query(
        "INSERT INTO event_log FORMAT TSV",
        data=f"{uuid.uuid4()}\tuser_created\t2026-11-26 10:00:00\tLocal\t{{}}\t1\n".encode(),
    )

    assert relay.value("SELECT count() FROM event_log") == "1"


def test_the_readers_clickhouse_user_can_only_read(private_clickhouse: str, migrated: str) -> None:
    reader = as_user(private_clickhouse, READER_USER, migrated)

    assert reader.value("SELECT count() FROM event_log_dedup") == "0"
    assert "readonly" in refused(
        reader,
        f"INSERT INTO event_log VALUES ('{uuid.uuid4()}', 'x', '2026-11-26 10:00:00', 'Local', '{{}}', 1)",
    )
    assert "readonly" in refused(reader, "DROP TABLE event_log")


def role_url(outbox: Outbox, role: str) -> str:
    """The test database's URL, logging in as `role` (no password on the local server)."""
    parts = urlsplit(outbox.url)
    return urlunsplit(parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port or 5432}"))


@pytest.fixture
def granted(outbox: Outbox) -> Outbox:
    """The test database with the web and relay roles granted their privileges."""
    call_command("database_grants")
    return outbox


def denied(url: str, statement: str) -> None:
    with (
        psycopg.connect(url, autocommit=True) as connection,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        connection.execute(statement)


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT password FROM users_user",
        f"UPDATE {OUTBOX_TABLE} SET event_context = '{{}}'",
        f"INSERT INTO {OUTBOX_TABLE} (event_type, environment, event_context) VALUES ('x', 'Local', '{{}}')",
        f"UPDATE {DEAD_LETTER_TABLE} SET error = ''",
        "DELETE FROM users_user",
    ],
)
def test_the_relays_postgres_role_reaches_nothing_beyond_the_outbox(granted: Outbox, statement: str) -> None:
    denied(role_url(granted, RELAY_ROLE), statement)


@pytest.mark.parametrize("role", [RELAY_ROLE, WEB_ROLE])
def test_neither_application_role_can_change_the_schema(granted: Outbox, role: str) -> None:
    with psycopg.connect(role_url(granted, role), autocommit=True) as connection:
        for statement in (
            f"DROP TABLE {OUTBOX_TABLE}",
            f"ALTER TABLE {OUTBOX_TABLE} ADD COLUMN extra text",
            "CREATE TABLE public.extra (x int)",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                connection.execute(statement)


def test_the_web_role_writes_users_and_events(granted: Outbox) -> None:
    with psycopg.connect(role_url(granted, WEB_ROLE), autocommit=True) as connection:
        connection.execute(
            "INSERT INTO users_user (password, email, first_name, last_name, is_active, is_staff,"
            " is_superuser, date_joined)"
            " VALUES ('!', 'ada@example.com', 'Ada', 'L', true, false, false, now())"
        )
        connection.execute(
            f"INSERT INTO {OUTBOX_TABLE} (event_type, environment, event_context)"
            " VALUES ('x', 'Local', '{}')"
        )

    assert granted.pending() == 1


def test_the_relay_delivers_and_dead_letters_with_only_its_own_role_and_user(
    granted: Outbox, private_clickhouse: str, migrated: str, tmp_path: Path
) -> None:
    good = granted.produce(5)
    [poison] = granted.produce(1, metadata_version=-1)  # ClickHouse refuses the row
    address = urlsplit(private_clickhouse)
    relay = RelayProcess(
        env={
            **os.environ,
            "DIE_HARD_ENV_FILE": os.devnull,
            "DATABASE_URL": granted.url,
            # Its own role, as a deployment would configure it; not the owner's.
            "RELAY_DATABASE_URL": role_url(granted, RELAY_ROLE),
            "CLICKHOUSE_HOST": address.hostname or "127.0.0.1",
            "CLICKHOUSE_PORT": str(address.port),
            "CLICKHOUSE_USER": RELAY_USER,
            "CLICKHOUSE_DATABASE": migrated,
            "RELAY_HTTP_PORT": str(free_port()),
            "RELAY_POLL_INTERVAL": "0.2",
            "LOG_FORMAT": "json",
            "DEBUG": "false",  # production: it checks its rights at start
        },
        log_path=tmp_path / "relay.log",
        port=0,
    )
    relay.port = int(relay.env["RELAY_HTTP_PORT"])
    relay.start()
    try:
        reader = as_user(private_clickhouse, READER_USER, migrated)
        wait_until(lambda: reader.value("SELECT count() FROM event_log_dedup") == "5", timeout=30)
        wait_until(granted.dead_letters, timeout=30)
    finally:
        assert relay.stop() == 0, relay.log()[-3000:]
    assert granted.pending() == 0
    assert [event_id for event_id, _, _ in granted.dead_letters()] == [poison]
    delivered = reader.rows("SELECT toString(event_id) FROM event_log_dedup ORDER BY event_id")
    assert sorted(row[0] for row in delivered) == sorted(good)
    assert relay.log_events("running_with_excess_privileges") == []
    assert relay.log_events("privileges_unchecked") == []


def both(warnings: list[dict[str, object]]) -> list[dict[str, object]] | None:
    return warnings if len(warnings) == 2 else None


def test_the_relay_warns_at_start_when_it_could_change_either_schema(
    granted: Outbox, private_clickhouse: str, migrated: str, tmp_path: Path
) -> None:
    address = urlsplit(private_clickhouse)
    relay = RelayProcess(
        env={
            **os.environ,
            "DIE_HARD_ENV_FILE": os.devnull,
            "DATABASE_URL": granted.url,  # the tables' owner
            "CLICKHOUSE_HOST": address.hostname or "127.0.0.1",
            "CLICKHOUSE_PORT": str(address.port),
            "CLICKHOUSE_USER": "default",
            "CLICKHOUSE_DATABASE": migrated,
            "RELAY_HTTP_PORT": str(free_port()),
            "LOG_FORMAT": "json",
            "DEBUG": "false",
        },
        log_path=tmp_path / "relay.log",
        port=0,
    )
    relay.port = int(relay.env["RELAY_HTTP_PORT"])
    relay.start()
    try:
        warnings = wait_until(lambda: both(relay.log_events("running_with_excess_privileges")), timeout=30)
    finally:
        assert relay.stop() == 0, relay.log()[-3000:]

    assert {line["server"] for line in warnings} == {"postgres", "clickhouse"}


def json_lines_until(
    command: list[str], env: dict[str, str], done: Callable[[dict[str, object]], bool]
) -> list[dict[str, object]]:
    """Run `command` from the project's root until a JSON log line `done` accepts (60 s at most),
    then stop it; its JSON log lines up to then."""
    lines: list[dict[str, object]] = []
    with subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        # A process that never gets there would otherwise keep its output open for ever.
        deadline = threading.Timer(60, process.kill)
        deadline.start()
        try:
            assert process.stdout is not None
            for line in process.stdout:
                if line.startswith("{"):
                    lines.append(json.loads(line))
                    if done(lines[-1]):
                        break
        finally:
            deadline.cancel()
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
    return lines


def serve_until_started(env: dict[str, str], tmp_path: Path) -> list[dict[str, object]]:
    """Start the site in production mode, stop it once it serves; its JSON log lines up to then."""
    return json_lines_until(
        [sys.executable, "manage.py", "serve", "--bind", f"127.0.0.1:{free_port()}", "--workers", "1"],
        production_env(HOME=str(tmp_path), XDG_RUNTIME_DIR=str(tmp_path), **env),
        lambda line: line.get("event") == "web_serving",
    )


def warnings_of(lines: list[dict[str, object]]) -> set[object]:
    return {line["server"] for line in lines if line.get("event") == "running_with_excess_privileges"}


@pytest.fixture
def as_the_owners(granted: Outbox, private_clickhouse: str) -> dict[str, str]:
    """The settings of a process that connects as the tables' owner and ClickHouse's admin."""
    return {
        "DATABASE_URL": granted.url,  # the tables' owner
        "CLICKHOUSE_PORT": str(urlsplit(private_clickhouse).port),
        "CLICKHOUSE_USER": "default",
    }


def test_the_site_warns_at_start_when_it_could_change_either_schema(
    as_the_owners: dict[str, str], tmp_path: Path
) -> None:
    lines = serve_until_started(as_the_owners, tmp_path)

    assert warnings_of(lines) == {"postgres", "clickhouse"}


def ready(line: dict[str, object]) -> bool:
    return str(line.get("event")).endswith(" ready.")  # Celery's "celery@<host> ready."


def work_until_ready(env: dict[str, str], tmp_path: Path) -> list[dict[str, object]]:
    """Start a Celery worker in production mode, stop it once it is ready; its JSON log lines up to then."""
    command = [
        *(sys.executable, "-m", "celery", "-A", "webapp.config", "worker", "--pool", "solo"),
        *("--without-mingle", "--without-gossip", "--without-heartbeat", "--loglevel", "INFO"),
    ]
    # A broker of its own: the worker takes no one else's tasks.
    with running_redis(tmp_path) as redis:
        lines = json_lines_until(
            command, production_env(HOME=str(tmp_path), REDIS_URL=redis.url, **env), ready
        )
    assert any(ready(line) for line in lines), lines[-5:]
    return lines


def test_the_worker_warns_at_start_when_it_could_change_either_schema(
    as_the_owners: dict[str, str], tmp_path: Path
) -> None:
    lines = work_until_ready(as_the_owners, tmp_path)

    assert warnings_of(lines) == {"postgres", "clickhouse"}
    assert {line["component"] for line in lines if line.get("event") == "running_with_excess_privileges"} == {
        "worker"
    }


def test_the_site_as_its_own_role_and_reader_starts_without_a_warning(
    granted: Outbox, private_clickhouse: str, tmp_path: Path
) -> None:
    address = urlsplit(private_clickhouse)
    lines = serve_until_started(
        {
            "DATABASE_URL": role_url(granted, WEB_ROLE),
            "CLICKHOUSE_PORT": str(address.port),
            "CLICKHOUSE_READER_USER": READER_USER,
        },
        tmp_path,
    )

    assert [line["event"] for line in lines][-1] == "web_serving"
    assert not any(line.get("event") == "privileges_unchecked" for line in lines)
    assert warnings_of(lines) == set()
