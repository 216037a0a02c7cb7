"""What completeness costs: the archive of delivered events, and a 1% poison flood, measured side by side.

In one run, against the relay benchmark's scratch databases, each round runs
the real relay (`python -m relay`, its default settings) back to back on:

1. 200,000 realistic events with the archive on (the default), then off
   (`RELAY_ARCHIVE_RETENTION=0`): what keeping delivered events costs; after
   the run with the archive on, the archive's size on disk per million events,
   and `relay replay` sending them all again into an emptied ClickHouse;
2. 100,000 events, then the same events with one in a hundred refused by
   ClickHouse (a negative `metadata_version`): what isolating poison costs.

Every run checks its result (each event once in ClickHouse, each refused one
in the dead-letter table). Ratios are the median of the rounds' ratios, each
pair measured back to back on a noisy machine. The last line is one JSON object.

    python -m benchmarks.completeness [--events 200000] [--poison-events 100000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import statistics
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import uvloop

from benchmarks.machine import Machine
from benchmarks.relay import (
    SCRATCH,
    clickhouse_counts,
    realistic_events,
    relay_run,
    reset_clickhouse,
    scratch_databases,
)
from benchmarks.results import emit
from benchmarks.scratch import ROOT
from relay.settings import RelaySettings
from shared.events import Envelope
from shared.outbox import ARCHIVE_TABLE, DEAD_LETTER_TABLE
from shared.settings import load


async def execute(url: str, sql: str) -> object:
    """One statement on the scratch database; its single value."""
    connection = await asyncpg.connect(url)
    try:
        return await connection.fetchval(sql)
    finally:
        await connection.close()


async def timed(
    url: str, settings: RelaySettings, envelopes: list[Envelope], args: argparse.Namespace, **env: str
) -> tuple[float, bool]:
    """Events/s of one relay run from an empty archive and dead-letter table; whether it was exact."""
    await reset_clickhouse(settings)
    await execute(url, f"TRUNCATE {ARCHIVE_TABLE}, {DEAD_LETTER_TABLE}")
    run = await relay_run(
        url,
        settings,
        envelopes,
        batch_size=args.batch_size,
        concurrency=args.concurrency,
        extra_env={"LOG_LEVEL": "ERROR", **env},  # not a warning per dead letter
    )
    refused = sum(1 for envelope in envelopes if envelope.metadata_version < 0)
    rows, ids = await clickhouse_counts(settings)
    dead = await execute(url, f"SELECT count(*) FROM {DEAD_LETTER_TABLE}")
    return run.events / run.seconds, rows == ids == len(envelopes) - refused and dead == refused


# Every partition of the archive, with its indexes and TOAST, in bytes.
ARCHIVE_BYTES = f"""
    SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0)::bigint
      FROM pg_inherits WHERE inhparent = '{ARCHIVE_TABLE}'::regclass
"""


async def replayed(url: str, settings: RelaySettings, events: int) -> tuple[float, bool]:
    """Events/s of `relay replay` sending the whole archive into an empty ClickHouse; whether exact."""
    await reset_clickhouse(settings)
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "CLICKHOUSE_DATABASE": SCRATCH,
        "LOG_LEVEL": "WARNING",
        "DIE_HARD_ENV_FILE": os.devnull,
    }
    since = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relay",
        "replay",
        "--since",
        since,
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    stdout, _ = await process.communicate()
    summary = json.loads(stdout.decode().strip().splitlines()[-1])  # timed by the command, start-up aside
    rows, ids = await clickhouse_counts(settings)
    return summary["events"] / summary["seconds"], summary["events"] == rows == ids == events


def _listed(rates: list[float]) -> str:
    return ", ".join(f"{rate:,.0f}" for rate in rates)


def _ratio(numerators: list[float], denominators: list[float]) -> float:
    return statistics.median(n / d for n, d in zip(numerators, denominators, strict=True))


async def main(args: argparse.Namespace) -> dict[str, object]:
    settings = load(RelaySettings)
    async with scratch_databases(settings) as url:
        return await measure(args, settings, url)


async def measure(args: argparse.Namespace, settings: RelaySettings, url: str) -> dict[str, object]:
    """The archive on and off, a clean and a poisoned stream, and replay, round after round."""
    events = realistic_events(args.events)
    clean = realistic_events(args.poison_events, seed=11)
    poisoned = [
        dataclasses.replace(envelope, metadata_version=-1) if number % 100 == 50 else envelope
        for number, envelope in enumerate(clean)
    ]
    rates: dict[str, list[float]] = {"on": [], "off": [], "clean": [], "poisoned": [], "replay": []}
    archive_bytes: list[int] = []
    exact = True
    machine = Machine.sample()
    for _ in range(args.rounds):
        for name, envelopes, env in (
            ("on", events, {}),
            ("off", events, {"RELAY_ARCHIVE_RETENTION": "0"}),
            ("clean", clean, {}),
            ("poisoned", poisoned, {}),
        ):
            rate, ok = await timed(url, settings, envelopes, args, **env)
            rates[name].append(rate)
            exact &= ok
            if name == "on":
                archive_bytes.append(int(await execute(url, ARCHIVE_BYTES)))  # type: ignore[call-overload]
                rate, ok = await replayed(url, settings, len(envelopes))
                rates["replay"].append(rate)
                exact &= ok
    machine.finish()
    payload = statistics.mean(len(envelope.event_context) for envelope in events)
    archive_ratio = _ratio(rates["on"], rates["off"])
    poison_ratio = _ratio(rates["poisoned"], rates["clean"])
    print()
    print(f"events per run        {args.events:>12,}   (poison flood: {args.poison_events:,})")
    print(f"rounds                {args.rounds:>12}   (best round counts for rates)")
    print(f"archive on            {max(rates['on']):>12,.0f} events/s   rounds: {_listed(rates['on'])}")
    print(f"archive off           {max(rates['off']):>12,.0f} events/s   rounds: {_listed(rates['off'])}")
    print(f"archive on / off      {archive_ratio:>12.2f}   (median of the rounds' ratios)")
    print(f"clean                 {max(rates['clean']):>12,.0f} events/s   rounds: {_listed(rates['clean'])}")
    poisoned_rates = rates["poisoned"]
    print(f"1% poison             {max(poisoned_rates):>12,.0f} events/s   rounds: {_listed(poisoned_rates)}")
    print(f"poisoned / clean      {poison_ratio:>12.2f}   (median of the rounds' ratios)")
    per_million = statistics.median(archive_bytes) / args.events * 1_000_000 / 2**20
    print(
        f"archive size          {per_million:>12,.0f} MiB per million events (payload ~{payload:.0f} bytes)"
    )
    print(
        f"relay replay          {max(rates['replay']):>12,.0f} events/s   rounds: {_listed(rates['replay'])}"
    )
    print(f"every result exact    {'yes' if exact else 'NO':>12}")
    return {
        "archive_on_events_per_s": round(max(rates["on"])),
        "archive_off_events_per_s": round(max(rates["off"])),
        "archive_on_to_off_ratio": round(archive_ratio, 3),
        "poison_clean_events_per_s": round(max(rates["clean"])),
        "poison_flood_events_per_s": round(max(rates["poisoned"])),
        "poison_flood_to_clean_ratio": round(poison_ratio, 3),
        "archive_mib_per_million_events": round(per_million, 1),
        "replay_events_per_s": round(max(rates["replay"])),
        "events": args.events,
        "poison_events": args.poison_events,
        "exact": exact,
        "machine": machine.describe(),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = RelaySettings.model_fields
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--poison-events", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=defaults["relay_batch_size"].default)
    parser.add_argument("--concurrency", type=int, default=defaults["relay_concurrency"].default)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the JSON line to this file")
    arguments = parser.parse_args()
    result = uvloop.run(main(arguments))
    emit(result, arguments.json)
    if not result["exact"]:
        sys.exit(1)
