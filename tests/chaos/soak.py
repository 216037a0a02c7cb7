"""`python -m tests.chaos.soak` (`make soak`): a million events, twenty minutes, faults at random.

    python -m tests.chaos.soak [--events 1000000] [--minutes 20] [--seed N] [--out DIR]
                               [--failover-every MINUTES]

The same servers, producer and accounting as the chaos suite, in one long
run: a steady relay that is never killed (its memory is the one watched for
growth) and a second relay that the faults kill, arm and restart. Every
20-60 s one fault from the suite's repertoire strikes. Throughput, lag
percentiles and relay memory over time are printed; the lag, the backlog and
the relays' memory are plotted into `DIR/soak.png`, the figures written to
`DIR/soak.json`. The last line is the same JSON summary as `make chaos`'s.

With `--failover-every M`, PostgreSQL is a primary with a synchronous
standby (given to producers and relays as both hosts), and every M minutes
the primary is killed with SIGKILL, the standby promoted, and a fresh standby
of the new primary built where the old one was: the next failover finds a
pair again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from tests.chaos import report
from tests.chaos.producer import make_events
from tests.chaos.servers import PostgresPair
from tests.chaos.suite import (
    DATABASE,
    Context,
    Profile,
    Result,
    Sample,
    Scenario,
    install_signal_handlers,
    run_scenario,
    scratch_servers,
)
from tests.support.faulty_proxy import Mode

MINUTE = 60.0


@dataclass(frozen=True, slots=True)
class Options:
    events: int
    minutes: float
    seed: int
    out: Path
    failover_every: float = 0.0  # minutes; 0: one PostgreSQL server, no failover


def profile(options: Options) -> Profile:
    return Profile(
        events=options.events,
        rate=options.events / (options.minutes * MINUTE),
        backlog=100_000,
        outage=150,
        drain_timeout=900,
        lag_bound=float("inf"),
        batch_size=20_000,
    )


Fault = Callable[[Context, asyncio.Event], Awaitable[None]]


async def kill_relay(ctx: Context, stop: asyncio.Event) -> None:
    churned = [relay for relay in ctx.fleet.running if relay.name != "relay-1"]
    if churned:
        signum = ctx.rng.choice((signal.SIGKILL, signal.SIGTERM))
        ctx.fleet.kill(ctx.rng.choice(churned), signum)
        ctx.fault(f"relay {signum.name}")


async def kill_after_ack(ctx: Context, stop: asyncio.Event) -> None:
    churned = [relay for relay in ctx.fleet.running if relay.name != "relay-1"]
    for relay in churned:
        ctx.fleet.kill(relay, signal.SIGTERM)
        await asyncio.to_thread(relay.process.wait, 30)
        relay.fault = "kill_after_ack"
    ctx.fault("relay armed to die between ack and commit")
    await ctx.pause(stop, 10)
    ctx.fleet.disarm()


async def clickhouse_kill9(ctx: Context, stop: asyncio.Event) -> None:
    ctx.clickhouse.kill()
    ctx.fault("clickhouse SIGKILL")
    await asyncio.sleep(ctx.rng.uniform(1, 5))
    await ctx.start_clickhouse()


async def clickhouse_outage(ctx: Context, stop: asyncio.Event) -> None:
    await asyncio.to_thread(ctx.clickhouse.stop)
    ctx.fault("clickhouse stopped")
    # Minutes: at the soak's rate, long enough for a backlog of about 100,000 events.
    await ctx.pause(stop, ctx.rng.uniform(120, ctx.profile.outage))
    await ctx.start_clickhouse()


async def proxy_fault(ctx: Context, stop: asyncio.Event) -> None:
    mode = ctx.rng.choice((Mode.SLOW, Mode.STALL, Mode.CUT, Mode.REFUSE))
    ctx.proxy.set_mode(mode)
    ctx.fault(f"proxy {mode}")
    await ctx.pause(stop, ctx.rng.uniform(5, 15))
    ctx.proxy.set_mode(Mode.PASS)


async def terminate_backends(ctx: Context, stop: asyncio.Event) -> None:
    await asyncio.to_thread(
        ctx.postgres.execute,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE application_name LIKE 'die-hard-relay%'",
    )
    ctx.fault("relay backends terminated")


async def postgres_restart(ctx: Context, stop: asyncio.Event) -> None:
    mode = ctx.rng.choice(("fast", "immediate"))
    await asyncio.to_thread(ctx.postgres.stop, mode=mode)
    ctx.fault(f"postgres {mode} restart")
    await asyncio.sleep(ctx.rng.uniform(0.5, 3))
    await ctx.start_postgres()


async def hold_xmin(ctx: Context, stop: asyncio.Event) -> None:
    try:
        holder = await asyncpg.connect(ctx.dsn)
    except (OSError, asyncpg.PostgresError):
        return
    try:
        await holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT txid_current()")
        ctx.fault("xmin held back")
        await ctx.pause(stop, ctx.rng.uniform(60, 180))
    finally:
        holder.terminate()


async def burst(ctx: Context, stop: asyncio.Event) -> None:
    writer = ctx.producer()
    if await writer.write(make_events(ctx.profile.backlog, ctx.rng)):
        ctx.fault("100k-event transaction")
    await writer.close()


async def late_commits(ctx: Context, stop: asyncio.Event) -> None:
    async def one() -> None:
        writer = ctx.producer()
        await writer.write(make_events(50, ctx.rng), hold=ctx.rng.uniform(2, 10))
        await writer.close()

    await asyncio.gather(*(one() for _ in range(10)))
    ctx.fault("late-committing transactions")


FAULTS: tuple[Fault, ...] = (
    kill_relay,
    kill_relay,
    kill_after_ack,
    clickhouse_kill9,
    clickhouse_outage,
    proxy_fault,
    proxy_fault,
    terminate_backends,
    postgres_restart,
    hold_xmin,
    burst,
    late_commits,
)


def soak(failover_every: float) -> Callable[[Context], Awaitable[None]]:
    """The soak's scenario, with a PostgreSQL failover every `failover_every` minutes (0: none)."""

    async def run(ctx: Context) -> None:
        """A million events over twenty minutes or more, one random fault every 20-60 s."""
        pair = await _pair(ctx) if failover_every else None
        await ctx.start_relays(2)
        ctx.notes.append(f"started {time.time():.0f}")
        last_failover = time.monotonic()

        async def chaos(stop: asyncio.Event) -> None:
            nonlocal last_failover
            while await ctx.pause(stop, ctx.rng.uniform(20, 60)):
                if pair is not None and time.monotonic() - last_failover >= failover_every * MINUTE:
                    await fail_over(ctx, pair)
                    last_failover = time.monotonic()
                    continue
                fault = ctx.rng.choice(FAULTS)
                await fault(ctx, stop)
                ctx.proxy.set_mode(Mode.PASS)

        await ctx.produce_while(chaos)

    return run


async def _pair(ctx: Context) -> PostgresPair:
    """A primary (a copy of the suite's) with a synchronous standby; producers and relays get both."""
    pair = PostgresPair.under(ctx.servers.children, ctx.fleet.logs / "pair", synchronous=True)
    ctx.cleanups.append(pair.remove)
    pair.standby.settings["wal_retrieve_retry_interval"] = "200ms"
    pair.create(source=ctx.servers.postgres)
    await _streaming(pair)
    ctx.use_postgres(pair.primary, dsn=pair.url(DATABASE))
    return pair


async def fail_over(ctx: Context, pair: PostgresPair) -> None:
    """SIGKILL the primary, promote the standby a second later, then give it a standby of its own."""
    pair.primary.kill()
    ctx.fault("postgres primary SIGKILL")
    await asyncio.sleep(1.0)
    pair.standby.promote()
    ctx.use_postgres(pair.standby)
    ctx.fault("postgres standby promoted")
    pair.rejoin()
    await asyncio.to_thread(pair.standby.wait_ready)
    await _streaming(pair, as_configured=False)
    await asyncio.to_thread(pair.resume_synchronous)
    await _streaming(pair)


async def _streaming(pair: PostgresPair, *, within: float = 120, as_configured: bool = True) -> None:
    deadline = time.monotonic() + within
    while not await asyncio.to_thread(pair.streaming, as_configured=as_configured):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the standby did not stream within {within:.0f} s")
        await asyncio.sleep(0.2)


def lag_percentiles(
    samples: list[Sample], *, window: float = MINUTE
) -> list[tuple[int, float, float, float]]:
    """(minute, p50, p99, max) of the sampled lag, per window."""
    if not samples:
        return []
    start = samples[0].at
    windows: dict[int, list[float]] = {}
    for sample in samples:
        windows.setdefault(int((sample.at - start) // window), []).append(sample.lag)
    rows = []
    for minute, lags in sorted(windows.items()):
        ordered = sorted(lags)
        rows.append(
            (
                minute,
                statistics.median(ordered),
                ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
                ordered[-1],
            )
        )
    return rows


def peak_drain_rate(samples: list[Sample], *, window: float = 5.0) -> int:
    """The fastest the backlog shrank over `window` seconds (events per second): the relays' headroom."""
    best = 0.0
    later = 0
    for sample in samples:
        while later < len(samples) and samples[later].at - sample.at < window:
            later += 1
        if later < len(samples):
            drop = sample.backlog - samples[later].backlog
            best = max(best, drop / (samples[later].at - sample.at))
    return round(best)


def plot(samples: list[Sample], faults: list[tuple[float, str]], path: Path) -> None:
    """Lag, backlog and relay memory over time, faults marked, into a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    start = samples[0].at
    minutes = [(sample.at - start) / MINUTE for sample in samples]
    figure, (lag, backlog, memory) = plt.subplots(3, 1, figsize=(11, 9), sharex=True)
    lag.plot(minutes, [sample.lag for sample in samples], linewidth=0.8)
    lag.set_ylabel("oldest waiting event (s)")
    backlog.plot(minutes, [sample.backlog for sample in samples], linewidth=0.8, color="tab:orange")
    backlog.set_ylabel("events in the outbox")
    names = sorted({name for sample in samples for name in sample.rss}, key=lambda n: int(n.split("-")[1]))
    for name in names:
        points = [((s.at - start) / MINUTE, s.rss[name] / 2**20) for s in samples if name in s.rss]
        memory.plot(
            [p[0] for p in points],
            [p[1] for p in points],
            linewidth=1.2 if name == "relay-1" else 0.6,
            label="steady relay" if name == "relay-1" else None,
            color="tab:green" if name == "relay-1" else "tab:gray",
        )
    memory.set_ylabel("relay RSS (MiB)")
    memory.set_xlabel("minutes")
    memory.legend(loc="upper left")
    for at, _ in faults:
        for axis in (lag, backlog, memory):
            axis.axvline((at - start) / MINUTE, color="red", alpha=0.15, linewidth=0.8)
    figure.suptitle("Soak: lag, backlog and relay memory (red lines: injected faults)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def read_faults(log: Path) -> list[tuple[float, str]]:
    if not log.exists():
        return []
    entries = []
    for line in log.read_text().splitlines():
        at, _, what = line.partition(" ")
        entries.append((float(at), what))
    return entries


async def run(options: Options) -> int:
    install_signal_handlers()
    options.out.mkdir(parents=True, exist_ok=True)
    shape = profile(options)
    print(
        f"soak: {options.events} events at {shape.rate:.0f}/s over {options.minutes:g} min,"
        f" seed {options.seed}",
        flush=True,
    )
    try:
        async with scratch_servers(keep_logs=True) as servers:
            scenario = Scenario("soak", soak(options.failover_every))
            result = await run_scenario(servers, scenario, shape, seed=options.seed)
            faults = read_faults(result.logs / "faults.log")
            samples = list(result.samples)
    except asyncio.CancelledError:
        print(report.summary([], failed=["interrupted"]), flush=True)
        return 1
    print(report.header())
    print(report.row(result))
    for problem in result.problems:
        print(f"    {problem}")
    figures = summarize(result, samples, faults)
    (options.out / "soak.json").write_text(json.dumps(figures, indent=2) + "\n")
    if samples:
        plot(samples, faults, options.out / "soak.png")
    keys = ("throughput_events_per_s", "peak_drain_events_per_s", "max_backlog", "relay_rss_mib")
    print(json.dumps({key: figures[key] for key in keys}), flush=True)
    print(report.summary([result]), flush=True)
    return 0 if result.passed else 1


def summarize(result: Result, samples: list[Sample], faults: list[tuple[float, str]]) -> dict[str, object]:
    """The soak's figures: throughput, lag per minute, the steady relay's memory."""
    # The steady relay's memory once warm (its first minute excluded), first tenth against last.
    start = samples[0].at if samples else 0.0
    steady = [s.rss["relay-1"] / 2**20 for s in samples if "relay-1" in s.rss and s.at - start > MINUTE]
    tenth = max(len(steady) // 10, 1)
    rows = lag_percentiles(samples)
    for minute, p50, p99, peak in rows:
        print(f"minute {minute:3d}: lag p50 {p50:6.2f} s  p99 {p99:6.2f} s  max {peak:6.2f} s")
    return {
        "events": result.accounting.events,
        "seconds": round(result.seconds),
        "throughput_events_per_s": round(result.accounting.events / max(result.seconds, 1.0)),
        "peak_drain_events_per_s": peak_drain_rate(samples),
        "faults": result.faults,
        "fault_kinds": dict(Counter(what for _, what in faults).most_common()),
        "lag_per_minute": [
            {"minute": m, "p50": round(a, 2), "p99": round(b, 2), "max": round(c, 2)} for m, a, b, c in rows
        ],
        "max_backlog": result.max_backlog,
        "relay_rss_mib": {
            "first_tenth_mean": round(statistics.mean(steady[:tenth]), 1) if steady else None,
            "last_tenth_mean": round(statistics.mean(steady[-tenth:]), 1) if steady else None,
            "max": round(max(steady), 1) if steady else None,
        },
        "lost": result.accounting.lost,
        "duplicated": result.accounting.duplicated,
        "unexpected": result.accounting.unexpected,
        "redelivered_hidden": result.accounting.redelivered,
        "indeterminate": result.accounting.indeterminate,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--out", type=Path, default=Path("docs/soak"), help="where soak.png and soak.json go")
    parser.add_argument(
        "--failover-every", type=float, default=0.0, help="minutes between PostgreSQL failovers (0: none)"
    )
    arguments = parser.parse_args(argv)
    options = Options(
        arguments.events, arguments.minutes, arguments.seed, arguments.out, arguments.failover_every
    )
    return asyncio.run(run(options))


if __name__ == "__main__":
    sys.exit(main())
