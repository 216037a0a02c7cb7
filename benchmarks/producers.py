"""What waking the relay costs the producers: outbox commit rate with each wake-up mechanism, side by side.

The requirement: producers keep at least 95% of their commit rate (no wake-up
at all) with the wake-up the site ships. In one run, against a scratch
database created by the site's own migrations and dropped here, the outbox is
written by each candidate, one schema (a copy of the migrated tables) each:

- `none`: no wake-up at all (the baseline);
- `after_commit` (what ships): the writer sends `WAKE_RELAY` on its own
  connection after its transaction committed, at most once per debounce
  window per process (`shared.outbox.WakeUpDebounce`; the benchmark is one
  process, so its producers share one);
- `polling`: no wake-up, the relay finds events by polling while they flow:
  to the producers the same as `none` (the pair shows the benchmark's noise);
- `trigger`: the statement trigger the outbox had before (debounced per
  session in its `WHEN` clause, then across sessions on a wake-up row);
- `trigger_floor`: a statement trigger whose `WHEN` is always false: what any
  trigger costs before its gate does anything, the floor for a cheaper gate;
- `every_commit`: a statement trigger calling `pg_notify` every time.

Each variant has N producer connections writing one `user_created` event per
transaction, while one more connection LISTENs on the channel as the relay
does. The variants take turns in short slices (rotating which goes first), so
a burst of load from elsewhere on the machine hits all of them alike; the
figures are medians over the slices, and each ratio is the median of the
ratios between slices of the same cycle.

    python -m benchmarks.producers [--clients 8] [--seconds 10] [--slice 0.5] [--runs 3] [--autocommit]
                                   [--variants none,after_commit,...] [--min-ratio 0.9]

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
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import uvloop

from benchmarks.machine import Machine
from benchmarks.results import emit
from benchmarks.scratch import migrate, scratch_name, scratch_postgres
from shared.events import Envelope, UserCreated
from shared.outbox import (
    EVENT_LOG_COLUMNS,
    NOTIFY_CHANNEL,
    NOTIFY_DEBOUNCE_MS,
    OUTBOX_TABLE,
    WAKE_RELAY,
    WakeUpDebounce,
)
from shared.settings import CommonSettings, load

SCRATCH_DATABASE = scratch_name("diehard_bench_producers")
ENVIRONMENT = "Local"
REQUIRED_RATIO = 0.95
SHIPPED = "after_commit"

# The schema the migrations build; every variant copies its outbox table.
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

# The wake-up the outbox had before (migration 0002, dropped by 0007): a
# statement trigger gated per session in its WHEN clause, debounced across
# sessions on a single row. Kept here, with its row, to be measured beside
# what replaced it.
_GATE = "die_hard.outbox_wake_after"
TRIGGER_BEFORE_SQL = f"""
CREATE TABLE {OUTBOX_TABLE}_wakeup (id smallint PRIMARY KEY, notified_at timestamptz NOT NULL);
INSERT INTO {OUTBOX_TABLE}_wakeup VALUES (1, '-infinity');

CREATE FUNCTION {OUTBOX_TABLE}_wake_relay() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config(
        '{_GATE}', (extract(epoch FROM clock_timestamp()) + {NOTIFY_DEBOUNCE_MS / 1000})::text, false
    );
    UPDATE {OUTBOX_TABLE}_wakeup SET notified_at = clock_timestamp()
     WHERE id = (
        SELECT id FROM {OUTBOX_TABLE}_wakeup
         WHERE id = 1
           AND notified_at < clock_timestamp() - interval '{NOTIFY_DEBOUNCE_MS} milliseconds'
           FOR UPDATE SKIP LOCKED
     );
    IF FOUND THEN
        PERFORM pg_notify('{NOTIFY_CHANNEL}', '');
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER {OUTBOX_TABLE}_wake_relay
AFTER INSERT ON {OUTBOX_TABLE}
FOR EACH STATEMENT
WHEN (
    coalesce(nullif(current_setting('{_GATE}', true), ''), '0')::float8
    < extract(epoch FROM clock_timestamp())
)
EXECUTE FUNCTION {OUTBOX_TABLE}_wake_relay();
"""

# The cheapest gate a trigger can have: one that never opens. What remains is
# the trigger machinery itself (an after-statement trigger event queued and
# its WHEN evaluated), which every trigger-based wake-up pays.
TRIGGER_FLOOR_SQL = f"""
CREATE FUNCTION {OUTBOX_TABLE}_never() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE TRIGGER {OUTBOX_TABLE}_never AFTER INSERT ON {OUTBOX_TABLE}
FOR EACH STATEMENT WHEN (false) EXECUTE FUNCTION {OUTBOX_TABLE}_never();
"""

# The columns the web site's EventLogClient writes (its trace headers stay empty here).
INSERT_SQL = (
    f"INSERT INTO {OUTBOX_TABLE} ({', '.join(EVENT_LOG_COLUMNS)})"
    f" VALUES ({', '.join(f'${number}' for number in range(1, len(EVENT_LOG_COLUMNS) + 1))})"
)


@dataclass(frozen=True, slots=True)
class Variant:
    """One way of waking the relay: name, label, the trigger its schema adds, whether writers ring."""

    key: str
    label: str
    trigger_sql: str = ""
    rings_after_commit: bool = False

    @property
    def schema(self) -> str:
        """The variant's own schema."""
        return f"wake_{self.key}"


VARIANTS = (
    Variant("none", "no wake-up"),
    Variant(SHIPPED, f"after commit, {NOTIFY_DEBOUNCE_MS} ms per process", rings_after_commit=True),
    Variant("polling", "none: the relay polls"),
    Variant("trigger", "trigger (before)", TRIGGER_BEFORE_SQL),
    Variant("trigger_floor", "trigger, WHEN false", TRIGGER_FLOOR_SQL),
    Variant("every_commit", "NOTIFY every commit", NOTIFY_EVERY_COMMIT_SQL),
)
BY_KEY = {variant.key: variant for variant in VARIANTS}


@dataclass(frozen=True, slots=True)
class Workload:
    """How many producers write, for how long, and in what transaction shape."""

    clients: int
    seconds: float
    slice: float
    autocommit: bool
    variants: tuple[Variant, ...] = VARIANTS

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
    server_cpu: float  # seconds on a core of the PostgreSQL backends serving the variant's producers

    @property
    def tps(self) -> float:
        """Committed transactions per second."""
        return self.transactions / self.elapsed

    @property
    def server_cpu_per_transaction(self) -> float:
        """Backend CPU seconds per committed transaction."""
        return self.server_cpu / max(self.transactions, 1)


@dataclass(slots=True)
class Result:
    """All slices of one variant, and their ratios to the no-wake-up slice of the same cycle."""

    variant: Variant
    slices: list[Slice] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    cpu_ratios: list[float] = field(default_factory=list)

    @property
    def cpu_ratio(self) -> float:
        """Median of no-wake-up backend CPU per transaction over this variant's, slice by slice."""
        return statistics.median(self.cpu_ratios)

    @property
    def server_cpu_us(self) -> float:
        """Median backend CPU per transaction, microseconds."""
        return statistics.median(piece.server_cpu_per_transaction for piece in self.slices) * 1e6

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

    async def drained(self, *, quiet: float = 0.1, limit: float = 30.0) -> int:
        """Wait until no notification has arrived for `quiet` seconds; return the count so far."""
        give_up = time.monotonic() + limit
        while time.monotonic() < give_up:
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), quiet)
            except TimeoutError:
                break
        return self.received


async def prepare_scratch_database(url: str, variants: tuple[Variant, ...]) -> None:
    """Migrate the (fresh) scratch database and give it one schema per variant."""
    migrate(url)
    conn = await asyncpg.connect(url)
    try:
        for variant in variants:
            await conn.execute(f"CREATE SCHEMA {variant.schema}; SET search_path TO {variant.schema}")
            # LIKE copies columns, defaults, constraints and indexes, not triggers.
            await conn.execute(
                f"CREATE TABLE {OUTBOX_TABLE} (LIKE {MIGRATED_SCHEMA}.{OUTBOX_TABLE} INCLUDING ALL)"
            )
            if variant.trigger_sql:
                await conn.execute(variant.trigger_sql)
        # Start from a clean checkpoint; without the privilege the runs are only noisier.
        with contextlib.suppress(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


@dataclass(frozen=True, slots=True)
class Writer:
    """How one producer connection writes: the transaction shape, and the wake-up it sends after commit."""

    autocommit: bool
    debounce: WakeUpDebounce | None = None  # set: ring after commit, as the site does

    async def write(self, conn: asyncpg.Connection, envelope: Envelope) -> None:
        """One event in one transaction, then (when due) the wake-up on the same connection."""
        if self.autocommit:
            await conn.execute(INSERT_SQL, *envelope.columns().values())
        else:
            async with conn.transaction():
                await conn.execute(INSERT_SQL, *envelope.columns().values())
        if self.debounce is not None and self.debounce.due():
            await conn.execute(WAKE_RELAY)


async def produce(conn: asyncpg.Connection, deadline: float, *, client: int, writer: Writer) -> int:
    """Write one `user_created` event per transaction until the deadline; return the count."""
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
        await writer.write(conn, envelope)
        done += 1
    return done


@dataclass(slots=True)
class Producers:
    """A variant's producer connections, how they write, and the PostgreSQL backends serving them."""

    connections: list[asyncpg.Connection]
    writer: Writer
    backends: list[int] = field(default_factory=list)

    def server_cpu(self) -> float:
        """CPU seconds the backends have used so far (`/proc/PID/schedstat`, nanoseconds; 0 if unreadable).

        Other load on the machine makes a slice slower, not its transactions
        costlier: CPU per transaction compares the variants where throughput
        is at the mercy of the neighbours.
        """
        total = 0
        for pid in self.backends:
            with contextlib.suppress(OSError, ValueError):
                total += int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])
        return total / 1e9


async def open_producers(url: str, variant: Variant, workload: Workload) -> Producers:
    """The variant's producer connections, warmed up (prepared statement, plpgsql, caches)."""
    connections = await asyncio.gather(
        *(
            asyncpg.connect(url, server_settings={"search_path": variant.schema})
            for _ in range(workload.clients)
        )
    )
    # One process: its producers share one debouncer, as a web worker's threads do.
    writer = Writer(workload.autocommit, WakeUpDebounce() if variant.rings_after_commit else None)
    for conn in connections:
        await produce(conn, time.perf_counter() + 0.05, client=-1, writer=writer)
    backends = [int(await conn.fetchval("SELECT pg_backend_pid()")) for conn in connections]
    return Producers(list(connections), writer, backends)


async def run_slice(producers: Producers, workload: Workload, listener: Listener, *, cycle: int) -> Slice:
    """All of a variant's producers writing for one slice of time."""
    before = await listener.drained()
    cpu_before = producers.server_cpu()
    started = time.perf_counter()
    deadline = started + workload.slice
    counts = await asyncio.gather(
        *(
            produce(conn, deadline, client=cycle * workload.clients + number, writer=producers.writer)
            for number, conn in enumerate(producers.connections)
        )
    )
    elapsed = time.perf_counter() - started
    cpu = producers.server_cpu() - cpu_before
    after = await listener.drained()
    return Slice(sum(counts), elapsed, after - before, cpu)


async def benchmark(server_url: str, workload: Workload) -> dict[Variant, Result]:
    """Run the variants in rotating turns on a scratch database, dropped afterwards; return their results."""
    async with scratch_postgres(server_url, SCRATCH_DATABASE) as url:
        await prepare_scratch_database(url, workload.variants)
        return await take_turns(url, workload)


async def take_turns(url: str, workload: Workload) -> dict[Variant, Result]:
    """Run the variants in rotating turns, one slice each per cycle; return their results."""
    variants = workload.variants
    producers: dict[Variant, Producers] = {}
    listening: asyncpg.Connection | None = None
    try:
        listening = await asyncpg.connect(url)
        listener = Listener()
        await listening.add_listener(NOTIFY_CHANNEL, listener)
        for variant in variants:
            producers[variant] = await open_producers(url, variant, workload)
        results = {variant: Result(variant) for variant in variants}
        print(f"  {'cycle':>5}" + "".join(f"  {variant.key:>13}" for variant in variants) + "   (tx/s)")
        for cycle in range(workload.cycles):
            shift = cycle % len(variants)
            slices = {}
            for variant in variants[shift:] + variants[:shift]:
                slices[variant] = await run_slice(producers[variant], workload, listener, cycle=cycle)
            baseline = slices[variants[0]]
            for variant, piece in slices.items():
                results[variant].slices.append(piece)
                results[variant].ratios.append(piece.tps / baseline.tps)
                if piece.server_cpu_per_transaction > 0:
                    results[variant].cpu_ratios.append(
                        baseline.server_cpu_per_transaction / piece.server_cpu_per_transaction
                    )
            print(
                f"  {cycle + 1:>5}" + "".join(f"  {slices[variant].tps:>13,.0f}" for variant in variants),
                flush=True,
            )
    finally:
        for group in producers.values():
            await asyncio.gather(*(conn.close() for conn in group.connections))
        if listening is not None:
            await listening.close()
    return results


def report(results: dict[Variant, Result], workload: Workload) -> dict[str, object]:
    """Print the table and return the figures for the JSON line."""
    print(f"\nmedians over {workload.cycles} slices of {workload.slice:g} s per variant")
    print(
        f"{'variant':<14} {'tx/s':>9} {'vs none':>8} {'(range)':>11} {'server µs/tx':>12} {'CPU vs none':>11}"
        f" {'notifications/s':>16}   what"
    )
    figures: dict[str, object] = {}
    for variant, result in results.items():
        spread = f"{min(result.ratios):.2f}-{max(result.ratios):.2f}"
        cpu_ratio = result.cpu_ratio if result.cpu_ratios else float("nan")
        print(
            f"{variant.key:<14} {result.tps:>9,.0f} {result.ratio:>8.3f} {spread:>11}"
            f" {result.server_cpu_us:>12.0f} {cpu_ratio:>11.3f}"
            f" {result.notifications_per_second:>16,.0f}   {variant.label}"
        )
        figures[f"producer_tps_{variant.key}"] = round(result.tps, 1)
        figures[f"producer_ratio_{variant.key}"] = round(result.ratio, 3)
        figures[f"producer_ratio_range_{variant.key}"] = [
            round(min(result.ratios), 3),
            round(max(result.ratios), 3),
        ]
        figures[f"producer_server_us_{variant.key}"] = round(result.server_cpu_us, 1)
        figures[f"producer_cpu_ratio_{variant.key}"] = round(cpu_ratio, 3)
        figures[f"notifications_per_s_{variant.key}"] = round(result.notifications_per_second, 1)
    print(
        "server µs/tx: CPU the PostgreSQL backends serving the variant spent per committed transaction;"
        " CPU vs none: the baseline's over the variant's, slice by slice (the rate ratio it would have with"
        " the cores to itself)."
    )
    shipped = next((result for variant, result in results.items() if variant.key == SHIPPED), None)
    if shipped is not None:
        verdict = "meets" if shipped.ratio >= REQUIRED_RATIO else "MISSES"
        print(
            f"\nThe wake-up that ships ({SHIPPED}) keeps {shipped.ratio:.1%} of the producers' rate"
            f" ({verdict} the >= {REQUIRED_RATIO:.0%} requirement) and costs their transactions"
            f" {1 / shipped.cpu_ratio - 1:+.1%} CPU on the server."
        )
        figures["wakeup_ratio"] = round(shipped.ratio, 3)
        figures["wakeup_cpu_ratio"] = round(shipped.cpu_ratio, 3)
    figures.update(
        variants=[variant.key for variant in results],
        variant_labels={variant.key: variant.label for variant in results},
        wakeup_shipped=SHIPPED,
        required_ratio=REQUIRED_RATIO,
        debounce_ms=NOTIFY_DEBOUNCE_MS,
        transaction=workload.shape,
        clients=workload.clients,
        seconds=workload.seconds,
        slice_seconds=workload.slice,
    )
    return figures


def combine(runs: list[dict[str, object]]) -> dict[str, object]:
    """One run's figures as they are; several runs': each tx/s and ratio the median over the runs."""
    if len(runs) == 1:
        return {**runs[0], "runs": 1}
    combined = dict(runs[-1])
    for key, value in runs[-1].items():
        if isinstance(value, float) and key.startswith(
            ("producer_tps_", "producer_ratio_", "producer_cpu_ratio_", "producer_server_us_", "wakeup_")
        ):
            combined[key] = round(statistics.median(_number(run[key]) for run in runs), 3)
    shipped = [_number(run["wakeup_ratio"]) for run in runs if "wakeup_ratio" in run]
    cpu = [_number(run["wakeup_cpu_ratio"]) for run in runs if "wakeup_cpu_ratio" in run]
    combined.update(
        wakeup_cpu_ratio_runs=cpu,
        runs=len(runs),
        wakeup_ratio_runs=shipped,
        polling_ratio_runs=[
            _number(run["producer_ratio_polling"]) for run in runs if "producer_ratio_polling" in run
        ],
    )
    if shipped:
        print(
            f"\nmedian of {len(runs)} runs: {SHIPPED} keeps {combined['wakeup_ratio']:.1%} of the rate"
            f" (runs: {', '.join(f'{ratio:.3f}' for ratio in shipped)}), CPU ratio"
            f" {combined['wakeup_cpu_ratio']:.3f} (runs: {', '.join(f'{ratio:.3f}' for ratio in cpu)})"
        )
    return combined


def _number(value: object) -> float:
    assert isinstance(value, int | float)
    return float(value)


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


def variant_list(text: str) -> tuple[Variant, ...]:
    """argparse type: comma-separated variant names, `none` (the baseline) first whether named or not."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in BY_KEY]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown {', '.join(unknown)}: choose from {', '.join(BY_KEY)}")
    return (BY_KEY["none"], *(BY_KEY[name] for name in names if name != "none"))


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
        "--slice", type=positive_float, default=0.5, help="length of one turn of a variant (default 0.5)"
    )
    parser.add_argument(
        "--runs",
        type=positive_int,
        default=1,
        help="whole runs, each on a fresh database; medians (default 1)",
    )
    parser.add_argument(
        "--autocommit",
        action="store_true",
        help="one bare INSERT per transaction (the harshest case) instead of BEGIN; INSERT; COMMIT",
    )
    parser.add_argument(
        "--variants",
        type=variant_list,
        default=VARIANTS,
        help=f"wake-ups compared with none (default all: {', '.join(BY_KEY)})",
    )
    parser.add_argument(
        "--min-ratio",
        type=float,
        default=0.0,
        help=f"exit 1 when the shipped wake-up ({SHIPPED}) keeps less than this server CPU ratio (a guard)",
    )
    parser.add_argument("--json", type=Path, help="also write the JSON line to this file")
    args = parser.parse_args(argv)
    workload = Workload(
        clients=args.clients,
        seconds=args.seconds,
        slice=args.slice,
        autocommit=args.autocommit,
        variants=args.variants,
    )

    settings = load(CommonSettings)
    server = urlsplit(settings.postgres_admin_dsn)
    print(
        f"producers: {workload.clients} clients per variant, {workload.shape} per event,"
        f" {workload.cycles} x {workload.slice:g} s per variant"
        f" ({', '.join(variant.key for variant in workload.variants)}),"
        f" scratch database {SCRATCH_DATABASE} on {server.hostname}:{server.port or 5432}",
        flush=True,
    )
    machine = Machine.sample()
    runs = []
    for number in range(args.runs):
        if args.runs > 1:
            print(f"run {number + 1} of {args.runs}", flush=True)
        runs.append(report(uvloop.run(benchmark(settings.postgres_admin_dsn, workload)), workload))
    machine.finish()
    figures = {**combine(runs), "machine": machine.describe()}
    emit(figures, args.json)
    if "wakeup_ratio" in figures:
        # The guard reads the CPU ratio: the commit rate on a shared machine
        # moves with the neighbours' load, the work per transaction does not.
        ratio = float(figures["wakeup_cpu_ratio"])  # type: ignore[arg-type]
        if ratio < args.min_ratio:
            print(
                f"{SHIPPED}: the server CPU ratio {ratio:.3f} is below the floor {args.min_ratio:.2f}",
                file=sys.stderr,
            )
            sys.exit(1)


if __name__ == "__main__":
    main()
