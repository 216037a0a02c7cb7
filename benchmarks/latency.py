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
import signal
import sys
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
from benchmarks.relay import wait_ready
from benchmarks.results import emit
from benchmarks.scratch import ROOT, drop_database, free_port, migrate, recreate_database
from relay.core import schema
from relay.settings import RelaySettings
from relay.sinks import clickhouse_sink
from shared.outbox import OUTBOX_TABLE
from shared.settings import load

SCRATCH = "diehard_bench_latency"
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


# --- producers (separate processes: Django, one event per transaction) -------


@dataclass(frozen=True, slots=True)
class Job:
    """What one producer process publishes: its share of a schedule."""

    start_at: float  # wall clock
    seconds: float
    rate: float  # events per second, all producers together
    producers: int
    index: int


def producer_main(pipe: Connection, database_url: str) -> None:
    """Run in a child process: publish events on schedule for every job received, send back the stamps."""
    os.environ.update(
        DATABASE_URL=database_url,
        DJANGO_SETTINGS_MODULE="webapp.config.settings",
        DIE_HARD_ENV_FILE=os.devnull,
        DEBUG="false",  # production mode: no query log kept in memory
        SECRET_KEY="benchmark-only",
        ALLOWED_HOSTS="localhost",
        EMAIL_HOST="smtp.invalid",  # named, as production mode demands; never connected to
        LOG_LEVEL="WARNING",
    )
    import django

    django.setup()
    from django.db import transaction

    from shared.events import UserLoggedIn
    from webapp.outbox.client import EventLogClient

    client = EventLogClient.from_settings()
    with transaction.atomic():  # connect and warm up before the first job
        client.publish(UserLoggedIn(user_id=0, ip_address="10.0.0.1"))
    pipe.send("ready")
    while (job := pipe.recv()) is not None:
        # Each event is told apart by its user_id: unique per producer and run.
        key = (job.index + 1) * KEY_SPACE
        stamps: list[tuple[int, float, float]] = []
        period = job.producers / job.rate
        due = job.start_at + job.index / job.rate
        end = job.start_at + job.seconds
        number = 0
        while due < end:
            ahead = due - time.time()
            if ahead > 0:
                time.sleep(ahead)
            elif -ahead > GIVE_UP_LATE:
                # The rate is beyond these producers: shed this event rather than fall
                # further behind (the achieved rate says how much was offered).
                number += 1
                due += period
                continue
            with transaction.atomic():
                client.publish(UserLoggedIn(user_id=key + number, ip_address="10.0.0.1"))
            stamps.append((key + number, due, time.time()))
            number += 1
            due += period
        pipe.send(stamps)


class Producers:
    """A fixed set of producer processes, started once and reused for every run."""

    def __init__(self, count: int, database_url: str) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.processes = []
        for _ in range(count):
            parent, child = context.Pipe()
            process = context.Process(target=producer_main, args=(child, database_url), daemon=True)
            process.start()
            self.pipes.append(parent)
            self.processes.append(process)
        for pipe in self.pipes:
            if pipe.recv() != "ready":
                raise RuntimeError("a producer process failed to start")

    def start(self, *, rate: float, seconds: float, start_at: float) -> None:
        """Hand every process its share of the schedule."""
        for index, pipe in enumerate(self.pipes):
            pipe.send(Job(start_at, seconds, rate, len(self.pipes), index))

    def results(self) -> list[tuple[int, float, float]]:
        """Block until every process has finished its share; their (event id, due, committed) stamps."""
        stamps: list[tuple[int, float, float]] = []
        for pipe in self.pipes:
            stamps.extend(pipe.recv())
        return stamps

    def close(self) -> None:
        """Stop the processes."""
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(None)
        for process in self.processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()


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
    async with aiohttp.ClientSession() as session:
        client = await clickhouse_sink(session, settings, database="default").first_answering()
        await client.execute(f"DROP DATABASE IF EXISTS {SCRATCH}")
        await schema.apply(client, SCRATCH)
        await client.execute(
            f"CREATE MATERIALIZED VIEW {SCRATCH}.{OBSERVED} ENGINE = Memory"
            f" AS SELECT visitParamExtractUInt(event_context, 'user_id') AS key FROM {SCRATCH}.event_log"
        )
        await client.execute(f"CREATE TABLE {SCRATCH}.{PROBE_TABLE} AS {SCRATCH}.event_log")


async def drop_clickhouse(settings: RelaySettings) -> None:
    """Leave the server as the benchmark found it."""
    async with aiohttp.ClientSession() as session:
        client = await clickhouse_sink(session, settings, database="default").first_answering()
        await client.execute(f"DROP DATABASE IF EXISTS {SCRATCH}")


async def start_relay(url: str, variant: str) -> tuple[asyncio.subprocess.Process, int]:
    """The real relay, with its defaults but for the variant's settings."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "CLICKHOUSE_DATABASE": SCRATCH,
        "RELAY_HTTP_PORT": str(port),
        **VARIANTS[variant],
        "LOG_LEVEL": "WARNING",
        "DIE_HARD_ENV_FILE": os.devnull,
    }
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "relay", env=env, cwd=ROOT)
    await wait_ready(port)
    return process, port


async def stop_relay(process: asyncio.subprocess.Process) -> None:
    """SIGTERM and wait."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), timeout=60)


async def one_run(
    settings: RelaySettings, url: str, producers: Producers, *, rate: float, seconds: float, variant: str
) -> Run:
    """Start a relay, publish on schedule for `seconds`, observe every event arrive."""
    await reset_clickhouse(settings)
    process, port = await start_relay(url, variant)
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
            producers.start(rate=rate, seconds=WARM_UP + seconds, start_at=start_at)
            stamps = await loop.run_in_executor(None, producers.results)
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
    """Every run of one relay configuration at one rate, pooled."""

    rate: float
    variant: str
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


def report(
    cells: dict[tuple[float, float], Cell], args: argparse.Namespace, machine: Machine
) -> dict[str, object]:
    """Print the tables; return the figures for the JSON line."""
    default = args.variants[0]
    print(
        f"\n{'rate':>6} {'variant':>18} {'events':>7} {'achieved':>9}"
        + "".join(f" {n:>7}" for n, _ in PERCENTILES)
        + f" {'sched p99':>9} {'relay CPU':>9} {'core wait':>9} {'batch ms':>8} {'ev/batch':>8}"
        + f" {'CH ins p50/p99':>14} {'PG commit':>11} {'CH ins/s':>8} {'sel/s':>6} {'merging':>7}"
        + f" {'delayed':>7} {'unseen':>6}"
    )
    out: dict[str, object] = {}
    table = []
    for (rate, variant), cell in sorted(
        cells.items(), key=lambda item: (item[0][0], args.variants.index(item[0][1]))
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
        run_seconds = len(cell.runs) * (WARM_UP + args.seconds)
        server = {name: value / run_seconds for name, value in counted.items()}  # per second
        merging = server["MergesTimeMilliseconds"] / 1000  # merge-seconds per second
        delayed = counted["DelayedInserts"]
        print(
            f"{rate:>6,.0f} {variant:>18} {len(cell.latencies):>7,} {cell.achieved_rate:>9,.0f}"
            + "".join(f" {figures[name]:>7.1f}" for name, _ in PERCENTILES)
            + f" {percentile(lags, 99):>9.1f} {cpu:>9.0%} {core_wait:>9.2f}"
            + f" {batch_ms:>8.1f} {per_batch:>8.1f}"
            + f" {percentile(ch, 50):>6.1f}/{percentile(ch, 99):<7.1f}"
            + f" {percentile(pg, 50):>4.1f}/{percentile(pg, 99):<6.1f}"
            + f" {server['InsertQuery']:>8.0f} {server['SelectQuery']:>6.0f} {merging:>7.0%} {delayed:>7.0f}"
            + f" {unseen:>6}"
            + ("" if cell.sustained else "   (rate not sustained by the producers)")
        )
        row = {
            "rate": rate,
            "variant": variant,
            "events": len(cell.latencies),
            "achieved_rate": round(cell.achieved_rate),
            "sustained": cell.sustained,
            **{f"{name}_ms": round(value, 1) for name, value in figures.items()},
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
            "clickhouse_delayed_inserts": round(delayed),
            "unseen": unseen,
        }
        table.append(row)
        if variant == default:
            label = f"{rate:.0f}"
            for name, value in figures.items():
                out[f"latency_{name}_ms_{label}"] = round(value, 1)
            out[f"latency_sustained_{label}"] = cell.sustained
            out[f"latency_achieved_rate_{label}"] = round(cell.achieved_rate)
    periods = [run.observer_period_ms for cell in cells.values() for run in cell.runs]
    print(
        f"\nlatency: producer commit -> visible in ClickHouse, milliseconds; pooled over {args.rounds} rounds"
        f" of {args.seconds:g} s (+{WARM_UP:g} s warm-up) per cell;"
        f" observer period {sum(periods) / len(periods):.1f} ms"
        " (included: each figure is an upper bound)."
    )
    print(
        "sched p99: how late producers committed against their schedule (p99); relay CPU: share of one core;"
        " core wait: the relay's mean wait for a core each time it became runnable, ms; batch ms: claim to"
        " commit (the relay's own histogram); CH ins, PG: probes beside the relay every"
        f" {PROBE_PERIOD * 1000:.0f} ms (a one-row insert like the relay's; a one-row write"
        " transaction), p50/p99 ms; CH ins/s, sel/s: inserts and SELECTs ClickHouse served per second (the"
        " relay's, the probe's, the observer's); merging: merge-seconds per second (1 = a core's worth of"
        " merging); delayed: inserts ClickHouse held back for too many parts."
    )
    out.update(
        latency_variant=default,
        latency_variants={name: VARIANTS[name] for name in args.variants},
        latency_table=table,
        latency_producers=args.producers,
        latency_seconds=args.seconds,
        latency_rounds=args.rounds,
        latency_observer_period_ms=round(sum(periods) / len(periods), 1),
        latency_unseen=sum(int(row["unseen"]) for row in table),
        machine=machine.describe(),
    )
    return out


async def main(args: argparse.Namespace) -> dict[str, object]:
    settings = load(RelaySettings)
    url = await recreate_database(settings.postgres_admin_dsn, SCRATCH)
    migrate(url)
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(
            "CREATE TABLE bench_commit_probe (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())"
        )
    finally:
        await connection.close()
    machine = Machine.sample()
    print(
        f"latency: {args.producers} producer processes (EventLogClient, one event per transaction),"
        f" rates {', '.join(f'{r:,.0f}' for r in args.rates)} events/s,"
        f" relay variants {', '.join(args.variants)},"
        f" {args.rounds} rounds of {args.seconds:g} s",
        flush=True,
    )
    producers = Producers(args.producers, url)
    cells: dict[tuple[float, float], Cell] = {}
    try:
        for rate in args.rates:
            for round_number in range(args.rounds):
                shift = round_number % len(args.variants)
                order = args.variants[shift:] + args.variants[:shift]
                for variant in order:
                    run = await one_run(
                        settings, url, producers, rate=rate, seconds=args.seconds, variant=variant
                    )
                    await clear_outbox(url)
                    cells.setdefault((rate, variant), Cell(rate, variant)).runs.append(run)
                    figures = Cell(rate, variant, [run]).figures()
                    print(
                        f"  rate {rate:>6,.0f}  round {round_number + 1}  {variant:>18}:"
                        f" p50 {figures['p50']:6.1f}  p99 {figures['p99']:6.1f}"
                        f"  max {figures['max']:7.1f} ms,"
                        f" achieved {run.achieved_rate:,.0f}/s",
                        flush=True,
                    )
    finally:
        producers.close()
        await drop_database(settings.postgres_admin_dsn, SCRATCH)
        await drop_clickhouse(settings)
    machine.finish()
    return report(cells, args, machine)


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


def parser() -> argparse.ArgumentParser:
    """The command line."""
    cli = argparse.ArgumentParser(prog="python -m benchmarks.latency", description=__doc__.splitlines()[0])
    cli.add_argument("--rates", type=number_list, default=[200.0, 1000.0, 5000.0], help="events/s to offer")
    cli.add_argument("--seconds", type=float, default=3.0, help="measured seconds per run (default 3)")
    cli.add_argument("--rounds", type=int, default=5, help="runs per rate and variant (default 5)")
    cli.add_argument("--producers", type=int, default=4, help="producer processes (default 4)")
    cli.add_argument(
        "--variants",
        type=variant_list,
        default=list(VARIANTS),
        help=f"relay configurations compared side by side, the first is the headline ({', '.join(VARIANTS)})",
    )
    cli.add_argument("--json", type=Path, help="also write the JSON line to this file")
    return cli


if __name__ == "__main__":
    arguments = parser().parse_args()
    result = uvloop.run(main(arguments))
    emit(result, arguments.json)
