"""Fixtures for relay tests: the outbox in Django's test database, relays as real subprocesses."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

import asyncpg
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from relay import archive
from shared.events import Envelope, UserCreated
from shared.outbox import DEAD_LETTER_TABLE, OUTBOX_TABLE
from tests.conftest import ClickHouse
from tests.helpers import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Outbox:
    """The outbox tables of the test database, written and read with plain SQL."""

    url: str

    def connect(self, **kwargs: object) -> psycopg.Connection:
        """A new connection to the test database (autocommit unless told otherwise)."""
        return psycopg.connect(self.url, autocommit=kwargs.pop("autocommit", True), **kwargs)  # type: ignore[arg-type]

    def produce(
        self, count: int, *, connection: psycopg.Connection | None = None, **overrides: object
    ) -> list[str]:
        """Write `count` sign-up events in one transaction; return their event ids."""
        envelopes = [
            Envelope.wrap(
                UserCreated(email=f"person{n}@example.com", first_name="Ada", last_name="Lovelace"),
                environment="Local",
            )
            for n in range(count)
        ]
        rows = [
            (
                str(e.event_id),
                e.event_type,
                overrides.get("event_date_time", e.event_date_time),
                overrides.get("environment", e.environment),
                overrides.get("event_context", e.event_context),
                overrides.get("metadata_version", e.metadata_version),
            )
            for e in envelopes
        ]
        own = connection is None
        connection = connection or self.connect()
        try:
            with (
                connection.cursor() as cursor,
                cursor.copy(
                    f"COPY {OUTBOX_TABLE} (event_id, event_type, event_date_time, environment,"
                    " event_context, metadata_version) FROM STDIN"
                ) as copy,
            ):
                for row in rows:
                    copy.write_row(row)
        finally:
            if own:
                connection.close()
        return [row[0] for row in rows]

    def pending(self) -> int:
        """Events still in the outbox."""
        with self.connect() as connection:
            return connection.execute(f"SELECT count(*) FROM {OUTBOX_TABLE}").fetchone()[0]  # type: ignore[index]

    def dead_letters(self) -> list[tuple[str, str, int]]:
        """(event_id, error, attempts) of every dead letter."""
        with self.connect() as connection:
            rows = connection.execute(f"SELECT event_id::text, error, attempts FROM {DEAD_LETTER_TABLE}")
            return list(rows.fetchall())


@pytest.fixture
def outbox(transactional_db: None) -> Outbox:
    """The test database's outbox, committed for real (relays in other processes see it)."""
    from django.db import connection

    database = connection.settings_dict
    credentials = quote(database["USER"], safe="") + ":" + quote(database["PASSWORD"] or "", safe="")
    address = f"{database['HOST'] or 'localhost'}:{database['PORT'] or 5432}"
    url = f"postgres://{credentials}@{address}/{database['NAME']}"
    return Outbox(url)


@dataclass
class RelayProcess:
    """`python -m relay` running as a subprocess, with its log in a file."""

    env: dict[str, str]
    log_path: Path
    port: int
    process: subprocess.Popen[bytes] = field(init=False)

    def start(self, *, wait: bool = True) -> RelayProcess:
        """Start the process and (unless told not to) wait until its HTTP endpoint answers."""
        log_file = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "relay"], cwd=ROOT, env=self.env, stdout=log_file, stderr=log_file
        )
        log_file.close()
        if wait:
            wait_until(self._answers, timeout=30, interval=0.1)
        return self

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"relay exited with {self.process.returncode}:\n{self.log()[-3000:]}")
        try:
            return self.get("/livez")[0] == 200
        except OSError:
            return False

    def get(self, path: str) -> tuple[int, str]:
        """Status and body of a GET on the relay's HTTP endpoint."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def status(self) -> dict[str, object]:
        """The `/status` document."""
        return json.loads(self.get("/status")[1])

    def metric(self, name: str, **labels: str) -> float:
        """The value of one sample from `/metrics`."""
        for family in text_string_to_metric_families(self.get("/metrics")[1]):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return sample.value
        raise AssertionError(f"no sample {name} {labels}")

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Send a signal and wait for the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        return self.process.wait(timeout=timeout)

    def wait(self, timeout: float = 30) -> int:
        """Wait for the process to end by itself."""
        return self.process.wait(timeout=timeout)

    def log(self) -> str:
        """Everything the relay logged so far."""
        return self.log_path.read_text(errors="replace")

    def log_events(self, event: str) -> list[dict[str, object]]:
        """The JSON log lines whose `event` is the given name."""
        lines = []
        for line in self.log().splitlines():
            if line.startswith("{"):
                record = json.loads(line)
                if record.get("event") == event:
                    lines.append(record)
        return lines


RelayFactory = Callable[..., RelayProcess]


def relay_environment(outbox: Outbox, clickhouse: ClickHouse, **settings: object) -> dict[str, str]:
    """The environment of a relay process pointed at the test databases.

    `settings` are relay knobs by their short name (`batch_size=500` is
    `RELAY_BATCH_SIZE`), or any variable by its upper-case name.
    """
    env = {
        **os.environ,
        "DIE_HARD_ENV_FILE": os.devnull,
        "DATABASE_URL": outbox.url,
        "CLICKHOUSE_HOST": clickhouse.url.split("//")[1].split(":")[0],
        "CLICKHOUSE_PORT": clickhouse.url.rsplit(":", 1)[1].strip("/"),
        "CLICKHOUSE_USER": clickhouse.user,
        "CLICKHOUSE_PASSWORD": clickhouse.password,
        "CLICKHOUSE_DATABASE": clickhouse.database,
        "RELAY_POLL_INTERVAL": "0.5",
        "RELAY_BACKOFF_INITIAL": "0.05",
        "RELAY_BACKOFF_MAX": "0.5",
        "RELAY_STATS_INTERVAL": "0.2",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
    }
    env.update(
        {f"RELAY_{key.upper()}" if not key.isupper() else key: str(value) for key, value in settings.items()}
    )
    return env


@dataclass(frozen=True)
class CommandResult:
    """How a one-shot relay command ended."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def summary(self) -> dict[str, object]:
        """The JSON object on the last line of stdout."""
        return json.loads(self.stdout.strip().splitlines()[-1])


def run_relay_command(
    outbox: Outbox, clickhouse: ClickHouse, *args: str, **settings: object
) -> CommandResult:
    """Run `python -m relay <args>` to its end against the test databases."""
    done = subprocess.run(
        [sys.executable, "-m", "relay", *args],
        cwd=ROOT,
        env=relay_environment(outbox, clickhouse, **settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return CommandResult(done.returncode, done.stdout, done.stderr)


def archive_partitions(outbox: Outbox) -> set[str]:
    """Hourly partitions of the archive that exist now."""
    return set(asyncio.run(_archive_partitions(outbox.url)).values())


async def _archive_partitions(url: str) -> dict[datetime, str]:
    connection = await asyncpg.connect(url)
    try:
        return await archive.hourly_partitions(connection)
    finally:
        await connection.close()


def make_archive_partition(outbox: Outbox, hour: datetime) -> None:
    """Create the archive's partition for one (past) hour, as a relay did then."""
    asyncio.run(_make_partition(outbox.url, hour))


async def _make_partition(url: str, hour: datetime) -> None:
    connection = await asyncpg.connect(url)
    try:
        await archive.create_partition(connection, archive.hour_of(hour))
    finally:
        await connection.close()


@pytest.fixture
def clean_partitions(outbox: Outbox) -> Iterator[None]:
    """Drop the archive's hourly partitions after the test (the test database outlives it)."""
    yield
    with outbox.connect() as connection:
        for name in archive_partitions(outbox):
            connection.execute(f"DROP TABLE {name}")


@pytest.fixture
def start_relay(outbox: Outbox, clickhouse: ClickHouse, tmp_path: Path) -> Iterator[RelayFactory]:
    """Start relays against the test outbox and ClickHouse database; all are stopped afterwards."""
    started: list[RelayProcess] = []

    def start(*, wait: bool = True, **settings: object) -> RelayProcess:
        port = free_port()
        env = relay_environment(outbox, clickhouse, RELAY_HTTP_PORT=port, **settings)
        relay = RelayProcess(env=env, log_path=tmp_path / f"relay-{len(started)}.log", port=port).start(
            wait=wait
        )
        started.append(relay)
        return relay

    yield start
    for relay in started:
        if relay.process.poll() is None:
            relay.process.kill()
            relay.process.wait()


def delivered(clickhouse: ClickHouse) -> int:
    """Rows in `event_log` as stored (duplicates included)."""
    return int(clickhouse.value("SELECT count() FROM event_log"))


def visible(clickhouse: ClickHouse) -> int:
    """Rows in the deduplicated view, what analysts see."""
    return int(clickhouse.value("SELECT count() FROM event_log_dedup"))


def new_event_id() -> str:
    """A fresh event id."""
    return str(uuid.uuid4())
