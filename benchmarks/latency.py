"""End-to-end latency under steady traffic: from a producer's commit to the event being visible in ClickHouse.

Open loop: producer processes publish through the site's own `EventLogClient`,
one event per `transaction.atomic()`, each at the moment a fixed schedule says
(not when the previous one finished), so a stall anywhere shows up in the tail
instead of silently slowing the producers down (no coordinated omission). Each
event is stamped when its transaction has committed.

An observer polls ClickHouse every few milliseconds and records when each
event first becomes visible. It reads a materialized view that ClickHouse
fills within the same INSERT as `event_log` (a `Memory` table, read in
insertion order), so every poll returns only the events it has not seen yet;
the time recorded is when the poll's answer arrived, so each figure is an upper
bound that includes up to one observer period.

The relay runs as a real subprocess (`python -m relay`). Relay configurations
(`VARIANTS`: the shipped defaults, and the relay as it was before follow-up
looks and asynchronous commits, one change at a time) take turns within each
round, rotating which goes first, so load from elsewhere hits them alike.

    python -m benchmarks.latency [--rates 200,1000,5000] [--seconds 3] [--rounds 5] [--producers 4]
                                 [--variants shipped,recheck-50ms,synchronous-commit,before]

The last line printed is one JSON object (`latency_p99_ms_1000`, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

import aiohttp
import asyncpg
import uvloop
from prometheus_client.parser import text_string_to_metric_families

from benchmarks.machine import Machine, cpu_seconds, run_queue
from benchmarks.producers import TRIGGER_BEFORE_SQL
from benchmarks.relay import RELAY_COMMAND, admin_clickhouse, wait_ready
from benchmarks.results import emit
from benchmarks.scratch import ROOT, free_port, migrate, scratch_name, scratch_postgres
from devservices.clickhouse import Installation, Instance
from devservices.process import wait_for
from devservices.settings import clickhouse_home
from relay.core import schema
from relay.settings import RelaySettings
from shared.events import Envelope, UserLoggedIn
from shared.outbox import EVENT_LOG_COLUMNS, OUTBOX_TABLE, WAKE_RELAY, WakeUpDebounce
from shared.settings import load

SCRATCH = scratch_name("diehard_bench_latency")
OBSERVED = "bench_observed"  # the materialized view the observer reads
OBSERVER_PERIOD = 0.005
KEY_SPACE = 1_000_000_000  # user_id = (producer index + 1) * KEY_SPACE + event number
PROBE_PERIOD = 0.05
PROBE_TABLE = "bench_probe"  # shaped like event_log; the probes' inserts land here
# A write transaction like the relay's claim: its commit waits for the WAL flush.
PROBE_TRANSACTION = "INSERT INTO bench_commit_probe DEFAULT VALUES"
WARM_UP = 1.0  # seconds at the start of each run whose events are not counted
# Relay configurations compared side by side: settings on top of the defaults.
VARIANTS: dict[str, dict[str, str]] = {
    "shipped": {},
    # One look per debounce window, the cadence before follow-up looks.
    "recheck-50ms": {"RELAY_RECHECK_INTERVAL": "0.05"},
    # Commits that wait for the WAL flush, as before.
    "synchronous-commit": {"RELAY_SYNCHRONOUS_COMMIT": "true"},
    "before": {"RELAY_RECHECK_INTERVAL": "0.05", "RELAY_SYNCHRONOUS_COMMIT": "true"},
}
PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p999", 99.9), ("max", 100.0))
GIVE_UP_LATE = 1.0  # seconds behind schedule after which a producer skips an event
SUSTAINED = 0.95  # a rate counts as sustained when producers commit this share of the schedule on time


# --- the producer (one light process: asyncio, asyncpg, one event per transaction) ---


@dataclass(frozen=True, slots=True)
class Job:
    """What the producer process publishes: a schedule, and whether it wakes the relay as the site does."""

    start_at: float  # wall clock
    seconds: float
    rate: float  # events per second
    ring: bool  # send `WAKE_RELAY` after commit, debounced (what the site does); off under the old trigger


# The columns the site's EventLogClient writes (its trace headers stay empty here).
INSERT_SQL = (
    f"INSERT INTO {OUTBOX_TABLE} ({', '.join(EVENT_LOG_COLUMNS)})"
    f" VALUES ({', '.join(f'${number}' for number in range(1, len(EVENT_LOG_COLUMNS) + 1))})"
)


async def publish_on_schedule(
    connections: Sequence[asyncpg.Connection], job: Job, debounce: WakeUpDebounce
) -> list[tuple[int, float, float]]:
    """Publish at the schedule's instants over a few connections; the (key, due, committed) stamps.

    A scheduler hands each event to whichever connection is free when it is
    due; when none is, it waits in line and its lateness is recorded.
    """
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    stamps: list[tuple[int, float, float]] = []
    key = int(job.start_at * 1000) * 100_000  # unique per run

    async def writer(connection: asyncpg.Connection) -> None:
        while (item := await queue.get()) is not None:
            number, due = item
            if time.time() - due > GIVE_UP_LATE:
                continue  # waited too long for a free connection: shed, like an event never offered
            envelope = Envelope.wrap(UserLoggedIn(user_id=number, ip_address="10.0.0.1"), environment="Local")
            async with connection.transaction():
                await connection.execute(INSERT_SQL, *envelope.columns().values())
            stamps.append((number, due, time.time()))
            if job.ring and debounce.due():
                await connection.execute(WAKE_RELAY)

    writers = [asyncio.create_task(writer(connection)) for connection in connections]
    period = 1 / job.rate
    due = job.start_at
    end = job.start_at + job.seconds
    number = 0
    while due < end:
        now = time.time()
        if due > now:
            await asyncio.sleep(due - now)
            continue
        while due <= now and due < end:
            if now - due <= GIVE_UP_LATE:
                queue.put_nowait((key + number, due))
            # else: the rate is beyond this producer: shed the event (the achieved rate says so).
            number += 1
            due += period
    for _ in writers:
        queue.put_nowait(None)
    await asyncio.gather(*writers)
    return stamps


async def producer_loop(pipe: Connection, database_url: str, connections: int) -> None:
    """Open the connections, then run every job received and send back its stamps."""
    pool = [await asyncpg.connect(database_url) for _ in range(connections)]
    debounce = WakeUpDebounce()  # one per process, as in a web worker
    try:
        for connection in pool:  # warm up: the prepared statement, the caches
            envelope = Envelope.wrap(UserLoggedIn(user_id=0), environment="Local")
            await connection.execute(INSERT_SQL, *envelope.columns().values())
        pipe.send("ready")
        loop = asyncio.get_running_loop()
        while (job := await loop.run_in_executor(None, pipe.recv)) is not None:
            pipe.send(await publish_on_schedule(pool, job, debounce))
    finally:
        for connection in pool:
            await connection.close()


def producer_main(pipe: Connection, database_url: str, connections: int) -> None:
    """Run in the child process."""
    uvloop.run(producer_loop(pipe, database_url, connections))


class Producer:
    """The producer process, started once and reused for every run."""

    def __init__(self, database_url: str, *, connections: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipe, child = context.Pipe()
        self.process = context.Process(
            target=producer_main, args=(child, database_url, connections), daemon=True
        )
        self.process.start()
        if self.pipe.recv() != "ready":
            raise RuntimeError("the producer process failed to start")

    @property
    def pid(self) -> int:
        """The producer's process id."""
        assert self.process.pid is not None
        return self.process.pid

    def start(self, job: Job) -> None:
        """Hand the process a schedule."""
        self.pipe.send(job)

    def results(self) -> list[tuple[int, float, float]]:
        """Block until the schedule is done; its (event key, due, committed) stamps."""
        stamps: list[tuple[int, float, float]] = self.pipe.recv()
        return stamps

    def close(self) -> None:
        """Stop the process."""
        with contextlib.suppress(OSError):
            self.pipe.send(None)
        self.process.join(timeout=10)
        if self.process.is_alive():
            self.process.kill()


# --- placing processes on cores -------------------------------------------------


def pin(pid: int, cores: set[int]) -> None:
    """Every thread of process `pid` onto `cores` (what `taskset -a -p` does)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(task.name), cores)


@dataclass(frozen=True, slots=True)
class Placement:
    """Where the benchmark's processes run: all on every core, or ClickHouse on a core of its own."""

    name: str
    clickhouse: set[int] | None = None  # None: every core
    rest: set[int] | None = None

    def apply(self, *, clickhouse: int, others: Sequence[int]) -> None:
        """Pin the benchmark's ClickHouse and its other processes (relay, producer, this one)."""
        every = set(range(os.cpu_count() or 1))
        pin(clickhouse, self.clickhouse or every)
        for pid in others:
            pin(pid, self.rest or every)


def placements() -> dict[str, Placement]:
    """`shared`: every process on every core; `pinned`: ClickHouse alone on the last core."""
    cores = os.cpu_count() or 1
    if cores < 2:
        return {"shared": Placement("shared")}
    last = cores - 1
    return {
        "shared": Placement("shared"),
        "pinned": Placement("pinned", clickhouse={last}, rest=set(range(last))),
    }


# --- the observer ------------------------------------------------------------


@dataclass(slots=True)
class Observer:
    """Polls ClickHouse for events it has not seen yet; records when each first appeared."""

    session: aiohttp.ClientSession
    url: str
    seen: dict[int, float] = field(default_factory=dict)
    polls: int = 0
    poll_seconds: float = 0.0

    async def poll(self) -> None:
        """One look: the rows added to the view since the last one, in insertion order."""
        query = (
            f"SELECT key FROM {SCRATCH}.{OBSERVED} LIMIT 1000000000 OFFSET {len(self.seen)}"
            " FORMAT TabSeparated"
        )
        started = time.perf_counter()
        async with self.session.post(self.url, data=query, params={"max_threads": "1"}) as response:
            body = await response.read()
            if response.status != 200:
                raise RuntimeError(f"observer query failed: {body[:200]!r}")
        arrived = time.time()
        self.polls += 1
        self.poll_seconds += time.perf_counter() - started
        for line in body.splitlines():
            self.seen.setdefault(int(line), arrived)

    async def run(self, stop: asyncio.Event) -> None:
        """Poll every `OBSERVER_PERIOD` until `stop` is set."""
        while not stop.is_set():
            started = time.perf_counter()
            await self.poll()
            await asyncio.sleep(max(0.0, OBSERVER_PERIOD - (time.perf_counter() - started)))


# --- probes: how fast the servers answer meanwhile ----------------------------


@dataclass(slots=True)
class Probes:
    """Time both servers beside the relay: a one-row ClickHouse insert, a one-row PostgreSQL commit."""

    session: aiohttp.ClientSession
    clickhouse_url: str
    postgres: asyncpg.Connection
    clickhouse_insert_ms: list[float] = field(default_factory=list)
    postgres_commit_ms: list[float] = field(default_factory=list)
    loop_lag_ms: list[float] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        """Probe both every `PROBE_PERIOD` until `stop` is set."""
        line = "00000000-0000-4000-8000-000000000000\tprobe\t2026-01-01 00:00:00\tLocal\t{}\t1\n"
        while not stop.is_set():
            started = time.perf_counter()
            query = f"INSERT INTO {SCRATCH}.{PROBE_TABLE} FORMAT TabSeparated\n{line}"
            async with self.session.post(self.clickhouse_url, data=query.encode()) as response:
                await response.read()
            self.clickhouse_insert_ms.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            async with self.postgres.transaction():
                await self.postgres.execute(PROBE_TRANSACTION)
            self.postgres_commit_ms.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            await asyncio.sleep(PROBE_PERIOD)
            self.loop_lag_ms.append((time.perf_counter() - started - PROBE_PERIOD) * 1000)


# ClickHouse's own counters (`system.events`), read around each run: how many
# inserts and queries it served, how long its merges ran, whether it held
# inserts back for too many parts.
CLICKHOUSE_COUNTERS = ("InsertQuery", "SelectQuery", "MergesTimeMilliseconds", "DelayedInserts")


async def clickhouse_counters(session: aiohttp.ClientSession, url: str) -> dict[str, float]:
    """The server's cumulative counters named in `CLICKHOUSE_COUNTERS` (0 for one it has not counted yet)."""
    names = ", ".join(f"'{name}'" for name in CLICKHOUSE_COUNTERS)
    query = f"SELECT event, value FROM system.events WHERE event IN ({names}) FORMAT TabSeparated"
    async with session.post(url, data=query) as response:
        text = await response.text()
    counters = dict.fromkeys(CLICKHOUSE_COUNTERS, 0.0)
    for line in text.splitlines():
        name, value = line.split("\t")
        counters[name] = float(value)
    return counters


# --- one run: one relay configuration at one rate ------------------------------


@dataclass(slots=True)
class Run:
    """What one run measured."""

    rate: float
    variant: str
    placement: str
    wake: str
    latencies_ms: list[float]
    schedule_lag_ms: list[float]
    achieved_rate: float
    unseen: int
    relay_cpu: float  # CPU seconds per second of the run
    observer_period_ms: float
    batch_ms: float  # mean time from claiming a batch to committing it (the relay's own histogram)
    events_per_batch: float
    relay_core_wait_ms: float  # mean wait for a core each time the relay became runnable
    clickhouse_insert_ms: list[float]
    postgres_commit_ms: list[float]
    loop_lag_ms: list[float]  # how late the observer's own process wakes up
    clickhouse: dict[str, float]  # how much each of `CLICKHOUSE_COUNTERS` grew during the run


async def reset_clickhouse(settings: RelaySettings) -> None:
    """A fresh scratch database with the relay's schema and the observer's view."""
    async with admin_clickhouse(settings) as client:
        await client.execute(f"DROP DATABASE IF EXISTS {SCRATCH}")
        await schema.apply(client, SCRATCH)
        await client.execute(
            f"CREATE MATERIALIZED VIEW {SCRATCH}.{OBSERVED} ENGINE = Memory"
            f" AS SELECT visitParamExtractUInt(event_context, 'user_id') AS key FROM {SCRATCH}.event_log"
        )
        await client.execute(f"CREATE TABLE {SCRATCH}.{PROBE_TABLE} AS {SCRATCH}.event_log")


class BenchClickHouse:
    """The benchmark's own ClickHouse server (a `devservices` instance), on free ports: it may pin it."""

    def __init__(self, log: Path) -> None:
        self.instance = Instance(
            f"bench-latency-{os.getpid()}",
            free_port(),
            free_port(),
            Installation(clickhouse_home(os.environ)),
            log_level="warning",
        )
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it (a child of this process, logging to the console, which is `log`) and wait for /ping."""
        directory = self.instance.prepare()
        with self.log.open("ab") as log:
            process = self.process = subprocess.Popen(
                self.instance.console_command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=directory,
                env=self.instance.installation.environment(os.environ),
            )
        answers = wait_for(lambda: process.poll() is not None or self.instance.answers(), 120, interval=0.2)
        if process.poll() is not None:
            raise RuntimeError(f"ClickHouse exited; see {self.log}")
        if not answers:
            raise RuntimeError(f"ClickHouse did not answer within 120 s; see {self.log}")

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self.process is not None
        return self.process.pid

    def settings(self, settings: RelaySettings) -> RelaySettings:
        """`settings` pointed at this server."""
        return settings.model_copy(
            update={"clickhouse_host": "127.0.0.1", "clickhouse_port": self.instance.http_port}
        )

    def remove(self) -> None:
        """Stop it and delete its data."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.instance.directory, ignore_errors=True)


async def start_relay(
    url: str, settings: RelaySettings, variant: str
) -> tuple[asyncio.subprocess.Process, int]:
    """The real relay, with its defaults but for the variant's settings."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "CLICKHOUSE_HOST": settings.clickhouse_host,
        "CLICKHOUSE_PORT": str(settings.clickhouse_port),
        "CLICKHOUSE_DATABASE": SCRATCH,
        "RELAY_HTTP_PORT": str(port),
        **VARIANTS[variant],
        "LOG_LEVEL": "WARNING",
        "DIE_HARD_ENV_FILE": os.devnull,
    }
    process = await asyncio.create_subprocess_exec(*RELAY_COMMAND, env=env, cwd=ROOT)
    await wait_ready(port)
    return process, port


async def stop_relay(process: asyncio.subprocess.Process) -> None:
    """SIGTERM and wait."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), timeout=60)


@dataclass(frozen=True, slots=True)
class Setup:
    """What stays the same across runs: the servers, the producer, where things run."""

    settings: RelaySettings
    url: str
    producer: Producer
    clickhouse: BenchClickHouse


async def one_run(
    setup: Setup, *, rate: float, seconds: float, variant: str, placement: Placement, wake: str
) -> Run:
    """Start a relay, publish on schedule for `seconds`, observe every event arrive."""
    settings, url, producer = setup.settings, setup.url, setup.producer
    await reset_clickhouse(settings)
    if wake == "trigger":
        await install_trigger(url)
    process, port = await start_relay(url, settings, variant)
    placement.apply(clickhouse=setup.clickhouse.pid, others=(process.pid, producer.pid, os.getpid()))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    try:
        async with aiohttp.ClientSession() as session:
            observer = Observer(session, settings.clickhouse_url)
            probes = Probes(session, settings.clickhouse_url, await asyncpg.connect(url))
            watching = asyncio.create_task(observer.run(stop))
            probing = asyncio.create_task(probes.run(stop))
            start_at = time.time() + 0.3
            cpu_before = cpu_seconds(process.pid)
            waited_before, slices_before = run_queue(process.pid)
            counters_before = await clickhouse_counters(session, settings.clickhouse_url)
            producer.start(Job(start_at, WARM_UP + seconds, rate, ring=wake == "after-commit"))
            stamps = await loop.run_in_executor(None, producer.results)
            cpu_after = cpu_seconds(process.pid)
            waited_after, slices_after = run_queue(process.pid)
            counters_after = await clickhouse_counters(session, settings.clickhouse_url)
            published = {key for key, _, _ in stamps}
            give_up = time.monotonic() + 10
            while not published <= observer.seen.keys() and time.monotonic() < give_up:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            stop.set()
            await watching
            await probing
            await probes.postgres.close()
            batches = await relay_batches(session, port)
    finally:
        await stop_relay(process)
        PLACEMENTS_SHARED.apply(clickhouse=setup.clickhouse.pid, others=(producer.pid, os.getpid()))
        if wake == "trigger":
            await remove_trigger(url)
    counted = [stamp for stamp in stamps if stamp[1] >= start_at + WARM_UP]  # warm-up excluded
    latencies = [
        (observer.seen[key] - committed) * 1000 for key, _, committed in counted if key in observer.seen
    ]
    lags = [(committed - due) * 1000 for _, due, committed in counted]
    offered_from = start_at + WARM_UP
    last_commit = max((committed for _, _, committed in counted), default=offered_from)
    return Run(
        rate=rate,
        variant=variant,
        placement=placement.name,
        wake=wake,
        latencies_ms=latencies,
        schedule_lag_ms=lags,
        achieved_rate=len(counted) / max(last_commit - offered_from, seconds),
        unseen=len(published - observer.seen.keys()),
        relay_cpu=(cpu_after - cpu_before) / (WARM_UP + seconds),
        observer_period_ms=observer.poll_seconds / max(observer.polls, 1) * 1000 + OBSERVER_PERIOD * 1000,
        batch_ms=batches.seconds / max(batches.count, 1) * 1000,
        relay_core_wait_ms=(waited_after - waited_before) / max(slices_after - slices_before, 1) * 1000,
        clickhouse_insert_ms=probes.clickhouse_insert_ms,
        loop_lag_ms=probes.loop_lag_ms,
        postgres_commit_ms=probes.postgres_commit_ms,
        events_per_batch=batches.events / max(batches.count, 1),
        clickhouse={name: counters_after[name] - counters_before[name] for name in CLICKHOUSE_COUNTERS},
    )


PLACEMENTS_SHARED = Placement("shared")


async def install_trigger(url: str) -> None:
    """The wake-up trigger the outbox had before (for the idle cells' comparison)."""
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(TRIGGER_BEFORE_SQL)
    finally:
        await connection.close()


async def remove_trigger(url: str) -> None:
    """Take the old trigger, its function and its row away again."""
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            f"DROP TRIGGER {OUTBOX_TABLE}_wake_relay ON {OUTBOX_TABLE};"
            f" DROP FUNCTION {OUTBOX_TABLE}_wake_relay(); DROP TABLE {OUTBOX_TABLE}_wakeup"
        )
    finally:
        await connection.close()


@dataclass(frozen=True, slots=True)
class Batches:
    """The relay's own account of its batches (from /metrics)."""

    count: float
    seconds: float
    events: float


async def relay_batches(session: aiohttp.ClientSession, port: int) -> Batches:
    """Read the batch histogram the relay exports."""
    async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
        text = await response.text()
    values = {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels or "le" not in sample.labels
    }
    return Batches(
        count=values.get("relay_batch_duration_seconds_count", 0.0),
        seconds=values.get("relay_batch_duration_seconds_sum", 0.0),
        events=values.get("relay_events_delivered_total", 0.0),
    )


async def clear_outbox(url: str) -> None:
    """Start the next run from an empty outbox, whatever the last one left."""
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(f"DELETE FROM {OUTBOX_TABLE}")
    finally:
        await connection.close()


# --- figures -----------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile; 100 is the maximum."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass(slots=True)
class Cell:
    """Every run of one relay configuration at one rate, placement and wake-up, pooled."""

    rate: float
    variant: str
    placement: str = "shared"
    wake: str = "after-commit"
    runs: list[Run] = field(default_factory=list)

    @property
    def latencies(self) -> list[float]:
        """All latency samples, milliseconds."""
        return [value for run in self.runs for value in run.latencies_ms]

    @property
    def achieved_rate(self) -> float:
        """Median achieved rate over the runs."""
        return sorted(run.achieved_rate for run in self.runs)[len(self.runs) // 2]

    @property
    def on_time(self) -> float:
        """Share of events committed within 10 ms of their due time."""
        lags = [value for run in self.runs for value in run.schedule_lag_ms]
        return sum(lag <= 10 for lag in lags) / max(len(lags), 1)

    @property
    def sustained(self) -> bool:
        """Producers kept the schedule (so the rate was really offered)."""
        return self.achieved_rate >= SUSTAINED * self.rate

    def figures(self) -> dict[str, float]:
        """p50 … max of the pooled latencies, milliseconds."""
        samples = self.latencies
        return {name: percentile(samples, pct) for name, pct in PERCENTILES}


type CellKey = tuple[float, str, str, str]  # rate, variant, placement, wake-up


def report(cells: dict[CellKey, Cell], args: argparse.Namespace, machine: Machine) -> dict[str, object]:
    """Print the tables; return the figures for the JSON line."""
    default = args.variants[0]
    print(
        f"\n{'rate':>6} {'variant':>10} {'placement':>9} {'wake':>12} {'events':>7} {'achieved':>8}"
        + "".join(f" {n:>6}" for n, _ in PERCENTILES)
        + f" {'overhead':>8} {'sched p99':>9} {'relay CPU':>9} {'core wait':>9} {'batch ms':>8}"
        + f" {'ev/batch':>8} {'CH ins p50/p99':>14} {'PG commit':>11} {'CH ins/s':>8} {'merging':>7}"
        + f" {'unseen':>6}"
    )
    out: dict[str, object] = {}
    table = []
    order = {name: index for index, name in enumerate(args.variants)}
    for (rate, variant, placement, wake), cell in sorted(
        cells.items(),
        key=lambda item: (item[0][3] != "after-commit", item[0][0], item[0][2], order[item[0][1]]),
    ):
        figures = cell.figures()
        lags = [value for run in cell.runs for value in run.schedule_lag_ms]
        cpu = sum(run.relay_cpu for run in cell.runs) / len(cell.runs)
        unseen = sum(run.unseen for run in cell.runs)
        batch_ms = sum(run.batch_ms for run in cell.runs) / len(cell.runs)
        per_batch = sum(run.events_per_batch for run in cell.runs) / len(cell.runs)
        core_wait = sum(run.relay_core_wait_ms for run in cell.runs) / len(cell.runs)
        ch = [value for run in cell.runs for value in run.clickhouse_insert_ms]
        pg = [value for run in cell.runs for value in run.postgres_commit_ms]
        lag = [value for run in cell.runs for value in run.loop_lag_ms]
        counted = {name: sum(run.clickhouse[name] for run in cell.runs) for name in CLICKHOUSE_COUNTERS}
        run_seconds = sum(
            WARM_UP + (args.idle_seconds if rate == args.idle_rate else args.seconds) for _ in cell.runs
        )
        server = {name: value / run_seconds for name, value in counted.items()}  # per second
        merging = server["MergesTimeMilliseconds"] / 1000  # merge-seconds per second
        # What the relay adds above the floor: an event cannot be visible before
        # a one-row insert of it returns, measured beside the relay meanwhile.
        overhead = figures["p99"] - percentile(ch, 99)
        print(
            f"{rate:>6,.0f} {variant:>10} {placement:>9} {wake:>12} {len(cell.latencies):>7,}"
            f" {cell.achieved_rate:>8,.0f}"
            + "".join(f" {figures[name]:>6.1f}" for name, _ in PERCENTILES)
            + f" {overhead:>8.1f} {percentile(lags, 99):>9.1f} {cpu:>9.0%} {core_wait:>9.2f}"
            + f" {batch_ms:>8.1f} {per_batch:>8.1f}"
            + f" {percentile(ch, 50):>6.1f}/{percentile(ch, 99):<7.1f}"
            + f" {percentile(pg, 50):>4.1f}/{percentile(pg, 99):<6.1f}"
            + f" {server['InsertQuery']:>8.0f} {merging:>7.0%}"
            + f" {unseen:>6}"
            + ("" if cell.sustained else "   (rate not sustained by the producer)")
        )
        row = {
            "rate": rate,
            "variant": variant,
            "placement": placement,
            "wake": wake,
            "idle": rate == args.idle_rate,
            "events": len(cell.latencies),
            "achieved_rate": round(cell.achieved_rate),
            "sustained": cell.sustained,
            **{f"{name}_ms": round(value, 1) for name, value in figures.items()},
            "relay_overhead_p99_ms": round(overhead, 1),
            "schedule_lag_p99_ms": round(percentile(lags, 99), 1),
            "relay_cpu": round(cpu, 3),
            "batch_ms": round(batch_ms, 1),
            "events_per_batch": round(per_batch, 1),
            "relay_core_wait_ms": round(core_wait, 2),
            "clickhouse_insert_p50_ms": round(percentile(ch, 50), 1),
            "clickhouse_insert_p99_ms": round(percentile(ch, 99), 1),
            "postgres_commit_p50_ms": round(percentile(pg, 50), 1),
            "postgres_commit_p99_ms": round(percentile(pg, 99), 1),
            "observer_lag_p99_ms": round(percentile(lag, 99), 1),
            "clickhouse_inserts_per_s": round(server["InsertQuery"], 1),
            "clickhouse_selects_per_s": round(server["SelectQuery"], 1),
            "clickhouse_merging": round(merging, 3),
            "clickhouse_delayed_inserts": round(counted["DelayedInserts"]),
            "unseen": unseen,
        }
        table.append(row)
        if variant == default and wake == "after-commit":
            label = "idle" if rate == args.idle_rate else f"{rate:.0f}"
            suffix = "" if placement == "shared" else f"_{placement}"
            for name, value in figures.items():
                out[f"latency_{name}_ms_{label}{suffix}"] = round(value, 1)
            out[f"relay_overhead_p99_ms_{label}{suffix}"] = round(overhead, 1)
            out[f"clickhouse_insert_p99_ms_{label}{suffix}"] = round(percentile(ch, 99), 1)
            out[f"latency_sustained_{label}{suffix}"] = cell.sustained
            out[f"latency_achieved_rate_{label}{suffix}"] = round(cell.achieved_rate)
        if variant == default and wake == "trigger":
            out["latency_p99_ms_idle_trigger"] = round(figures["p99"], 1)
    periods = [run.observer_period_ms for cell in cells.values() for run in cell.runs]
    print(
        f"\nlatency: producer commit -> visible in ClickHouse, milliseconds; pooled over {args.rounds} rounds"
        f" of {args.seconds:g} s (+{WARM_UP:g} s warm-up) per cell;"
        f" observer period {sum(periods) / len(periods):.1f} ms"
        " (included: each figure is an upper bound)."
    )
    print(
        "overhead: p99 minus the one-row ClickHouse insert's p99 measured beside it (what the relay,"
        " PostgreSQL and the observer add above ClickHouse's floor); placement: shared = every process on"
        " every core, pinned = the benchmark's ClickHouse alone on one core, relay, producer and observer on"
        " the other (PostgreSQL is the machine's and floats); wake: after-commit = the producer rings as the"
        " site does, trigger = the outbox's old statement trigger; sched p99: how late the producer committed"
        " against its schedule; relay CPU: share of one core; core wait: the relay's mean wait for a core"
        " each time it became runnable, ms; batch ms: claim to commit (the relay's own histogram); CH ins,"
        f" PG: probes every {PROBE_PERIOD * 1000:.0f} ms, p50/p99 ms; CH ins/s: inserts ClickHouse served"
        " per second;"
        " merging: merge-seconds per second."
    )
    out.update(verdicts(table, default))
    out.update(
        latency_variant=default,
        latency_variants={name: VARIANTS[name] for name in args.variants},
        latency_table=table,
        latency_producer_connections=args.connections,
        latency_seconds=args.seconds,
        latency_rounds=args.rounds,
        latency_idle_rate=args.idle_rate,
        latency_observer_period_ms=round(sum(periods) / len(periods), 1),
        latency_unseen=sum(int(row["unseen"]) for row in table),
        machine=machine.describe(),
    )
    return out


TARGET_P99_MS = 50.0
TARGET_OVERHEAD_MS = 10.0
TARGET_RATE = 1000.0


def verdicts(table: list[dict[str, object]], default: str) -> dict[str, object]:
    """Print whether the targets at 1,000 events/s were met, and who holds them where not."""
    out: dict[str, object] = {}
    for row in table:
        if row["rate"] != TARGET_RATE or row["variant"] != default or row["wake"] != "after-commit":
            continue
        p99, overhead = float(row["p99_ms"]), float(row["relay_overhead_p99_ms"])  # type: ignore[arg-type]
        floor = float(row["clickhouse_insert_p99_ms"])  # type: ignore[arg-type]
        met = p99 <= TARGET_P99_MS and overhead <= TARGET_OVERHEAD_MS and bool(row["sustained"])
        holder = []
        if p99 > TARGET_P99_MS:
            holder.append(
                f"p99 {p99:.1f} ms is {p99 - TARGET_P99_MS:.1f} ms over {TARGET_P99_MS:.0f}:"
                f" ClickHouse's one-row insert alone takes {floor:.1f} ms at p99,"
                f" the relay and the rest {overhead:.1f} ms"
            )
        elif overhead > TARGET_OVERHEAD_MS:
            holder.append(
                f"the relay's overhead {overhead:.1f} ms is {overhead - TARGET_OVERHEAD_MS:.1f} ms over"
            )
        if not row["sustained"]:
            holder.append(f"the producer achieved {row['achieved_rate']}/s of {TARGET_RATE:.0f}")
        print(
            f"at {TARGET_RATE:,.0f} events/s, {row['placement']}:"
            f" p99 {p99:.1f} ms (target {TARGET_P99_MS:.0f}),"
            f" relay overhead {overhead:.1f} ms (target {TARGET_OVERHEAD_MS:.0f}):"
            f" {'met' if met else 'not met: ' + '; '.join(holder)}"
        )
        out[f"latency_target_met_{row['placement']}"] = met
    return out


async def main(args: argparse.Namespace) -> dict[str, object]:
    base = load(RelaySettings)
    async with scratch_postgres(base.postgres_admin_dsn, SCRATCH) as url:
        cells, machine = await measure(args, base, url)
    machine.finish()
    return report(cells, args, machine)


async def measure(
    args: argparse.Namespace, base: RelaySettings, url: str
) -> tuple[dict[CellKey, Cell], Machine]:
    """Every cell's runs, round after round, on the scratch database at `url` and a ClickHouse of its own."""
    migrate(url)
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            "CREATE TABLE bench_commit_probe (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())"
        )
    finally:
        await connection.close()
    clickhouse = BenchClickHouse(Path(tempfile.gettempdir()) / f"diehard-bench-latency-{os.getpid()}.log")
    machine = Machine.sample()
    where = placements()
    chosen = [where[name] for name in args.placements if name in where]
    print(
        f"latency: one producer process ({args.connections} connections, one event per transaction),"
        f" rates {', '.join(f'{r:,.0f}' for r in args.rates)} events/s and {args.idle_rate:g}/s from idle,"
        f" relay variants {', '.join(args.variants)}, placements {', '.join(p.name for p in chosen)},"
        f" {args.rounds} rounds of {args.seconds:g} s; ClickHouse of its own",
        flush=True,
    )
    producer = Producer(url, connections=args.connections)
    cells: dict[CellKey, Cell] = {}
    try:
        clickhouse.start()
        setup = Setup(clickhouse.settings(base), url, producer, clickhouse)
        plan: list[tuple[float, float, str, Placement, str]] = [
            (rate, args.seconds, variant, placement, "after-commit")
            for rate in args.rates
            for placement in chosen
            for variant in args.variants
        ]
        if args.idle_rate:
            plan += [
                (args.idle_rate, args.idle_seconds, args.variants[0], where["shared"], wake)
                for wake in ("after-commit", "trigger")
            ]
        for round_number in range(args.rounds):
            for rate, seconds, variant, placement, wake in plan:
                run = await one_run(
                    setup, rate=rate, seconds=seconds, variant=variant, placement=placement, wake=wake
                )
                await clear_outbox(url)
                key = (rate, variant, placement.name, wake)
                cells.setdefault(key, Cell(rate, variant, placement.name, wake)).runs.append(run)
                figures = Cell(rate, variant, runs=[run]).figures()
                print(
                    f"  round {round_number + 1}  rate {rate:>6,.0f}  {variant:>10} {placement.name:>7}"
                    f" {wake:>12}: p50 {figures['p50']:6.1f}  p99 {figures['p99']:6.1f}"
                    f"  max {figures['max']:7.1f} ms, achieved {run.achieved_rate:,.0f}/s",
                    flush=True,
                )
            plan = plan[1:] + plan[:1]  # rotate which goes first
    finally:
        producer.close()
        clickhouse.remove()
    return cells, machine


def number_list(text: str) -> list[float]:
    """argparse type: comma-separated positive numbers."""
    values = [float(part) for part in text.split(",") if part.strip()]
    if not values or any(value <= 0 for value in values):
        raise argparse.ArgumentTypeError("expected comma-separated positive numbers")
    return values


def variant_list(text: str) -> list[str]:
    """argparse type: comma-separated names from `VARIANTS`."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in VARIANTS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(VARIANTS)}")
    return names


def placement_list(text: str) -> list[str]:
    """argparse type: comma-separated placements (`shared`, `pinned`)."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names or any(name not in {"shared", "pinned"} for name in names):
        raise argparse.ArgumentTypeError("choose from shared, pinned")
    return names


def parser() -> argparse.ArgumentParser:
    """The command line."""
    cli = argparse.ArgumentParser(prog="python -m benchmarks.latency", description=__doc__.splitlines()[0])
    cli.add_argument("--rates", type=number_list, default=[200.0, 1000.0, 5000.0], help="events/s to offer")
    cli.add_argument("--seconds", type=float, default=3.0, help="measured seconds per run (default 3)")
    cli.add_argument("--rounds", type=int, default=5, help="runs per cell (default 5)")
    cli.add_argument("--connections", type=int, default=8, help="the producer's connections (default 8)")
    cli.add_argument(
        "--placements",
        type=placement_list,
        default=["shared", "pinned"],
        help="shared: every process on every core; pinned: ClickHouse on a core of its own (default both)",
    )
    cli.add_argument(
        "--idle-rate",
        type=float,
        default=4.0,
        help="events/s of the idle cells (each event finds the relay idle), 0 skips them (default 4)",
    )
    cli.add_argument("--idle-seconds", type=float, default=5.0, help="seconds per idle run (default 5)")
    cli.add_argument(
        "--variants",
        type=variant_list,
        default=["shipped"],
        help=f"relay configurations compared side by side, the first is the headline ({', '.join(VARIANTS)})",
    )
    cli.add_argument("--json", type=Path, help="also write the JSON line to this file")
    return cli


if __name__ == "__main__":
    arguments = parser().parse_args()
    result = uvloop.run(main(arguments))
    emit(result, arguments.json)
