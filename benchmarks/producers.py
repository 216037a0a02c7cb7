"""What the relay's wake-up costs the producers: outbox write rate with and without it.

The requirement: producers keep at least 90% of their commit rate with the
wake-up on. A NOTIFY in every transaction roughly halves that rate, because
PostgreSQL serialises notifying commits on one cluster-wide lock; the outbox
trigger therefore notifies at most once per debounce window.

In one run, against a scratch database created by the site's own migrations
and dropped here, the outbox is written three ways, one schema each:

- `none`: a copy of the migrated tables with no trigger (the ceiling),
- `debounced`: the migrated tables themselves, with the wake-up trigger the
  migrations install,
- `every_commit`: a copy of the migrated tables with a statement-level trigger
  calling `pg_notify` every time.

Each variant has N producer connections writing one `user_created` event per
transaction, while one more connection LISTENs on the channel as the relay
does. The variants take turns in short slices (rotating which goes first), so
a burst of load from elsewhere on the machine hits all of them alike; the
figures are medians over the slices, and each ratio is the median of the
ratios between slices of the same cycle.

    python -m benchmarks.producers [--clients 8] [--seconds 10] [--slice 1] [--autocommit]

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import statistics
import sys
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import uvloop

from benchmarks.machine import Machine
from benchmarks.results import emit
from benchmarks.scratch import drop_database, migrate, recreate_database
from shared.events import Envelope, UserCreated
from shared.outbox import EVENT_LOG_COLUMNS, NOTIFY_CHANNEL, NOTIFY_DEBOUNCE_MS, OUTBOX_TABLE, WAKEUP_TABLE
from shared.settings import CommonSettings, load

SCRATCH_DATABASE = "diehard_bench_producers"
ENVIRONMENT = "Local"
REQUIRED_RATIO = 0.9

# The schema the migrations build; the other variants copy its tables.
MIGRATED_SCHEMA = "public"

NOTIFY_EVERY_COMMIT_SQL = f"""
CREATE FUNCTION {OUTBOX_TABLE}_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{NOTIFY_CHANNEL}', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER {OUTBOX_TABLE}_notify
AFTER INSERT ON {OUTBOX_TABLE}
FOR EACH STATEMENT EXECUTE FUNCTION {OUTBOX_TABLE}_notify();
"""

# The columns the web site's EventLogClient writes (its trace headers stay empty here).
INSERT_SQL = (
    f"INSERT INTO {OUTBOX_TABLE} ({', '.join(EVENT_LOG_COLUMNS)})"
    f" VALUES ({', '.join(f'${number}' for number in range(1, len(EVENT_LOG_COLUMNS) + 1))})"
)


@dataclass(frozen=True, slots=True)
class Variant:
    """One way of waking the relay: its name, label, schema, and the trigger SQL a copy adds."""

    key: str
    label: str
    schema: str
    trigger_sql: str = ""


VARIANTS = (
    Variant("none", "no wake-up", "none"),
    Variant("debounced", f"debounced wake-up ({NOTIFY_DEBOUNCE_MS} ms)", MIGRATED_SCHEMA),
    Variant("every_commit", "NOTIFY every commit", "every_commit", NOTIFY_EVERY_COMMIT_SQL),
)


@dataclass(frozen=True, slots=True)
class Workload:
    """How many producers write, for how long, and in what transaction shape."""

    clients: int
    seconds: float
    slice: float
    autocommit: bool

    @property
    def cycles(self) -> int:
        """Slices each variant gets."""
        return max(1, round(self.seconds / self.slice))

    @property
    def shape(self) -> str:
        """The transaction each producer repeats, in words."""
        return "INSERT (autocommit)" if self.autocommit else "BEGIN; INSERT; COMMIT"


@dataclass(frozen=True, slots=True)
class Slice:
    """One timed slice of one variant."""

    transactions: int
    elapsed: float
    notifications: int

    @property
    def tps(self) -> float:
        """Committed transactions per second."""
        return self.transactions / self.elapsed


@dataclass(slots=True)
class Result:
    """All slices of one variant, and their ratios to the no-wake-up slice of the same cycle."""

    variant: Variant
    slices: list[Slice] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)

    @property
    def tps(self) -> float:
        """Median transactions per second over the slices."""
        return statistics.median(piece.tps for piece in self.slices)

    @property
    def ratio(self) -> float:
        """Median ratio to the no-wake-up variant."""
        return statistics.median(self.ratios)

    @property
    def notifications_per_second(self) -> float:
        """Notifications delivered to the listener per second of writing."""
        return sum(piece.notifications for piece in self.slices) / sum(piece.elapsed for piece in self.slices)


@dataclass(eq=False, slots=True)
class Listener:
    """Counts the notifications delivered on the channel, as the relay would receive them."""

    received: int = 0
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self, *_: object) -> None:
        self.received += 1
        self.arrived.set()

    async def drained(self, *, quiet: float = 0.2, limit: float = 30.0) -> int:
        """Wait until no notification has arrived for `quiet` seconds; return the count so far."""
        give_up = time.monotonic() + limit
        while time.monotonic() < give_up:
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), quiet)
            except TimeoutError:
                break
        return self.received


async def create_scratch_database(server_url: str) -> str:
    """Create (afresh) the scratch database, migrated, with one schema per variant; return its URL."""
    url = await recreate_database(server_url, SCRATCH_DATABASE)
    migrate(url)
    conn = await asyncpg.connect(url)
    try:
        for variant in VARIANTS:
            if variant.schema == MIGRATED_SCHEMA:
                continue
            await conn.execute(f"CREATE SCHEMA {variant.schema}; SET search_path TO {variant.schema}")
            for table in (OUTBOX_TABLE, WAKEUP_TABLE):
                await conn.execute(f"CREATE TABLE {table} (LIKE {MIGRATED_SCHEMA}.{table} INCLUDING ALL)")
            if variant.trigger_sql:
                await conn.execute(variant.trigger_sql)
        # Start from a clean checkpoint; without the privilege the runs are only noisier.
        with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CHECKPOINT")
    finally:
        await conn.close()
    return url


async def produce(conn: asyncpg.Connection, deadline: float, *, client: int, autocommit: bool) -> int:
    """Write one `user_created` event per transaction until the deadline; return the count."""
    write = conn.execute if autocommit else partial(execute_in_transaction, conn)
    done = 0
    for n in itertools.count():
        if time.perf_counter() >= deadline:
            break
        envelope = Envelope.wrap(
            UserCreated(
                user_id=n, email=f"user-{client}-{n}@example.com", first_name="Ada", last_name="Lovelace"
            ),
            environment=ENVIRONMENT,
        )
        await write(INSERT_SQL, *envelope.columns().values())
        done += 1
    return done


async def execute_in_transaction(conn: asyncpg.Connection, query: str, *args: object) -> None:
    """BEGIN, the statement, COMMIT: the web site always writes events inside `transaction.atomic()`."""
    async with conn.transaction():
        await conn.execute(query, *args)


async def open_producers(url: str, variant: Variant, workload: Workload) -> list[asyncpg.Connection]:
    """The variant's producer connections, warmed up (prepared statement, plpgsql, caches)."""
    connections = await asyncio.gather(
        *(
            asyncpg.connect(url, server_settings={"search_path": variant.schema})
            for _ in range(workload.clients)
        )
    )
    for conn in connections:
        await produce(conn, time.perf_counter() + 0.05, client=-1, autocommit=workload.autocommit)
    return connections


async def run_slice(
    connections: list[asyncpg.Connection], workload: Workload, listener: Listener, *, cycle: int
) -> Slice:
    """All of a variant's producers writing for one slice of time."""
    before = await listener.drained()
    started = time.perf_counter()
    deadline = started + workload.slice
    counts = await asyncio.gather(
        *(
            produce(conn, deadline, client=cycle * workload.clients + number, autocommit=workload.autocommit)
            for number, conn in enumerate(connections)
        )
    )
    elapsed = time.perf_counter() - started
    after = await listener.drained()
    return Slice(sum(counts), elapsed, after - before)


async def benchmark(server_url: str, workload: Workload) -> dict[Variant, Result]:
    """Run the variants in rotating turns, one slice each per cycle; return their results."""
    url = await create_scratch_database(server_url)
    producers: dict[Variant, list[asyncpg.Connection]] = {}
    listening: asyncpg.Connection | None = None
    try:
        listening = await asyncpg.connect(url)
        listener = Listener()
        await listening.add_listener(NOTIFY_CHANNEL, listener)
        for variant in VARIANTS:
            producers[variant] = await open_producers(url, variant, workload)
        results = {variant: Result(variant) for variant in VARIANTS}
        print(f"  {'cycle':>5}" + "".join(f"  {variant.key:>14}" for variant in VARIANTS) + "   (tx/s)")
        for cycle in range(workload.cycles):
            shift = cycle % len(VARIANTS)
            slices = {}
            for variant in VARIANTS[shift:] + VARIANTS[:shift]:
                slices[variant] = await run_slice(producers[variant], workload, listener, cycle=cycle)
            baseline = slices[VARIANTS[0]].tps
            for variant, piece in slices.items():
                results[variant].slices.append(piece)
                results[variant].ratios.append(piece.tps / baseline)
            print(
                f"  {cycle + 1:>5}" + "".join(f"  {slices[variant].tps:>14,.0f}" for variant in VARIANTS),
                flush=True,
            )
    finally:
        for connections in producers.values():
            await asyncio.gather(*(conn.close() for conn in connections))
        if listening is not None:
            await listening.close()
        await drop_database(server_url, SCRATCH_DATABASE)
    return results


def report(results: dict[Variant, Result], workload: Workload) -> dict[str, object]:
    """Print the table and return the figures for the JSON line."""
    none, debounced, every_commit = (results[variant] for variant in VARIANTS)
    print(f"\nmedians over {workload.cycles} slices of {workload.slice:g} s per variant")
    print(f"{'variant':<30} {'tx/s':>9} {'vs none':>8} {'(range)':>13} {'notifications/s':>16}")
    for result in (none, debounced, every_commit):
        spread = f"{min(result.ratios):.2f}-{max(result.ratios):.2f}"
        print(
            f"{result.variant.label:<30} {result.tps:>9,.0f} {result.ratio:>8.2f} {spread:>13}"
            f" {result.notifications_per_second:>16,.0f}"
        )
    verdict = "meets" if debounced.ratio >= REQUIRED_RATIO else "MISSES"
    print(
        f"\nThe debounced wake-up keeps {debounced.ratio:.0%} of the producers' rate ({verdict} the"
        f" >= {REQUIRED_RATIO:.0%} requirement); a NOTIFY per commit keeps {every_commit.ratio:.0%}."
    )
    return {
        "producer_tps_no_wakeup": round(none.tps, 1),
        "producer_tps_debounced": round(debounced.tps, 1),
        "producer_tps_notify_every_commit": round(every_commit.tps, 1),
        "debounced_ratio": round(debounced.ratio, 3),
        "naive_ratio": round(every_commit.ratio, 3),
        "notifications_per_s_debounced": round(debounced.notifications_per_second, 1),
        "notifications_per_s_notify_every_commit": round(every_commit.notifications_per_second, 1),
        "debounce_ms": NOTIFY_DEBOUNCE_MS,
        "transaction": workload.shape,
        "clients": workload.clients,
        "seconds": workload.seconds,
        "slice_seconds": workload.slice,
    }


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def positive_float(text: str) -> float:
    """argparse type: a number > 0."""
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def main(argv: list[str] | None = None) -> None:
    """Parse the options, run the benchmark, print the table and the JSON line."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.producers", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--clients", type=positive_int, default=8, help="producer connections (default 8)")
    parser.add_argument(
        "--seconds", type=positive_float, default=10.0, help="writing time per variant (default 10)"
    )
    parser.add_argument(
        "--slice", type=positive_float, default=1.0, help="length of one turn of a variant (default 1)"
    )
    parser.add_argument(
        "--autocommit",
        action="store_true",
        help="one bare INSERT per transaction (the harshest case) instead of BEGIN; INSERT; COMMIT",
    )
    parser.add_argument(
        "--min-ratio",
        type=float,
        default=0.0,
        help="exit 1 when the debounced wake-up keeps less than this share of the rate (a regression guard)",
    )
    parser.add_argument("--json", type=Path, help="also write the JSON line to this file")
    args = parser.parse_args(argv)
    workload = Workload(
        clients=args.clients, seconds=args.seconds, slice=args.slice, autocommit=args.autocommit
    )

    settings = load(CommonSettings)
    server = urlsplit(settings.postgres_admin_dsn)
    print(
        f"producers: {workload.clients} clients per variant, {workload.shape} per event,"
        f" {workload.cycles} x {workload.slice:g} s per variant,"
        f" scratch database {SCRATCH_DATABASE} on {server.hostname}:{server.port or 5432}",
        flush=True,
    )
    machine = Machine.sample()
    results = uvloop.run(benchmark(settings.postgres_admin_dsn, workload))
    machine.finish()
    figures = {**report(results, workload), "machine": machine.describe()}
    emit(figures, args.json)
    ratio = float(figures["debounced_ratio"])  # type: ignore[arg-type]
    if ratio < args.min_ratio:
        print(f"debounced / no wake-up {ratio:.2f} is below the floor {args.min_ratio:.2f}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
