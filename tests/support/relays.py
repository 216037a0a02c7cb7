"""Relays as real subprocesses against the test outbox and the test run's ClickHouse database."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from relay.core import archive
from relay.core.clickhouse import ClickHouseSink
from relay.core.doorbell import Doorbell
from relay.core.forwarder import Attempts, Forwarder, ForwarderConfig
from relay.core.outbox import OutboxQueries, PostgresOutbox
from relay.core.retry import Backoff
from relay.ops.metrics import RelayMetrics
from relay.ops.status import RelayStatus
from relay.ops.telemetry import Telemetry
from tests.support.clickhouse import ClickHouse
from tests.support.faulty_relay import FAULT_VARIABLE
from tests.support.outbox_tables import Outbox
from tests.support.project import ROOT
from tests.support.waiting import free_port, wait_until


@dataclass
class RelayProcess:
    """`python -m relay` running as a subprocess, with its log in a file."""

    env: dict[str, str]
    log_path: Path
    port: int
    process: subprocess.Popen[bytes] = field(init=False)

    def start(self, *, wait: bool = True) -> RelayProcess:
        """Start the process and (unless told not to) wait until its HTTP endpoint answers.

        With `DIE_HARD_FAULT` in its environment it runs the test-only faulty relay.
        """
        log_file = self.log_path.open("ab")
        module = "tests.support.faulty_relay" if FAULT_VARIABLE in self.env else "relay"
        self.process = subprocess.Popen(
            [sys.executable, "-m", module], cwd=ROOT, env=self.env, stdout=log_file, stderr=log_file
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

    def status(self) -> dict[str, Any]:
        """The `/status` document."""
        document: dict[str, Any] = json.loads(self.get("/status")[1])
        return document

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

    def log_events(self, event: str) -> list[dict[str, Any]]:
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
        # Tests reconcile right after delivering; the one about settling sets its own.
        "RELAY_RECONCILE_SETTLE": "0",
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
    def summary(self) -> dict[str, Any]:
        """The JSON object on the last line of stdout."""
        document: dict[str, Any] = json.loads(self.stdout.strip().splitlines()[-1])
        return document


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

    def start(*, wait: bool = True, fault: str | None = None, **settings: object) -> RelayProcess:
        port = free_port()
        env = relay_environment(outbox, clickhouse, RELAY_HTTP_PORT=port, **settings)
        if fault is not None:
            env[FAULT_VARIABLE] = fault
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


async def deliver_one_batch(outbox: Outbox, clickhouse: ClickHouse) -> int:
    """Run one batch through a forwarder in this process (where Sentry can watch); return its size."""
    pool = await asyncpg.create_pool(outbox.url, min_size=1, max_size=1)
    try:
        async with aiohttp.ClientSession() as session:
            forwarder = Forwarder(
                name="forwarder-test",
                outbox=PostgresOutbox(pool, OutboxQueries(timestamp_precision=0)),
                sink=ClickHouseSink(
                    session,
                    url=clickhouse.url,
                    user=clickhouse.user,
                    password=clickhouse.password,
                    database=clickhouse.database,
                    timeout=10,
                ),
                config=ForwarderConfig(
                    batch_size=100,
                    max_bytes=1024 * 1024,
                    poll_interval=1,
                    recheck_interval=0.01,
                    quiet_period=0.1,
                    backoff=Backoff(initial=0.1, maximum=1),
                ),
                doorbell=Doorbell(),
                observer=Telemetry(metrics=RelayMetrics(), status=RelayStatus()),
            )
            done = await forwarder.deliver_batch(Attempts(limit=100, max_bytes=1024 * 1024), batch_id="")
            return done.events
    finally:
        await pool.close()
