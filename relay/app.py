"""Composition root of `relay run`: build the parts, run them, stop them well.

SIGTERM or SIGINT only sets the stop event. The forwarders then stop claiming
and finish the batch in hand; after the grace period whatever still runs is
cancelled, which rolls its transaction back (the events stay in the outbox).
Every task is named and watched: if one ends on its own, the relay says which
and exits non-zero rather than limp along without it.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import aiohttp
import asyncpg
import structlog

from relay.core import schema
from relay.core.archive import ArchiveQueries
from relay.core.clickhouse import ClickHouseSink, DeliveryError
from relay.core.doorbell import Doorbell
from relay.core.forwarder import Backlog, Forwarder, ForwarderConfig
from relay.core.isolation import Canary
from relay.core.listener import Listener
from relay.core.memory import give_back
from relay.core.observer import Observer, Observers
from relay.core.outbox import OutboxQueries, PostgresOutbox
from relay.core.postgres import require_writable
from relay.core.readiness import Readiness
from relay.core.retry import Backoff
from relay.core.waits import sleep_unless
from relay.maintenance import reconcile as reconciliation
from relay.maintenance.partitions import ArchiveKeeper
from relay.ops.http import HttpEndpoint, RecentReadiness
from relay.ops.metrics import RelayMetrics
from relay.ops.monitor import Heartbeat, OutboxMonitor
from relay.ops.privileges import privileges_warn
from relay.ops.status import RelayStatus
from relay.ops.telemetry import Telemetry
from relay.settings import RelaySettings
from relay.sinks import PreparedSink, clickhouse_sink, prepare_sink
from shared.outbox import NOTIFY_CHANNEL, NOTIFY_DEBOUNCE_MS

log = structlog.get_logger("relay")

# Exit codes, one meaning each (docs/OPERATIONS.md): an init container or a
# supervisor tells a typo from a missing table from an outage.
EXIT_OK = 0
# Something failed that may work next time (a database unreachable, a part that died): retry.
EXIT_FAILED = 1
# The command line itself is wrong (argparse's own code).
EXIT_USAGE = 2
# sysexits EX_DATAERR: ClickHouse does not hold what the relay needs (event_log
# missing, incompatible or not replicated, a quorum larger than the shard, the
# user refused): run `relay migrate` or fix the cluster; retrying will not help.
EXIT_SCHEMA = 65
# sysexits EX_CONFIG: a setting is missing or malformed; nothing was contacted.
EXIT_CONFIG = 78


def session_settings(settings: RelaySettings) -> dict[str, str]:
    """PostgreSQL settings of every pooled relay connection."""
    return {
        "application_name": "die-hard-relay",
        # A transaction must never outlive a bounded ClickHouse call by much.
        "idle_in_transaction_session_timeout": str(int(settings.relay_clickhouse_timeout * 3 * 1000)),
        # The relay's commits only delete delivered events. Not waiting for
        # their WAL flush frees a forwarder for the next claim a flush sooner;
        # if PostgreSQL crashes before the flush, the deletion is lost and the
        # events are delivered again, which `event_log` already hides (the
        # same as a relay dying between ClickHouse's ack and its commit).
        "synchronous_commit": "on" if settings.relay_synchronous_commit else "off",
    }


async def run(
    settings: RelaySettings, *, stop: asyncio.Event | None = None, observers: Sequence[Observer] = ()
) -> int:
    """Run the relay until a signal (or `stop`) asks it to finish; return the exit code.

    `observers` hear what the forwarders and the listener do, besides the
    relay's own metrics, status and traces.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, _request_stop, stop, signum)
    # min_size=0: no connection is made here, so the HTTP endpoint comes up (and
    # reports "not ready") even while PostgreSQL is still down.
    pool = await asyncpg.create_pool(
        settings.postgres_dsn,
        min_size=0,
        # one connection per forwarder, one for the monitor, one each for the
        # readiness timer, /readyz, the archive's upkeep and reconciliation
        max_size=settings.relay_concurrency + 5,
        # A connection that stops answering (a half-open socket after a
        # failover) fails the statement instead of blocking a forwarder forever.
        command_timeout=settings.relay_postgres_timeout,
        server_settings=session_settings(settings),
        # A connection to a server that became a standby or read-only is
        # dropped when next lent, so the next one goes where writes go.
        setup=require_writable,
    )
    try:
        async with aiohttp.ClientSession() as session:
            return await _serve(settings=settings, stop=stop, session=session, pool=pool, observers=observers)
    finally:
        try:
            await asyncio.wait_for(pool.close(), timeout=max(settings.relay_shutdown_grace, 1.0))
        except TimeoutError:
            pool.terminate()


async def _serve(
    *,
    settings: RelaySettings,
    stop: asyncio.Event,
    session: aiohttp.ClientSession,
    pool: asyncpg.Pool,
    observers: Sequence[Observer],
) -> int:
    """Start the side tasks, wait for a usable ClickHouse, start delivering, supervise, shut down."""
    parts = _Parts.build(settings, pool=pool, reader=clickhouse_sink(session, settings), observers=observers)
    helpers = {
        asyncio.create_task(coroutine, name=name) for name, coroutine in parts.side_tasks(stop).items()
    }
    workers: set[asyncio.Task[None]] = set()
    reported: set[asyncio.Task[None]] = set()
    exit_code = EXIT_FAILED
    try:
        prepared = await _wait_for_clickhouse(session, settings, parts.backoff, stop)
        if prepared is None:
            exit_code = EXIT_OK if stop.is_set() else EXIT_SCHEMA
            return exit_code
        if not settings.debug:
            await privileges_warn(pool=pool, sink=prepared.sink)
        if parts.archiving:
            # This hour's partition before the first delivery: otherwise the
            # first batches land in the default partition and block it.
            keeper = ArchiveKeeper(pool=pool, retention=settings.relay_archive_retention)
            await keeper.maintain_once()
            helpers.add(asyncio.create_task(keeper.run(stop), name="archive"))
        if parts.archiving and settings.relay_reconcile_interval > timedelta(0):
            reconciler = reconciliation.Reconciler(
                connect=pool.acquire,
                sink=prepared.sink,
                queries=ArchiveQueries(timestamp_precision=prepared.shape.timestamp_precision),
                batch_size=settings.relay_batch_size,
                settle=settings.relay_reconcile_settle,
                observer=parts.observer,
            )
            interval = settings.relay_reconcile_interval.total_seconds()
            helpers.add(asyncio.create_task(reconciler.run(stop, interval=interval), name="reconcile"))
        give_back()  # start-up's garbage (imports, schema checks): an idle relay holds only what it uses
        workers = {
            asyncio.create_task(forwarder.run(stop), name=forwarder.name)
            for forwarder in parts.forwarders(prepared)
        }
        log.info(
            "relay_started",
            concurrency=settings.relay_concurrency,
            batch_size=settings.relay_batch_size,
            http_port=settings.relay_http_port,
            timestamp_precision=prepared.shape.timestamp_precision,
            clickhouse_replicas=len(prepared.sink.urls),
            cluster=settings.clickhouse_cluster,
            archive_retention_s=settings.relay_archive_retention.total_seconds(),
        )
        exit_code, reported = await _supervise(stop, workers | helpers)
        return exit_code
    finally:
        stop.set()
        await _shut_down(workers, helpers, grace=settings.relay_shutdown_grace, reported=reported)
        log.info("relay_stopped", exit_code=exit_code, events_delivered=parts.status.events_delivered)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Parts:
    """The long-lived parts of one relay process, wired to each other."""

    settings: RelaySettings
    pool: asyncpg.Pool
    metrics: RelayMetrics
    status: RelayStatus
    observer: Observer
    doorbell: Doorbell
    backoff: Backoff
    listener: Listener
    readiness: Readiness

    @classmethod
    def build(
        cls,
        settings: RelaySettings,
        *,
        pool: asyncpg.Pool,
        reader: ClickHouseSink,
        observers: Sequence[Observer],
    ) -> _Parts:
        backoff = Backoff(initial=settings.relay_backoff_initial, maximum=settings.relay_backoff_max)
        metrics, status = RelayMetrics(), RelayStatus()
        observer = Observers(Telemetry(metrics=metrics, status=status), *observers)
        doorbell = Doorbell()
        listener = Listener(
            dsn=settings.postgres_dsn,
            channel=NOTIFY_CHANNEL,
            doorbell=doorbell,
            observer=observer,
            backoff=backoff,
        )
        return cls(
            settings=settings,
            pool=pool,
            metrics=metrics,
            status=status,
            observer=observer,
            doorbell=doorbell,
            backoff=backoff,
            listener=listener,
            # The probes read ClickHouse through a sink of their own, from the start.
            readiness=Readiness(
                pool=pool, sink=reader, observer=observer, timeout=settings.relay_readiness_timeout
            ),
        )

    @property
    def archiving(self) -> bool:
        """Whether delivered events are kept in the archive."""
        return self.settings.relay_archive_retention > timedelta(0)

    def side_tasks(self, stop: asyncio.Event) -> dict[str, Coroutine[Any, Any, None]]:
        """What runs beside delivery from the start: wake-ups, gauges, liveness, readiness, HTTP."""
        settings = self.settings
        return {
            "listener": self.listener.run(stop),
            "monitor": OutboxMonitor(
                pool=self.pool,
                metrics=self.metrics,
                status=self.status,
                interval=settings.relay_stats_interval,
                count_archive=self.archiving,
            ).run(stop),
            "heartbeat": Heartbeat(status=self.status).run(stop),
            "readiness": self.readiness.run(stop, interval=settings.relay_stats_interval),
            "http": HttpEndpoint(
                host=settings.relay_http_host,
                port=settings.relay_http_port,
                readiness=RecentReadiness(self.readiness),
                listener=self.listener,
                metrics=self.metrics,
                status=self.status,
                liveness_timeout=settings.relay_liveness_timeout,
            ).run(stop),
        }

    def forwarders(self, prepared: PreparedSink) -> list[Forwarder]:
        """`RELAY_CONCURRENCY` delivery loops on one outbox, one sink and one canary."""
        settings = self.settings
        outbox = PostgresOutbox(
            self.pool,
            OutboxQueries(timestamp_precision=prepared.shape.timestamp_precision, archive=self.archiving),
        )
        config = ForwarderConfig(
            batch_size=settings.relay_batch_size,
            max_bytes=settings.relay_batch_max_bytes,
            poll_interval=settings.relay_poll_interval,
            recheck_interval=settings.relay_recheck_interval,
            quiet_period=2 * NOTIFY_DEBOUNCE_MS / 1000,
            backoff=self.backoff,
        )
        canary, backlog = Canary(), Backlog()
        return [
            Forwarder(
                name=f"forwarder-{number}",
                outbox=outbox,
                sink=prepared.sink,
                config=config,
                doorbell=self.doorbell,
                observer=self.observer,
                canary=canary,
                backlog=backlog,
                lead=number == 0,
            )
            for number in range(settings.relay_concurrency)
        ]


async def _shut_down(
    workers: set[asyncio.Task[None]],
    helpers: set[asyncio.Task[None]],
    *,
    grace: float,
    reported: set[asyncio.Task[None]],
) -> None:
    """Let forwarders finish the batch in hand within `grace`, then stop everything."""
    if workers:
        _, late = await asyncio.wait(workers, timeout=grace)
        for task in late:
            log.warning("forwarder_cancelled_after_grace", forwarder=task.get_name())
            task.cancel()
    # The side tasks only watch `stop`; they end at once.
    _, stuck = await asyncio.wait(helpers, timeout=5.0)
    for task in stuck:
        task.cancel()
    tasks = [*workers, *helpers]
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for task, result in zip(tasks, results, strict=True):
        if isinstance(result, Exception) and task not in reported:
            log.error("task_failed", task=task.get_name(), error_kind=type(result).__name__, exc_info=result)


async def _supervise(
    stop: asyncio.Event, tasks: set[asyncio.Task[None]]
) -> tuple[int, set[asyncio.Task[None]]]:
    """Wait for the stop request; a task that ends before it is a failure of the relay.

    Returns the exit code and the tasks whose end was already reported.
    """
    stopping = asyncio.create_task(stop.wait(), name="stop")
    done, _ = await asyncio.wait({stopping, *tasks}, return_when=asyncio.FIRST_COMPLETED)
    if stopping in done:
        return EXIT_OK, set()
    stopping.cancel()
    for task in done:
        error = task.exception() if not task.cancelled() else None
        log.error(
            "task_ended_unexpectedly",
            task=task.get_name(),
            error_kind=type(error).__name__ if error else None,
            exc_info=error,
        )
    return EXIT_FAILED, {task for task in tasks if task in done}


async def _wait_for_clickhouse(
    session: aiohttp.ClientSession, settings: RelaySettings, backoff: Backoff, stop: asyncio.Event
) -> PreparedSink | None:
    """Check `event_log` and settle the inserts before starting; wait for ClickHouse if it is not up yet."""
    failures = 0
    while not stop.is_set():
        try:
            return await prepare_sink(session, settings)
        except schema.SchemaError as error:
            log.error("clickhouse_schema_invalid", problem=str(error))
            return None
        except DeliveryError as error:
            failures += 1
            delay = backoff.delay(failures)
            log.warning(
                "clickhouse_not_ready",
                error_kind=error.kind,
                error_code=error.code,
                retry_in_s=round(delay, 2),
            )
            await sleep_unless(stop, delay)
    return None


def _request_stop(stop: asyncio.Event, signum: int) -> None:
    if not stop.is_set():
        log.info("relay_stopping", signal=signal.Signals(signum).name)
    stop.set()
