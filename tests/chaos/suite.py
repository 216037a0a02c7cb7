"""What every scenario runs on: the scratch servers, the context it acts through, the runner.

One scenario at a time: a fresh outbox and a fresh ClickHouse database, relays
started by the scenario, a producer, the fault, then healing (every server up,
every relay clean), draining, and the accounting.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiochclient import ChClient

from relay.core import schema
from shared.outbox import ARCHIVE_TABLE
from tests.chaos.checker import Accounting, account
from tests.chaos.producer import History, Producer
from tests.chaos.relays import ROOT, RelayFleet
from tests.chaos.servers import INSTANCE_PREFIX, SCRATCH_PREFIX, ScratchPostgres, sweep_stale_instances
from tests.support.faulty_proxy import FaultyProxy, Mode
from tests.support.processes import Children
from tests.support.scratch_clickhouse import ScratchClickHouse
from tests.support.waiting import free_port

DATABASE = "chaos"


@dataclass(frozen=True, slots=True)
class Profile:
    """How big and how long: `short` for CI, `soak` for the long run."""

    events: int  # paced events per scenario
    rate: float  # events per second
    backlog: int  # events written while ClickHouse is down / in one burst
    outage: float  # seconds ClickHouse stays down with producers going on
    drain_timeout: float
    lag_bound: float  # seconds the outbox's oldest event may wait while xmin is held back
    batch_size: int


SHORT = Profile(
    events=3000, rate=500, backlog=100_000, outage=8, drain_timeout=120, lag_bound=10, batch_size=5000
)


@dataclass
class Sample:
    """One look at the outbox and the relays."""

    at: float
    backlog: int
    lag: float
    rss: dict[str, int]


@dataclass
class Servers:
    """The suite's own PostgreSQL, ClickHouse and proxy, started once for all scenarios."""

    children: Children
    workdir: Path
    postgres: ScratchPostgres
    clickhouse: ScratchClickHouse
    proxy: FaultyProxy

    @property
    def dsn(self) -> str:
        return self.postgres.url(DATABASE)


@dataclass
class Context:
    """What a scenario acts through, and what it reports."""

    name: str
    servers: Servers
    profile: Profile
    fleet: RelayFleet
    rng: random.Random
    clickhouse_database: str
    history: History = field(default_factory=History)
    faults: int = 0
    problems: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    producers: list[Producer] = field(default_factory=list)
    # Checks that need the drained state (run after the outbox is empty).
    after: list[Callable[[], None]] = field(default_factory=list)
    # What to stop and remove once the scenario is accounted for (servers of its own).
    cleanups: list[Callable[[], None]] = field(default_factory=list)
    # The PostgreSQL the scenario writes to, drains and is accounted against:
    # the suite's, unless the scenario brings servers of its own (`use_postgres`).
    primary: ScratchPostgres | None = None
    dsn_override: str | None = None
    # Acknowledged events PostgreSQL itself lost (a failover to an asynchronous
    # standby): measured, reported apart from `lost` (see `checker`).
    rolled_back: set[uuid.UUID] | None = None

    @property
    def postgres(self) -> ScratchPostgres:
        """The server that takes writes now."""
        return self.primary or self.servers.postgres

    @property
    def dsn(self) -> str:
        """What producers and relays connect to (several hosts, for a pair)."""
        return self.dsn_override or self.servers.dsn

    def use_postgres(self, primary: ScratchPostgres, *, dsn: str | None = None) -> None:
        """From now on, write, drain and account against `primary` (reached through `dsn`, if given)."""
        self.primary = primary
        if dsn is not None:
            self.dsn_override = dsn
            self.fleet.env["DATABASE_URL"] = dsn

    @property
    def clickhouse(self) -> ScratchClickHouse:
        return self.servers.clickhouse

    @property
    def proxy(self) -> FaultyProxy:
        return self.servers.proxy

    def producer(
        self, *, per_transaction: int = 10, poison_share: float = 0.0, ages: tuple[timedelta, ...] = ()
    ) -> Producer:
        """A producer that records into this scenario's history."""
        return Producer(
            dsn=self.dsn,
            history=self.history,
            rng=self.rng,
            per_transaction=per_transaction,
            poison_share=poison_share,
            ages=ages,
        )

    def fault(self, what: str) -> None:
        """Count one injected fault (and log it with a timestamp)."""
        self.faults += 1
        with (self.fleet.logs / "faults.log").open("a") as log:
            log.write(f"{time.time():.3f} {what}\n")

    def check(self, condition: bool, problem: str) -> None:
        """Record a problem unless `condition` holds."""
        if not condition:
            self.problems.append(problem)

    async def start_relays(self, count: int, *, fault: str | None = None) -> None:
        """Start `count` relays and wait until they answer."""
        for _ in range(count):
            self.fleet.start(fault=fault)
        await self.fleet.ready()

    async def produce_while(
        self,
        chaos: Callable[[asyncio.Event], Coroutine[Any, Any, None]] | None = None,
        *,
        total: int | None = None,
        rate: float | None = None,
        producer: Producer | None = None,
        work: Awaitable[object] | None = None,
        keep_relays: bool = True,
    ) -> None:
        """Produce `total` events at `rate` (or await `work`), running `chaos(stop)` until done."""
        stop = asyncio.Event()
        if work is None:
            producer = producer or self.producer()
            self.producers.append(producer)
            work = producer.run(total=total or self.profile.events, rate=rate or self.profile.rate)
        tasks = [asyncio.create_task(self.fleet.keep(stop))] if keep_relays else []
        if chaos is not None:
            tasks.append(asyncio.create_task(chaos(stop)))
        try:
            await work
        finally:
            stop.set()
            await asyncio.gather(*tasks)

    async def pause(self, stop: asyncio.Event, seconds: float) -> bool:
        """Sleep `seconds` unless `stop` is set first; return whether to go on."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=seconds)
        return not stop.is_set()

    async def start_postgres(self) -> None:
        """Start the scratch PostgreSQL without blocking the producers while it comes up."""
        self.postgres.launch()
        await asyncio.to_thread(self.postgres.wait_ready)

    async def start_clickhouse(self) -> None:
        """Start the private ClickHouse without blocking the producers while it comes up."""
        self.clickhouse.launch()
        await asyncio.to_thread(self.clickhouse.wait_ready)

    async def pending(self) -> int:
        rows = await asyncio.to_thread(self.postgres.execute, "SELECT count(*) FROM event_outbox", DATABASE)
        return int(rows[0][0])


@dataclass(frozen=True, slots=True)
class Scenario:
    """A named fault scenario; its docstring says what it injects and what must hold."""

    name: str
    run: Callable[[Context], Awaitable[None]]

    @property
    def summary(self) -> str:
        return (self.run.__doc__ or "").strip().splitlines()[0]


SCENARIOS: dict[str, Scenario] = {}


def scenario(run: Callable[[Context], Awaitable[None]]) -> Callable[[Context], Awaitable[None]]:
    """Register a scenario under its function's name."""
    SCENARIOS[run.__name__] = Scenario(run.__name__, run)
    return run


@dataclass(frozen=True, slots=True)
class Result:
    """One scenario's row of the results table."""

    name: str
    accounting: Accounting
    faults: int
    max_backlog: int
    max_lag: float
    seconds: float
    problems: tuple[str, ...]
    logs: Path
    samples: tuple[Sample, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return self.accounting.clean and not self.problems


def relay_environment(servers: Servers, profile: Profile, clickhouse_database: str) -> dict[str, str]:
    """The relays' settings: the scratch servers, ClickHouse through the proxy, quick retries."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "VIRTUAL_ENV", "PYTHONPATH", "TZ")
    return {
        **{key: os.environ[key] for key in keep if key in os.environ},
        "DIE_HARD_ENV_FILE": os.devnull,
        "DATABASE_URL": servers.dsn,
        "REDIS_URL": "redis://127.0.0.1:1/0",  # the relay never uses it; never the machine's
        "CLICKHOUSE_HOST": "127.0.0.1",
        "CLICKHOUSE_PORT": str(servers.proxy.port),
        "CLICKHOUSE_DATABASE": clickhouse_database,
        "RELAY_BATCH_SIZE": str(profile.batch_size),
        "RELAY_POLL_INTERVAL": "0.5",
        "RELAY_BACKOFF_INITIAL": "0.05",
        "RELAY_BACKOFF_MAX": "1.0",
        "RELAY_CLICKHOUSE_TIMEOUT": "3",
        "RELAY_POSTGRES_TIMEOUT": "10",
        "RELAY_STATS_INTERVAL": "1",
        "RELAY_SHUTDOWN_GRACE": "10",
        # Scenarios reconcile right after the outbox drains (a failover one sets its own).
        "RELAY_RECONCILE_SETTLE": "0",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
    }


def _workdir() -> Path:
    """A fresh scratch directory (after removing what killed runs left behind)."""
    sweep_stale_instances(Path(tempfile.gettempdir()))
    workdir = Path(tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-"))
    workdir.chmod(0o755)  # the postgres account must reach its data directory
    return workdir


@contextlib.asynccontextmanager
async def scratch_servers(*, keep_logs: bool = False) -> AsyncIterator[Servers]:
    """Start the suite's own servers; stop and remove everything at the end, whatever happens."""
    workdir = _workdir()
    children = Children()
    proxy: FaultyProxy | None = None
    clickhouse = ScratchClickHouse(
        children, log=workdir / "clickhouse.log", name=f"{INSTANCE_PREFIX}{os.getpid()}"
    )
    postgres = ScratchPostgres(children, workdir / "postgres")
    failed = True
    try:
        postgres.create()
        postgres.start()
        clickhouse.start()
        proxy = FaultyProxy(upstream_port=clickhouse.http_port, port=free_port())
        await proxy.start()
        servers = Servers(children, workdir, postgres, clickhouse, proxy)
        postgres.execute(f"CREATE DATABASE {DATABASE}")
        migrate = children.spawn(
            [sys.executable, "manage.py", "migrate", "--no-input"],
            log=workdir / "migrate.log",
            cwd=ROOT,
            env={**os.environ, "DIE_HARD_ENV_FILE": os.devnull, "DEBUG": "true", "DATABASE_URL": servers.dsn},
        )
        if await asyncio.to_thread(migrate.wait) != 0:
            raise RuntimeError(f"migrations failed: {(workdir / 'migrate.log').read_text()[-2000:]}")
        yield servers
        failed = False
    finally:
        if proxy is not None:
            await proxy.close()
        # Servers first, without ceremony (an immediate shutdown does not wait
        # for sessions to end), then the relays, which then have nothing to finish.
        postgres.remove()
        clickhouse.remove()
        children.stop_all()
        if failed or keep_logs:
            print(f"chaos: logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


async def sample(context: Context, stop: asyncio.Event, *, interval: float = 0.5) -> None:
    """Record the backlog, the age of the oldest waiting event and relay memory until `stop`."""
    # Events a scenario dates hours or days back on purpose (for reconciliation)
    # would read as lag: the age counts only events dated within the last hour.
    query = (
        "SELECT count(*), coalesce(extract(epoch FROM now() - min(event_date_time)"
        " FILTER (WHERE event_date_time > now() - interval '1 hour')), 0) FROM event_outbox"
    )
    while not stop.is_set():
        try:
            rows = await asyncio.to_thread(context.postgres.execute, query, DATABASE)
        except Exception:
            rows = []
        if rows:
            backlog, lag = rows[0]
            context.samples.append(Sample(time.time(), int(backlog), float(lag), context.fleet.rss()))
        await context.pause(stop, interval)


async def heal(context: Context) -> None:
    """End every fault: servers up, proxy honest, relays clean and running."""
    context.proxy.set_mode(Mode.PASS)
    if context.postgres.process is None or context.postgres.process.poll() is not None:
        await asyncio.to_thread(context.postgres.stop, mode="immediate")
        await context.start_postgres()
    if context.clickhouse.process is None or context.clickhouse.process.poll() is not None:
        await context.start_clickhouse()
    context.fleet.disarm()
    if not context.fleet.running:
        context.fleet.start()
    await context.fleet.ready()


async def reconcile(context: Context, *arguments: str, where: str = "") -> dict[str, Any]:
    """Run `relay reconcile` on the scenario's databases, check it exits 0; return its JSON summary."""
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "relay", "reconcile", *arguments],
        cwd=ROOT,
        env=context.fleet.env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    summary: dict[str, Any] = json.loads(lines[-1]) if lines else {}
    context.notes.append(f"relay reconcile{where}: exit {done.returncode}, {json.dumps(summary)}")
    context.check(done.returncode == 0, f"relay reconcile exited {done.returncode}: {done.stderr[-500:]}")
    return summary


async def drain(context: Context) -> None:
    """Wait until the outbox is empty (or the profile's drain timeout passes)."""
    deadline = time.monotonic() + context.profile.drain_timeout
    while time.monotonic() < deadline:
        context.fleet.replace_dead()
        if await context.pending() == 0:
            return
        await asyncio.sleep(0.25)
    context.problems.append(f"outbox not drained within {context.profile.drain_timeout:.0f} s")


async def prepare_clickhouse(clickhouse: ScratchClickHouse, database: str) -> None:
    """A fresh ClickHouse database with the relay's schema, applied as `relay migrate` does."""
    await asyncio.to_thread(clickhouse.query, f"DROP DATABASE IF EXISTS {database}")
    async with aiohttp.ClientSession() as session:
        await schema.apply(ChClient(session, url=clickhouse.url), database)


async def _run_and_account(context: Context, scenario: Scenario, database: str) -> Accounting:
    servers, fleet = context.servers, context.fleet
    stop_sampling = asyncio.Event()
    sampler = asyncio.create_task(sample(context, stop_sampling))
    try:
        await scenario.run(context)
        await heal(context)
        await drain(context)
    finally:
        stop_sampling.set()
        await sampler
        codes = fleet.stop_all()
    context.check(all(code == 0 for code in codes), f"a relay exited with {codes} on SIGTERM")
    context.check(context.faults > 0, "no fault was injected")
    context.check(
        bool(context.history.ok),
        "no event was written: "
        + "; ".join(producer.last_error for producer in context.producers if producer.last_error),
    )
    accounting = await asyncio.to_thread(
        account,
        context.history,
        clickhouse=servers.clickhouse,
        database=database,
        postgres=context.postgres,
        pg_database=DATABASE,
        rolled_back=context.rolled_back,
    )
    for check in context.after:
        await asyncio.to_thread(check)
    return accounting


async def run_scenario(servers: Servers, scenario: Scenario, profile: Profile, *, seed: int) -> Result:
    """Run one scenario from a clean slate to its accounting."""
    started = time.monotonic()
    database = f"chaos_{scenario.name}"
    logs = servers.workdir / scenario.name
    logs.mkdir()
    # The archive too: reconciliation must compare this scenario's ClickHouse
    # database with this scenario's deliveries only.
    servers.postgres.execute(f"TRUNCATE event_outbox, event_outbox_dead_letter, {ARCHIVE_TABLE}", DATABASE)
    await prepare_clickhouse(servers.clickhouse, database)
    fleet = RelayFleet(servers.children, relay_environment(servers, profile, database), logs)
    context = Context(scenario.name, servers, profile, fleet, random.Random(seed), database)
    try:
        accounting = await _run_and_account(context, scenario, database)
    finally:
        _clean_up(context)
    if context.rolled_back is not None:
        context.notes.append(
            f"rpo_lost {accounting.rpo_lost}: acknowledged, rolled back by the failover, never seen by"
            f" analysts; {len(context.rolled_back) - accounting.rpo_lost} more were delivered before the"
            " kill, though PostgreSQL no longer has them"
        )
    if accounting.lost_ids:
        context.problems.append(f"lost, e.g. {', '.join(accounting.lost_ids[:3])}")
    try:
        await asyncio.to_thread(servers.clickhouse.query, f"DROP DATABASE IF EXISTS {database}")
    except OSError as error:  # clean-up only: a slow disk must not cost the scenario its result
        context.notes.append(f"ClickHouse database {database} not dropped: {type(error).__name__}")
    return Result(
        name=scenario.name,
        accounting=accounting,
        faults=context.faults,
        max_backlog=max((s.backlog for s in context.samples), default=0),
        max_lag=max((s.lag for s in context.samples), default=0.0),
        seconds=time.monotonic() - started,
        problems=tuple(context.problems),
        logs=logs,
        samples=tuple(context.samples),
        notes=tuple(context.notes),
    )


def _clean_up(context: Context) -> None:
    while context.cleanups:
        context.cleanups.pop()()


def install_signal_handlers() -> None:
    """SIGINT, SIGTERM and SIGHUP cancel the running task, so its clean-up still happens."""
    task = asyncio.current_task()
    if task is None:
        raise RuntimeError("call from within the task to cancel")
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, task.cancel)
