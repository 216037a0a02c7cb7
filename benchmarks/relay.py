"""Relay throughput: the relay against a raw PostgreSQL drain, measured side by side.

In one run, against a scratch PostgreSQL database (migrated with the site's own
migrations) and a scratch ClickHouse database:

1. prefill the outbox with N realistic events (sign-ups, sign-ins, sign-outs,
   failed sign-ins, with payloads as the site writes them);
2. `pg_drain`: the relay's claim-and-delete statement as it ships (copying
   into the archive of delivered events included) in a loop with no sink, on
   as many connections as the relay has forwarders: the ceiling PostgreSQL sets;
3. prefill again, start the real relay (`python -m relay`) as a subprocess and
   time it from the moment the events commit until the outbox is empty; the
   same with 2 and 4 relay processes side by side (`--relays`), for scale-out;
4. check that every event reached ClickHouse exactly once;
5. prefill again and time a naive relay (rows to Python tuples, then
   `INSERT ... VALUES` through aiochclient) for comparison.

The machine is shared and noisy, so the two runs are interleaved over rounds
and the best round of each counts for the rates; the relay / drain ratio is
the median of each round's ratio. The last line printed is one JSON object.

    python -m benchmarks.relay [--events 200000] [--batch-size 20000] [--concurrency 2] [--rounds 3]
                               [--relays 1,2,4] [--no-naive] [--min-ratio 0.5] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg
import uvloop
from aiochclient import ChClient

from benchmarks.machine import Machine, rss_mb
from benchmarks.results import emit
from benchmarks.scratch import ROOT, free_port, migrate, partition_archive, scratch_name, scratch_postgres
from relay.core import schema
from relay.core.outbox import OutboxQueries
from relay.core.postgres import copy_out
from relay.settings import RelaySettings
from relay.sinks import clickhouse_sink
from shared.events import Envelope, Event, UserCreated, UserLoggedIn, UserLoggedOut, UserLoginFailed
from shared.outbox import EVENT_LOG_COLUMNS, OUTBOX_TABLE, WAKE_RELAY
from shared.settings import load

SCRATCH = scratch_name("diehard_bench_relay")
# The relay's default byte cap: batches of the default size stay well under it.
MAX_BYTES: int = RelaySettings.model_fields["relay_batch_max_bytes"].default
# `python -m relay` as it runs where it is deployed. structlog imports `rich`
# whenever it is installed, and here it is, for the test tools (import-linter,
# schemathesis); the image and `make install` have no `rich`, and a relay that
# loaded it would hold about 3 MB the deployed one does not.
RELAY_COMMAND = (
    sys.executable,
    "-c",
    "import runpy, sys; sys.modules['rich'] = None;"
    " runpy.run_module('relay', run_name='__main__', alter_sys=True)",
)
STEADY = 1.0  # seconds a relay idles after it is ready before its steady memory is read
SETTLE = 6.0  # seconds a relay idles after a backlog before its memory is read again
RSS_TARGET_MB = 64.0
FIRST_NAMES = ("Anna", "Boris", "Chloé", "Dmitri", "Eve", "Farid", "Grace", "Hiro", "Inès", "José")
LAST_NAMES = ("Ivanova", "Smith", "Müller", "O'Brien", "Nakamura", "Okafor", "García", "Kowalski")


def realistic_events(count: int, *, seed: int = 7) -> list[Envelope]:
    """A mix like the site's: a sign-up, then sign-ins, sign-outs and some failed sign-ins."""
    rng = random.Random(seed)
    started = datetime.now(UTC) - timedelta(minutes=5)
    envelopes = []
    for number in range(count):
        kind = rng.random()
        ip = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        email = f"user{number}@example.com"
        event: Event
        if kind < 0.3:
            event = UserCreated(
                user_id=number,
                email=email,
                first_name=rng.choice(FIRST_NAMES),
                last_name=rng.choice(LAST_NAMES),
            )
        elif kind < 0.7:
            event = UserLoggedIn(user_id=number, ip_address=ip)
        elif kind < 0.9:
            event = UserLoggedOut(user_id=number, ip_address=ip)
        else:
            event = UserLoginFailed(user_id=number, email=email, ip_address=ip)
        envelope = Envelope.wrap(event, environment="Local")
        envelopes.append(
            Envelope(
                event_type=envelope.event_type,
                event_context=envelope.event_context,
                environment=envelope.environment,
                metadata_version=envelope.metadata_version,
                event_id=uuid.UUID(int=rng.getrandbits(128), version=4),
                event_date_time=started + timedelta(microseconds=number),
            )
        )
    return envelopes


async def prefill(url: str, envelopes: list[Envelope]) -> None:
    """Write the events to the outbox in one COPY, then wake the relay as the site does after commit.

    Without the wake-up a relay finds the events only at its next poll, up to
    `RELAY_POLL_INTERVAL` later, and that wait, not the relay, would be timed.
    """
    connection = await asyncpg.connect(url)
    try:
        await connection.copy_records_to_table(
            OUTBOX_TABLE,
            columns=list(EVENT_LOG_COLUMNS),
            records=[tuple(envelope.columns().values()) for envelope in envelopes],
        )
        await connection.execute(WAKE_RELAY)
    finally:
        await connection.close()


async def pg_drain(url: str, *, batch_size: int, concurrency: int) -> tuple[int, float]:
    """The relay's claim-and-delete statement as it ships (archive included) in a loop, results discarded."""
    queries = OutboxQueries(timestamp_precision=0, archive=True)
    pool = await asyncpg.create_pool(url, min_size=concurrency, max_size=concurrency)
    drained = 0

    async def worker() -> None:
        nonlocal drained
        while True:
            async with pool.acquire() as connection, connection.transaction():
                body = await copy_out(connection, queries.batch(batch_size, MAX_BYTES))
            count = body.count(b"\n")
            drained += count
            if count < batch_size:
                return

    try:
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return drained, time.perf_counter() - started
    finally:
        await pool.close()


async def naive_relay(
    url: str, settings: RelaySettings, *, batch_size: int, concurrency: int
) -> tuple[int, float]:
    """The straightforward relay, for comparison: rows become Python tuples, then `INSERT ... VALUES`."""
    pool = await asyncpg.create_pool(url, min_size=concurrency, max_size=concurrency)
    claim = (
        f"DELETE FROM {OUTBOX_TABLE} WHERE id IN (SELECT id FROM {OUTBOX_TABLE} ORDER BY id LIMIT $1"
        " FOR UPDATE SKIP LOCKED) RETURNING event_id, event_type, event_date_time, environment,"
        " event_context, metadata_version"
    )
    moved = 0
    async with admin_clickhouse(settings, SCRATCH) as client:

        async def worker() -> None:
            nonlocal moved
            while True:
                async with pool.acquire() as connection, connection.transaction():
                    rows = await connection.fetch(claim, batch_size)
                    if rows:
                        await client.execute(
                            "INSERT INTO event_log VALUES",
                            *[
                                (
                                    row["event_id"],
                                    row["event_type"],
                                    row["event_date_time"].replace(tzinfo=None, microsecond=0),
                                    row["environment"],
                                    row["event_context"],
                                    row["metadata_version"],
                                )
                                for row in rows
                            ],
                        )
                moved += len(rows)
                if len(rows) < batch_size:
                    return

        try:
            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return moved, time.perf_counter() - started
        finally:
            await pool.close()


@dataclass
class RelayRun:
    """What one timed run of one or more relay processes measured."""

    relays: int
    events: int
    seconds: float
    peak_rss_mb: list[float]  # per relay process
    steady_rss_mb: list[float] = field(default_factory=list)  # idle, before the backlog
    drained_rss_mb: list[float] = field(default_factory=list)  # the moment the backlog is gone
    settled_rss_mb: list[float] = field(default_factory=list)  # idle again, `SETTLE` seconds later

    @property
    def rate(self) -> float:
        """Events per second, all relays together."""
        return self.events / self.seconds


async def relay_run(
    url: str,
    settings: RelaySettings,
    envelopes: list[Envelope],
    *,
    batch_size: int,
    concurrency: int,
    relays: int = 1,
    extra_env: dict[str, str] | None = None,
    settle: bool = False,
) -> RelayRun:
    """Start `relays` relay processes side by side, commit the events, time until the outbox is empty.

    `extra_env` adds to (or overrides) the relays' environment.
    """
    ports = [free_port() for _ in range(relays)]
    processes = []
    try:
        for port in ports:
            env = {
                **os.environ,
                "DATABASE_URL": url,
                "CLICKHOUSE_DATABASE": SCRATCH,
                "RELAY_BATCH_SIZE": str(batch_size),
                "RELAY_CONCURRENCY": str(concurrency),
                "RELAY_HTTP_PORT": str(port),
                "RELAY_POLL_INTERVAL": "1",
                "LOG_LEVEL": "WARNING",
                "DIE_HARD_ENV_FILE": os.devnull,
                **(extra_env or {}),
            }
            processes.append(await asyncio.create_subprocess_exec(*RELAY_COMMAND, env=env, cwd=ROOT))
        for port in ports:
            await wait_ready(port)
        await asyncio.sleep(STEADY)  # started up: what an idle relay holds
        steady = [rss_mb(process.pid) for process in processes]
        connection = await asyncpg.connect(url)
        try:
            await prefill(url, envelopes)  # COPY commits on return: the relays start now
            started = time.perf_counter()
            # Polling is the measurement itself: nothing else says "the outbox is empty".
            while await connection.fetchval(f"SELECT EXISTS (SELECT 1 FROM {OUTBOX_TABLE})"):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            seconds = time.perf_counter() - started
        finally:
            await connection.close()
        drained = [rss_mb(process.pid) for process in processes]
        if settle:
            await asyncio.sleep(SETTLE)  # idle again: has the burst's memory gone back?
        return RelayRun(
            relays=relays,
            events=len(envelopes),
            seconds=seconds,
            peak_rss_mb=[rss_mb(process.pid, "VmHWM") for process in processes],
            steady_rss_mb=steady,
            drained_rss_mb=drained,
            settled_rss_mb=[rss_mb(process.pid) for process in processes] if settle else drained,
        )
    finally:
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            await asyncio.wait_for(process.wait(), timeout=60)


async def wait_ready(port: int) -> None:
    """Wait until the relay's /readyz answers 200."""
    deadline = time.monotonic() + 30
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=1)) as session:
        while time.monotonic() < deadline:
            try:
                async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
                    if response.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("the relay did not become ready")


@contextlib.asynccontextmanager
async def admin_clickhouse(settings: RelaySettings, database: str = "default") -> AsyncIterator[ChClient]:
    """A client of the configured ClickHouse as its admin user and password, as `relay migrate` connects."""
    async with aiohttp.ClientSession() as session:
        yield await clickhouse_sink(session, settings, database=database, admin=True).first_answering()


async def clickhouse_counts(settings: RelaySettings) -> tuple[int, int]:
    """Rows and distinct event ids in the scratch `event_log` (before any merge)."""
    async with admin_clickhouse(settings, SCRATCH) as client:
        row = await client.fetchrow("SELECT count() AS rows, uniqExact(event_id) AS ids FROM event_log")
        return row["rows"], row["ids"]


async def drop_clickhouse(settings: RelaySettings) -> None:
    """Drop the scratch ClickHouse database."""
    async with admin_clickhouse(settings) as client:
        await client.execute(f"DROP DATABASE IF EXISTS {SCRATCH}")


async def reset_clickhouse(settings: RelaySettings) -> None:
    """A fresh scratch database with the relay's schema."""
    await drop_clickhouse(settings)
    async with admin_clickhouse(settings) as client:
        await schema.apply(client, SCRATCH)


@contextlib.asynccontextmanager
async def scratch_databases(settings: RelaySettings) -> AsyncIterator[str]:
    """The scratch PostgreSQL database, migrated, its archive partitioned; both scratch databases
    dropped afterwards, whatever happened (each run's are its own, by process id)."""
    try:
        async with scratch_postgres(settings.postgres_admin_dsn, SCRATCH) as url:
            migrate(url)
            await partition_archive(url, settings.relay_archive_retention)
            yield url
    finally:
        await drop_clickhouse(settings)


async def main(args: argparse.Namespace) -> dict[str, object]:
    settings = load(RelaySettings)
    async with scratch_databases(settings) as url:
        return await measure(args, settings, url)


async def measure(args: argparse.Namespace, settings: RelaySettings, url: str) -> dict[str, object]:
    """The drain, the relay and the naive relay, round after round, on the scratch databases."""
    machine = Machine.sample()
    envelopes = realistic_events(args.events)
    payload_bytes = sum(len(e.event_context) for e in envelopes) / len(envelopes)
    drains: list[float] = []
    naives: list[float] = []
    runs: dict[int, list[RelayRun]] = {count: [] for count in args.relays}
    delivered_ok = True
    for round_number in range(args.rounds):
        await prefill(url, envelopes)
        drained, seconds = await pg_drain(url, batch_size=args.batch_size, concurrency=args.concurrency)
        drains.append(drained / seconds)
        shift = round_number % len(args.relays)
        for count in args.relays[shift:] + args.relays[:shift]:
            await reset_clickhouse(settings)
            run = await relay_run(
                url,
                settings,
                envelopes,
                batch_size=args.batch_size,
                concurrency=args.concurrency,
                relays=count,
                extra_env=args.relay_env,
                settle=count == args.relays[0],
            )
            runs[count].append(run)
            rows, ids = await clickhouse_counts(settings)
            delivered_ok &= rows == ids == args.events
        if args.naive:
            await reset_clickhouse(settings)
            await prefill(url, envelopes)
            moved, seconds = await naive_relay(
                url, settings, batch_size=args.batch_size, concurrency=args.concurrency
            )
            naives.append(moved / seconds)
        print(
            f"  round {round_number + 1}: pg drain {drains[-1]:,.0f}/s; "
            + "; ".join(f"{count} relay(s) {runs[count][-1].rate:,.0f}/s" for count in args.relays),
            flush=True,
        )
    machine.finish()
    return report(
        args, drains, naives, runs, delivered_ok=delivered_ok, payload_bytes=payload_bytes, machine=machine
    )


def report(
    args: argparse.Namespace,
    drains: list[float],
    naives: list[float],
    runs: dict[int, list[RelayRun]],
    *,
    delivered_ok: bool,
    payload_bytes: float,
    machine: Machine,
) -> dict[str, object]:
    """Print the figures; return them for the JSON line."""
    best = {count: max(runs[count], key=lambda run: run.rate) for count in args.relays}
    single = best[args.relays[0]]
    relay_rate = single.rate
    pg_rate = max(drains)
    print()
    print(f"events per run        {args.events:>12,}   (payload {payload_bytes:.0f} B on average)")
    print(f"batch size            {args.batch_size:>12,}")
    print(f"concurrency           {args.concurrency:>12}   forwarders per relay process")
    print(f"rounds                {args.rounds:>12}   (best round counts for rates)")
    print(f"pg drain (no sink)    {pg_rate:>12,.0f} events/s   rounds: {_listed(drains)}")
    for count in args.relays:
        rates = [run.rate for run in runs[count]]
        rss = ", ".join(f"{mb:.0f}" for mb in best[count].peak_rss_mb)
        print(
            f"{count} relay process(es)  {best[count].rate:>12,.0f} events/s   rounds: {_listed(rates)}"
            f"   peak RSS each: {rss} MB"
        )
    # Each round's relay against the drain measured just before it: the median
    # of those ratios shrugs off a burst of load from elsewhere better than best-of.
    ratio = statistics.median(
        run.rate / drain for run, drain in zip(runs[args.relays[0]], drains, strict=True)
    )
    figures: dict[str, object] = {
        "relay_events_per_s": round(relay_rate),
        "pg_drain_events_per_s": round(pg_rate),
        "relay_to_pg_drain_ratio": round(ratio, 3),
    }
    print(f"relay / pg drain      {ratio:>12.2f}   (median of the rounds' ratios)")
    if naives:
        print(f"naive relay           {max(naives):>12,.0f} events/s   rounds: {_listed(naives)}")
        print(f"relay / naive relay   {relay_rate / max(naives):>12.2f}")
        figures["naive_relay_events_per_s"] = round(max(naives))
        figures["relay_to_naive_ratio"] = round(relay_rate / max(naives), 2)
    # Memory of the headline relay count: the median of the rounds for each reading.
    headline = runs[args.relays[0]]
    steady = statistics.median(max(run.steady_rss_mb) for run in headline)
    drained_rss = statistics.median(max(run.drained_rss_mb) for run in headline)
    settled = statistics.median(max(run.settled_rss_mb) for run in headline)
    peak = statistics.median(max(run.peak_rss_mb) for run in headline)
    print(f"relay peak RSS        {peak:>12.1f} MB   (median of the rounds)")
    print(f"relay RSS: idle {steady:.1f} MB before the backlog, {drained_rss:.1f} MB when it was drained,")
    verdict = "met" if max(steady, settled) <= RSS_TARGET_MB else "NOT met"
    print(f"           {settled:.1f} MB after {SETTLE:g} s idle again", end="")
    print(f" (target <= {RSS_TARGET_MB:.0f} MB: {verdict})")
    figures.update(
        steady_rss_mb=round(steady, 1),
        drained_rss_mb=round(drained_rss, 1),
        rss_after_backlog_mb=round(settled, 1),
        rss_target_mb=RSS_TARGET_MB,
        rss_settle_seconds=SETTLE,
        relay_env=args.relay_env,
    )
    print(f"every event once      {'yes' if delivered_ok else 'NO':>12}")
    for count in args.relays:
        figures[f"scaleout_events_per_s_{count}"] = round(best[count].rate)
        figures[f"scaleout_peak_rss_mb_{count}"] = round(max(best[count].peak_rss_mb), 1)
    figures.update(
        events=args.events,
        batch_size=args.batch_size,
        concurrency=args.concurrency,
        peak_rss_mb=round(max(single.peak_rss_mb), 1),
        exactly_once=delivered_ok,
        machine=machine.describe(),
    )
    return figures


def _listed(rates: list[float]) -> str:
    return ", ".join(f"{rate:,.0f}" for rate in rates)


def environment_pair(text: str) -> tuple[str, str]:
    """argparse type: NAME=VALUE."""
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise argparse.ArgumentTypeError("expected NAME=VALUE")
    return name, value


def relay_counts(text: str) -> list[int]:
    """argparse type: comma-separated relay process counts."""
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or any(value < 1 for value in values):
        raise argparse.ArgumentTypeError("expected comma-separated counts of at least 1")
    return values


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    # The relay's own defaults: the benchmark measures what ships.
    defaults = RelaySettings.model_fields
    parser.add_argument("--batch-size", type=int, default=defaults["relay_batch_size"].default)
    parser.add_argument("--concurrency", type=int, default=defaults["relay_concurrency"].default)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--relays",
        type=relay_counts,
        default=[1, 2, 4],
        help="relay processes side by side, one timed run per count and round; the first is the headline",
    )
    parser.add_argument("--no-naive", dest="naive", action="store_false", help="skip the naive relay")
    parser.add_argument(
        "--relay-env",
        type=environment_pair,
        action="append",
        default=[],
        help="NAME=VALUE added to the relays' environment (repeatable), to try a setting side by side",
    )
    parser.add_argument(
        "--min-ratio",
        type=float,
        default=0.0,
        help="exit 1 when relay / pg drain falls below this floor (a regression guard)",
    )
    parser.add_argument(
        "--max-rss-mb",
        type=float,
        default=0.0,
        help="exit 1 when a relay holds more than this, idle or idle again after the backlog (a guard)",
    )
    parser.add_argument("--json", type=Path, help="also write the JSON line to this file")
    arguments = parser.parse_args()
    arguments.relay_env = dict(arguments.relay_env)
    result = uvloop.run(main(arguments))
    emit(result, arguments.json)
    if not result["exactly_once"]:
        sys.exit(1)
    ratio = float(result["relay_to_pg_drain_ratio"])  # type: ignore[arg-type]
    if ratio < arguments.min_ratio:
        print(f"relay / pg drain {ratio:.2f} is below the floor {arguments.min_ratio:.2f}", file=sys.stderr)
        sys.exit(1)
    held = max(float(result["steady_rss_mb"]), float(result["rss_after_backlog_mb"]))  # type: ignore[arg-type]
    if arguments.max_rss_mb and held > arguments.max_rss_mb:
        print(f"a relay held {held:.1f} MB, over the ceiling {arguments.max_rss_mb:.0f} MB", file=sys.stderr)
        sys.exit(1)
