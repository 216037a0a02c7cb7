"""Relay throughput: the relay against a raw PostgreSQL drain, measured side by side.

In one run, against a scratch PostgreSQL database (migrated with the site's own
migrations) and a scratch ClickHouse database:

1. prefill the outbox with N realistic events (sign-ups, sign-ins, sign-outs,
   failed sign-ins, with payloads as the site writes them);
2. `pg_drain`: the relay's claim-and-delete statement in a loop with no sink,
   on as many connections as the relay has forwarders: the ceiling PostgreSQL sets;
3. prefill again, start the real relay (`python -m relay`) as a subprocess and
   time it from the moment the events commit until the outbox is empty; then
   the same with the archive of delivered events switched off
   (`RELAY_ARCHIVE_RETENTION=0`), to show what keeping them costs;
4. check that every event reached ClickHouse exactly once;
5. prefill again and time a naive relay (rows to Python tuples, then
   `INSERT ... VALUES` through aiochclient) for comparison;
6. the poison flood: the relay on 100,000 events, then on the same events
   with one in a hundred refused by ClickHouse (a negative `metadata_version`),
   back to back; every refused event must end in the dead-letter table and
   every other one in ClickHouse exactly once.

The machine is shared and noisy, so the two runs are interleaved over rounds
and the best round of each counts. The last line printed is one JSON object.

    python -m benchmarks.relay [--events 200000] [--batch-size 20000] [--concurrency 2] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import random
import signal
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg
import uvloop
from aiochclient import ChClient

from benchmarks.scratch import ROOT, free_port, migrate, recreate_database
from relay import schema
from relay.outbox import OutboxQueries, copy_out
from relay.settings import RelaySettings
from shared.events import Envelope, Event, UserCreated, UserLoggedIn, UserLoggedOut, UserLoginFailed
from shared.outbox import ARCHIVE_TABLE, DEAD_LETTER_TABLE, EVENT_LOG_COLUMNS, OUTBOX_TABLE
from shared.settings import load

SCRATCH = "diehard_bench_relay"
# The relay's default cap: batches of the default size stay well under it.
MAX_BYTES = RelaySettings.model_fields["relay_batch_max_bytes"].default
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
    """Write the events to the outbox in one COPY (one commit, one wake-up)."""
    connection = await asyncpg.connect(url)
    try:
        await connection.copy_records_to_table(
            OUTBOX_TABLE,
            columns=list(EVENT_LOG_COLUMNS),
            records=[tuple(envelope.columns().values()) for envelope in envelopes],
        )
    finally:
        await connection.close()


async def pg_drain(url: str, *, batch_size: int, concurrency: int) -> tuple[int, float]:
    """The relay's claim-and-delete statement in a loop, results discarded."""
    queries = OutboxQueries(timestamp_precision=0)
    pool = await asyncpg.create_pool(url, min_size=concurrency, max_size=concurrency)
    drained = 0

    async def worker() -> None:
        nonlocal drained
        while True:
            async with pool.acquire() as connection, connection.transaction():
                body = await copy_out(connection, queries.take_batch(batch_size, MAX_BYTES))
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
    async with aiohttp.ClientSession() as session:
        client = ChClient(
            session, url=settings.clickhouse_url, user=settings.clickhouse_user, database=SCRATCH
        )

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
    """What one timed relay run measured."""

    events: int
    seconds: float
    peak_rss_mb: float


def peak_rss_mb(pid: int) -> float:
    """Peak resident memory of a running process (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def relay_run(
    url: str,
    settings: RelaySettings,
    envelopes: list[Envelope],
    *,
    batch_size: int,
    concurrency: int,
    archive: bool = True,
    log_level: str = "WARNING",
) -> RelayRun:
    """Start the relay, commit the events, time until the outbox is empty."""
    port = free_port()
    await truncate_archive(url)
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "CLICKHOUSE_DATABASE": SCRATCH,
        "RELAY_BATCH_SIZE": str(batch_size),
        "RELAY_CONCURRENCY": str(concurrency),
        "RELAY_HTTP_PORT": str(port),
        "RELAY_POLL_INTERVAL": "1",
        "LOG_LEVEL": log_level,
        "DIE_HARD_ENV_FILE": os.devnull,
        "RELAY_ARCHIVE_RETENTION": "24h" if archive else "0",
    }
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "relay", env=env, cwd=ROOT)
    try:
        await wait_ready(port)
        connection = await asyncpg.connect(url)
        try:
            await prefill(url, envelopes)  # COPY commits on return: the relay starts now
            started = time.perf_counter()
            # Polling is the measurement itself: nothing else says "the outbox is empty".
            while await connection.fetchval(f"SELECT EXISTS (SELECT 1 FROM {OUTBOX_TABLE})"):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            seconds = time.perf_counter() - started
        finally:
            await connection.close()
        return RelayRun(events=len(envelopes), seconds=seconds, peak_rss_mb=peak_rss_mb(process.pid))
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), timeout=60)


async def truncate_archive(url: str) -> None:
    """Empty the archive, so every archiving run writes into the same empty table."""
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(f"TRUNCATE {ARCHIVE_TABLE}")
    finally:
        await connection.close()


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


async def clickhouse_counts(settings: RelaySettings) -> tuple[int, int]:
    """Rows and distinct event ids in the scratch `event_log` (before any merge)."""
    async with aiohttp.ClientSession() as session:
        client = ChClient(
            session, url=settings.clickhouse_url, user=settings.clickhouse_user, database=SCRATCH
        )
        row = await client.fetchrow("SELECT count() AS rows, uniqExact(event_id) AS ids FROM event_log")
        return row["rows"], row["ids"]


async def reset_clickhouse(settings: RelaySettings) -> None:
    """A fresh scratch database with the relay's schema."""
    async with aiohttp.ClientSession() as session:
        client = ChClient(session, url=settings.clickhouse_url, user=settings.clickhouse_user)
        await client.execute(f"DROP DATABASE IF EXISTS {SCRATCH}")
        await schema.apply(client, SCRATCH)


@dataclass
class PoisonFlood:
    """Relay throughput on clean events and on the same number with 1 in 100 refused by ClickHouse."""

    clean: list[float]
    poisoned: list[float]
    exact: bool = True

    def ratio(self) -> float:
        """Median over rounds of poisoned / clean, each pair measured back to back."""
        return statistics.median(p / c for p, c in zip(self.poisoned, self.clean, strict=True))


async def poison_flood(
    url: str, settings: RelaySettings, args: argparse.Namespace, flood: PoisonFlood
) -> None:
    """One round: the relay on `--poison-events` clean events, then on as many with 1% poisoned."""
    clean = realistic_events(args.poison_events, seed=11)
    poisoned = [
        dataclasses.replace(envelope, metadata_version=-1) if number % 100 == 50 else envelope
        for number, envelope in enumerate(clean)
    ]
    for envelopes, rates in ((clean, flood.clean), (poisoned, flood.poisoned)):
        await reset_clickhouse(settings)
        await truncate(url, DEAD_LETTER_TABLE)
        run = await relay_run(
            url,
            settings,
            envelopes,
            batch_size=args.batch_size,
            concurrency=args.concurrency,
            log_level="ERROR",  # not a warning per dead letter
        )
        rates.append(run.events / run.seconds)
        rows, ids = await clickhouse_counts(settings)
        refused = sum(1 for envelope in envelopes if envelope.metadata_version < 0)
        flood.exact &= rows == ids == len(envelopes) - refused
        flood.exact &= await count_rows(url, DEAD_LETTER_TABLE) == refused


async def truncate(url: str, table: str) -> None:
    """Empty a table of the scratch database."""
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(f"TRUNCATE {table}")
    finally:
        await connection.close()


async def count_rows(url: str, table: str) -> int:
    """Rows in a table of the scratch database."""
    connection = await asyncpg.connect(url)
    try:
        return int(await connection.fetchval(f"SELECT count(*) FROM {table}"))
    finally:
        await connection.close()


async def main(args: argparse.Namespace) -> None:
    settings = load(RelaySettings)
    url = await recreate_database(settings.database_url, SCRATCH)
    migrate(url)
    envelopes = realistic_events(args.events)
    payload_bytes = sum(len(e.event_context) for e in envelopes) / len(envelopes)
    drains: list[float] = []
    naives: list[float] = []
    relays: list[RelayRun] = []
    unarchived: list[RelayRun] = []
    delivered_ok = True
    flood = PoisonFlood(clean=[], poisoned=[])
    for _ in range(args.rounds):
        await poison_flood(url, settings, args, flood)
        await prefill(url, envelopes)
        drained, seconds = await pg_drain(url, batch_size=args.batch_size, concurrency=args.concurrency)
        drains.append(drained / seconds)
        await reset_clickhouse(settings)
        run = await relay_run(
            url, settings, envelopes, batch_size=args.batch_size, concurrency=args.concurrency
        )
        relays.append(run)
        rows, ids = await clickhouse_counts(settings)
        delivered_ok &= rows == ids == args.events
        await reset_clickhouse(settings)
        run = await relay_run(
            url, settings, envelopes, batch_size=args.batch_size, concurrency=args.concurrency, archive=False
        )
        unarchived.append(run)
        rows, ids = await clickhouse_counts(settings)
        delivered_ok &= rows == ids == args.events
        await reset_clickhouse(settings)
        await prefill(url, envelopes)
        moved, seconds = await naive_relay(
            url, settings, batch_size=args.batch_size, concurrency=args.concurrency
        )
        naives.append(moved / seconds)
    report(
        args,
        payload_bytes=payload_bytes,
        drains=drains,
        relays=relays,
        unarchived=unarchived,
        naives=naives,
        flood=flood,
        delivered_ok=delivered_ok,
    )
    if not (delivered_ok and flood.exact):
        sys.exit(1)


def report(
    args: argparse.Namespace,
    *,
    payload_bytes: float,
    drains: list[float],
    relays: list[RelayRun],
    unarchived: list[RelayRun],
    naives: list[float],
    flood: PoisonFlood,
    delivered_ok: bool,
) -> None:
    """Print the figures, then one JSON line."""
    best_relay = max(relays, key=lambda run: run.events / run.seconds)
    relay_rate = best_relay.events / best_relay.seconds
    pg_rate = max(drains)
    print()
    print(f"events per run        {args.events:>12,}   (payload {payload_bytes:.0f} B on average)")
    print(f"batch size            {args.batch_size:>12,}")
    print(f"concurrency           {args.concurrency:>12}")
    print(f"rounds                {args.rounds:>12}   (best round counts)")
    print(
        f"pg drain (no sink)    {pg_rate:>12,.0f} events/s   rounds: {', '.join(f'{r:,.0f}' for r in drains)}"
    )
    relay_rates = [run.events / run.seconds for run in relays]
    bare_rates = [run.events / run.seconds for run in unarchived]
    bare_rate = max(bare_rates)
    print(f"relay -> ClickHouse   {relay_rate:>12,.0f} events/s   rounds: {_listed(relay_rates)}")
    print(f"  archive off         {bare_rate:>12,.0f} events/s   rounds: {_listed(bare_rates)}")
    archive_ratio = statistics.median(
        on / off for on, off in zip(relay_rates, bare_rates, strict=True)
    )  # each round runs the two back to back
    print(f"archive on / off      {archive_ratio:>12.2f}   (median of the rounds' ratios)")
    print(f"naive relay           {max(naives):>12,.0f} events/s   rounds: {_listed(naives)}")
    print(f"relay / pg drain      {relay_rate / pg_rate:>12.2f}")
    print(f"relay / naive relay   {relay_rate / max(naives):>12.2f}")
    print(f"relay peak RSS        {max(r.peak_rss_mb for r in relays):>12.1f} MB")
    print(f"1% poison flood       {max(flood.poisoned):>12,.0f} events/s   rounds: {_listed(flood.poisoned)}")
    print(f"  same events, clean  {max(flood.clean):>12,.0f} events/s   rounds: {_listed(flood.clean)}")
    print(f"poisoned / clean      {flood.ratio():>12.2f}   (median of the rounds' ratios)")
    print(f"poison set aside, rest once {'yes' if flood.exact else 'NO':>6}")
    print(f"every event once      {'yes' if delivered_ok else 'NO':>12}")
    print(
        json.dumps(
            {
                "relay_events_per_s": round(relay_rate),
                "pg_drain_events_per_s": round(pg_rate),
                "relay_to_pg_drain_ratio": round(relay_rate / pg_rate, 3),
                "relay_archive_off_events_per_s": round(bare_rate),
                "archive_on_to_off_ratio": round(archive_ratio, 3),
                "naive_relay_events_per_s": round(max(naives)),
                "relay_to_naive_ratio": round(relay_rate / max(naives), 2),
                "events": args.events,
                "batch_size": args.batch_size,
                "concurrency": args.concurrency,
                "peak_rss_mb": round(max(r.peak_rss_mb for r in relays), 1),
                "exactly_once": delivered_ok,
                "poison_flood_events": args.poison_events,
                "poison_flood_events_per_s": round(max(flood.poisoned)),
                "poison_flood_clean_events_per_s": round(max(flood.clean)),
                "poison_flood_to_clean_ratio": round(flood.ratio(), 3),
                "poison_flood_exact": flood.exact,
            }
        )
    )


def _listed(rates: list[float]) -> str:
    return ", ".join(f"{rate:,.0f}" for rate in rates)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    # The relay's own defaults: the benchmark measures what ships.
    defaults = RelaySettings.model_fields
    parser.add_argument("--batch-size", type=int, default=defaults["relay_batch_size"].default)
    parser.add_argument("--concurrency", type=int, default=defaults["relay_concurrency"].default)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--poison-events", type=int, default=100_000)
    uvloop.run(main(parser.parse_args()))
