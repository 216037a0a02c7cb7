"""What a durable acknowledgement costs: one server against two replicas with a quorum, side by side.

The benchmark starts a cluster of its own (ZooKeeper and two ClickHouse
replicas, `python -m devservices cluster` on free ports) and removes it at
the end. Each round, the same prefilled outbox is relayed by the real relay
(`python -m relay`, its default settings) into, in turn:

1. `single`: a plain `ReplacingMergeTree` on replica 1 alone (what a
   single-server install runs; no ZooKeeper involved);
2. `replicated`: the cluster schema (`CLICKHOUSE_CLUSTER`), both replicas
   known to the relay, no quorum (`RELAY_INSERT_QUORUM=1`): acknowledged by one
   replica, copied to the other in the background;
3. `quorum`: the same with the default quorum, both replicas, so an
   acknowledged batch is on both servers;
4. `quorum-serial`: the quorum with one forwarder (`RELAY_CONCURRENCY=1`):
   18.16 takes one quorum insert per table at a time and refuses the other
   forwarder's (code 286, retried after a back-off), so a single insert in
   flight may keep the quorum busier than two.

Rounds interleave the variants; the best and the median round of each are
printed, and the ratios use the medians (one noisy round moves a best figure
more than a median one). After each
run both replicas are counted: the raw rows beyond the distinct events are
what the deduplicating view still has to hide. The last line is one JSON object.

    python -m benchmarks.cluster [--events 200000] [--rounds 5] [--min-ratio 0.4] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import uvloop
from aiochclient import ChClient

from benchmarks.relay import SCRATCH, realistic_events, relay_run
from benchmarks.results import emit
from benchmarks.scratch import ROOT, free_port, migrate, scratch_postgres
from relay.core import schema
from relay.settings import RelaySettings
from shared.settings import load

CLUSTER = "die_hard"
COMMAND = (sys.executable, "-m", "devservices", "cluster")
VARIANTS = ("single", "replicated", "quorum", "quorum-serial")
LABELS = {
    "single": "1 server",
    "replicated": "2 replicas, no quorum",
    "quorum": "2 replicas, quorum 2",
    "quorum-serial": "quorum 2, 1 forwarder",
}


@dataclass(frozen=True)
class BenchCluster:
    """The benchmark's own cluster, on free ports."""

    http_ports: tuple[int, int]
    env: dict[str, str]

    @classmethod
    def on_free_ports(cls) -> BenchCluster:
        """A cluster description whose every port is free now."""
        http_ports = (free_port(), free_port())
        env = {
            **os.environ,
            "CLICKHOUSE_CLUSTER": CLUSTER,
            "CLUSTER_PREFIX": "bench",
            "CLUSTER_HTTP_PORTS": " ".join(map(str, http_ports)),
            "CLUSTER_TCP_PORTS": f"{free_port()} {free_port()}",
            "CLUSTER_INTERSERVER_PORTS": f"{free_port()} {free_port()}",
            "CLUSTER_ZOOKEEPER_PORT": str(free_port()),
        }
        return cls(http_ports, env)

    def script(self, command: str) -> None:
        """Run `python -m devservices cluster COMMAND` for this cluster."""
        subprocess.run([*COMMAND, command], cwd=ROOT, env=self.env, check=True, stdout=subprocess.DEVNULL)

    def url(self, replica: int) -> str:
        """HTTP address of replica 1 or 2."""
        return f"http://127.0.0.1:{self.http_ports[replica - 1]}/"

    def relay_environment(self, variant: str, database: str) -> dict[str, str]:
        """The relay's ClickHouse settings for one variant."""
        if variant == "single":
            return {
                "CLICKHOUSE_HOST": "127.0.0.1",
                "CLICKHOUSE_PORT": str(self.http_ports[0]),
                "CLICKHOUSE_DATABASE": database,
            }
        return {
            "CLICKHOUSE_HOSTS": ",".join(f"127.0.0.1:{port}" for port in self.http_ports),
            "CLICKHOUSE_CLUSTER": CLUSTER,
            "CLICKHOUSE_DATABASE": database,
            "RELAY_INSERT_QUORUM": "1" if variant == "replicated" else "",
            **({"RELAY_CONCURRENCY": "1"} if variant == "quorum-serial" else {}),
            # 18.16 takes one quorum insert per table at a time: the other
            # forwarder's insert is refused (code 286) and retried, a warning each.
            "LOG_LEVEL": "ERROR",
        }


async def create_schema(cluster: BenchCluster, variant: str, database: str) -> None:
    """A fresh database with the variant's schema, created as `relay migrate` does."""
    async with aiohttp.ClientSession() as session:
        client = ChClient(session, url=cluster.url(1))
        await schema.apply(client, database, None if variant == "single" else CLUSTER)


async def counts(url: str, database: str) -> tuple[int, int]:
    """Raw rows and distinct events in `event_log` on one server (before any merge)."""
    async with aiohttp.ClientSession() as session:
        client = ChClient(session, url=url, database=database)
        row = await client.fetchrow("SELECT count() AS rows, uniqExact(event_id) AS ids FROM event_log")
        return int(row["rows"]), int(row["ids"])


async def settled_counts(url: str, database: str, events: int) -> tuple[int, int]:
    """`counts`, once the server has every event or 30 s have passed (without a quorum,
    the second replica copies in the background)."""
    rows, ids = await counts(url, database)
    for _ in range(300):
        if ids >= events:
            break
        await asyncio.sleep(0.1)
        rows, ids = await counts(url, database)
    return rows, ids


async def main(args: argparse.Namespace) -> None:
    settings = load(RelaySettings)
    cluster = BenchCluster.on_free_ports()
    cluster.script("up")
    try:
        async with scratch_postgres(settings.postgres_admin_dsn, SCRATCH) as url:
            migrate(url)
            envelopes = realistic_events(args.events)
            rates: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
            extra_rows = 0
            exactly_once = True
            for _ in range(args.rounds):
                for variant in VARIANTS:
                    database = f"bench_{variant.replace('-', '_')}_{uuid.uuid4().hex[:6]}"
                    await create_schema(cluster, variant, database)
                    run = await relay_run(
                        url,
                        settings,
                        envelopes,
                        batch_size=settings.relay_batch_size,
                        concurrency=settings.relay_concurrency,
                        extra_env=cluster.relay_environment(variant, database),
                    )
                    rates[variant].append(run.events / run.seconds)
                    for replica in (1,) if variant == "single" else (1, 2):
                        rows, ids = await settled_counts(cluster.url(replica), database, args.events)
                        exactly_once &= ids == args.events
                        extra_rows += rows - ids
    finally:
        cluster.script("purge")
    best = {variant: max(values) for variant, values in rates.items()}
    middle = {variant: statistics.median(values) for variant, values in rates.items()}
    print()
    print(f"events per run            {args.events:>10,}   rounds: {args.rounds}")
    print(f"{'':<25} {'median':>10} {'best':>10}   rounds (events/s)")
    for variant, label in LABELS.items():
        listed = ", ".join(f"{rate:,.0f}" for rate in rates[variant])
        print(f"{label:<25} {middle[variant]:>10,.0f} {best[variant]:>10,.0f}   {listed}")
    quorum = middle["quorum"] / middle["single"]
    print(f"quorum / 1 server         {quorum:>10.2f}   (medians)")
    serial = middle["quorum-serial"] / middle["single"]
    print(f"quorum, 1 fwd / 1 server  {serial:>10.2f}   (medians)")
    print(f"no quorum / 1 server      {middle['replicated'] / middle['single']:>10.2f}   (medians)")
    print(f"raw rows beyond events    {extra_rows:>10}   (what the deduplicating view still hides)")
    print(f"every event on every server {'yes' if exactly_once else 'NO':>8}")
    result = {
        "single_events_per_s": round(middle["single"]),
        "replicated_events_per_s": round(middle["replicated"]),
        "quorum_events_per_s": round(middle["quorum"]),
        "quorum_to_single_ratio": round(quorum, 3),
        "quorum_serial_events_per_s": round(middle["quorum-serial"]),
        "quorum_serial_to_single_ratio": round(serial, 3),
        "replicated_to_single_ratio": round(middle["replicated"] / middle["single"], 3),
        "best_events_per_s": {variant: round(rate) for variant, rate in best.items()},
        "raw_rows_beyond_events": extra_rows,
        "events": args.events,
        "rounds": args.rounds,
        "exactly_once": exactly_once,
    }
    emit(result, args.json)
    if not exactly_once:
        sys.exit(1)
    if quorum < args.min_ratio:
        print(f"quorum / 1 server {quorum:.2f} is below the floor {args.min_ratio:.2f}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--min-ratio", type=float, default=0.0, help="fail when quorum / 1 server (medians) is below this"
    )
    parser.add_argument("--json", type=Path, help="also write the JSON line to this file")
    uvloop.run(main(parser.parse_args()))
