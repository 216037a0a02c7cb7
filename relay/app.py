"""Composition root: build the parts, run them, stop them well.

SIGTERM or SIGINT only sets the stop event. The forwarders then stop claiming
and finish the batch in hand; after the grace period whatever still runs is
cancelled, which rolls its transaction back (the events stay in the outbox).
Every task is named and watched: if one ends on its own, the relay says which
and exits non-zero rather than limp along without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import AsyncIterator, Coroutine, Sequence
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import structlog
from aiochclient import ChClient

from relay.core import schema
from relay.core.archive import ArchiveQueries
from relay.core.clickhouse import ClickHouseSink, DeliveryError, insert_settings
from relay.core.doorbell import Doorbell
from relay.core.forwarder import Forwarder, ForwarderConfig
from relay.core.isolation import Canary
from relay.core.listener import Listener
from relay.core.observer import Observer, Observers
from relay.core.outbox import OutboxQueries
from relay.core.readiness import Readiness
from relay.core.retry import Backoff
from relay.core.waits import sleep_unless
from relay.maintenance import reconcile as reconciliation
from relay.maintenance.partitions import ArchiveKeeper
from relay.ops.http import HttpEndpoint
from relay.ops.metrics import RelayMetrics
from relay.ops.monitor import Heartbeat, OutboxMonitor
from relay.ops.status import RelayStatus
from relay.ops.telemetry import Telemetry
from relay.settings import RelaySettings
from shared.outbox import EVENT_LOG_TABLE, NOTIFY_CHANNEL, NOTIFY_DEBOUNCE_MS

log = structlog.get_logger("relay")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_MISCONFIGURED = 2


def clickhouse_sink(
    session: aiohttp.ClientSession,
    settings: RelaySettings,
    *,
    database: str | None = None,
    admin: bool = False,
) -> ClickHouseSink:
    """A sink for the configured server (and database, unless another is named).

    `admin=True` connects as the user that may change the schema; the relay
    itself runs as a user that may only insert and read.
    """
    user, password = (
        settings.clickhouse_admin if admin else (settings.clickhouse_user, settings.clickhouse_password)
    )
    return ClickHouseSink(
        session,
        url=settings.clickhouse_urls,
        user=user,
        password=password.get_secret_value(),
        database=database or settings.clickhouse_database,
        timeout=settings.relay_clickhouse_timeout,
    )


async def migrate(settings: RelaySettings) -> int:
    """Create `event_log` and its view unless they exist (`relay migrate`)."""
    async with aiohttp.ClientSession() as session:
        sink = clickhouse_sink(session, settings, database="default", admin=True)
        features = await schema.apply(
            await _first_answering(sink),
            settings.clickhouse_database,
            settings.clickhouse_cluster,
            retention_days=settings.event_log_retention_days,
        )
    if settings.event_log_retention_days and not features.ttl:
        log.warning(
            "clickhouse_retention_needs_expire",
            retention_days=settings.event_log_retention_days,
            advice="this server has no table TTL: run `relay expire` daily",
        )
    log.info(
        "clickhouse_schema_applied",
        database=settings.clickhouse_database,
        cluster=settings.clickhouse_cluster,
        datetime64=features.datetime64,
        insert_deduplication=features.insert_deduplication,
        durable_insert=features.durable_insert,
    )
    return EXIT_OK


async def _first_answering(sink: ClickHouseSink) -> ChClient:
    """A client for the first replica that answers (the only one, without `CLICKHOUSE_HOSTS`)."""
    return await sink.first_answering()


async def expire(settings: RelaySettings) -> int:
    """Delete events older than `EVENT_LOG_RETENTION_DAYS` from `event_log` now (`relay expire`)."""
    if not settings.event_log_retention_days:
        log.info("clickhouse_retention_off")
        return EXIT_OK
    async with aiohttp.ClientSession() as session:
        sink = clickhouse_sink(session, settings, database="default", admin=True)
        await (await _first_answering(sink)).execute(
            schema.expire_statement(
                settings.clickhouse_database, settings.event_log_retention_days, settings.clickhouse_cluster
            )
        )
    log.info("clickhouse_events_expired", retention_days=settings.event_log_retention_days)
    return EXIT_OK


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


async def reconcile(settings: RelaySettings, *, since: datetime | None) -> int:
    """`relay reconcile`: one reconciliation, a summary on stdout ending in a JSON line.

    Exit 0 when ClickHouse holds every archived event of the hours checked
    (after re-sending what it lacked), 1 when it does not or a database failed,
    2 when the ClickHouse table is missing or incompatible.
    """
    async with aiohttp.ClientSession() as session:
        sink = clickhouse_sink(session, settings)
        try:
            shape = await schema.inspect(sink, settings.clickhouse_database)
            await _configure_inserts(sink, settings)  # re-sends go with the quorum too
        except schema.SchemaError as error:
            log.error("clickhouse_schema_invalid", problem=str(error))
            return EXIT_MISCONFIGURED
        if shape.async_insert:
            sink.pin_synchronous_inserts()
        reconciler = reconciliation.Reconciler(
            connect=lambda: _connection(settings),
            sink=sink,
            queries=ArchiveQueries(timestamp_precision=shape.timestamp_precision),
            batch_size=settings.relay_batch_size,
            observer=Observer(),
        )
        result = await reconciler.once(since=since, wait=True)  # waits while a relay is reconciling
    if not isinstance(result, reconciliation.Report):
        return EXIT_FAILED
    for line in reconciliation.describe(result, retention=settings.relay_archive_retention):
        print(line)
    print(json.dumps(result.summary()))
    return EXIT_OK if result.complete else EXIT_FAILED


@contextlib.asynccontextmanager
async def _connection(settings: RelaySettings) -> AsyncIterator[asyncpg.Connection]:
    """A PostgreSQL connection of its own, closed after use."""
    connection = await asyncpg.connect(settings.postgres_dsn, command_timeout=settings.relay_postgres_timeout)
    try:
        yield connection
    finally:
        await connection.close()


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
    )
    try:
        async with aiohttp.ClientSession() as session:
            return await _serve(
                settings=settings,
                stop=stop,
                sink=clickhouse_sink(session, settings),
                pool=pool,
                observers=observers,
            )
    finally:
        try:
            await asyncio.wait_for(pool.close(), timeout=max(settings.relay_shutdown_grace, 1.0))
        except TimeoutError:
            pool.terminate()


async def _serve(
    *,
    settings: RelaySettings,
    stop: asyncio.Event,
    sink: ClickHouseSink,
    pool: asyncpg.Pool,
    observers: Sequence[Observer],
) -> int:
    backoff = Backoff(initial=settings.relay_backoff_initial, maximum=settings.relay_backoff_max)
    metrics = RelayMetrics()
    status = RelayStatus()
    observer = Observers(Telemetry(metrics=metrics, status=status), *observers)
    doorbell = Doorbell()
    archiving = settings.relay_archive_retention > timedelta(0)
    listener = Listener(
        dsn=settings.postgres_dsn,
        channel=NOTIFY_CHANNEL,
        doorbell=doorbell,
        observer=observer,
        backoff=backoff,
    )
    readiness = Readiness(pool=pool, sink=sink, observer=observer, timeout=settings.relay_readiness_timeout)
    side: dict[str, Coroutine[Any, Any, None]] = {
        "listener": listener.run(stop),
        "monitor": OutboxMonitor(
            pool=pool,
            metrics=metrics,
            status=status,
            interval=settings.relay_stats_interval,
            count_archive=archiving,
        ).run(stop),
        "heartbeat": Heartbeat(status=status).run(stop),
        "readiness": readiness.run(stop, interval=settings.relay_stats_interval),
        "http": HttpEndpoint(
            host=settings.relay_http_host,
            port=settings.relay_http_port,
            readiness=readiness,
            listener=listener,
            metrics=metrics,
            status=status,
            liveness_timeout=settings.relay_liveness_timeout,
        ).run(stop),
    }
    helpers = {asyncio.create_task(coroutine, name=name) for name, coroutine in side.items()}
    workers: set[asyncio.Task[None]] = set()
    reported: set[asyncio.Task[None]] = set()
    exit_code = EXIT_FAILED
    try:
        shape = await _inspect_schema(sink, settings, backoff, stop)
        if shape is None:
            exit_code = EXIT_OK if stop.is_set() else EXIT_MISCONFIGURED
            return exit_code
        if shape.async_insert:
            sink.pin_synchronous_inserts()
        queries = OutboxQueries(timestamp_precision=shape.timestamp_precision, archive=archiving)
        config = ForwarderConfig(
            batch_size=settings.relay_batch_size,
            max_bytes=settings.relay_batch_max_bytes,
            poll_interval=settings.relay_poll_interval,
            recheck_interval=settings.relay_recheck_interval,
            quiet_period=2 * NOTIFY_DEBOUNCE_MS / 1000,
            backoff=backoff,
        )
        if archiving:
            # This hour's partition before the first delivery: otherwise the
            # first batches land in the default partition and block it.
            keeper = ArchiveKeeper(pool=pool, retention=settings.relay_archive_retention)
            await keeper.maintain_once()
            helpers.add(asyncio.create_task(keeper.run(stop), name="archive"))
        if archiving and settings.relay_reconcile_interval > timedelta(0):
            reconciler = reconciliation.Reconciler(
                connect=pool.acquire,
                sink=sink,
                queries=ArchiveQueries(timestamp_precision=shape.timestamp_precision),
                batch_size=settings.relay_batch_size,
                observer=observer,
            )
            helpers.add(
                asyncio.create_task(
                    reconciler.run(stop, interval=settings.relay_reconcile_interval.total_seconds()),
                    name="reconcile",
                )
            )
        canary = Canary()
        workers = {
            asyncio.create_task(forwarder.run(stop), name=forwarder.name)
            for forwarder in (
                Forwarder(
                    name=f"forwarder-{number}",
                    pool=pool,
                    sink=sink,
                    queries=queries,
                    config=config,
                    doorbell=doorbell,
                    observer=observer,
                    canary=canary,
                )
                for number in range(settings.relay_concurrency)
            )
        }
        log.info(
            "relay_started",
            concurrency=settings.relay_concurrency,
            batch_size=settings.relay_batch_size,
            http_port=settings.relay_http_port,
            timestamp_precision=shape.timestamp_precision,
            clickhouse_replicas=len(sink.urls),
            cluster=settings.clickhouse_cluster,
            archive_retention_s=settings.relay_archive_retention.total_seconds(),
        )
        exit_code, reported = await _supervise(stop, workers | helpers)
        return exit_code
    finally:
        stop.set()
        await _shut_down(workers, helpers, grace=settings.relay_shutdown_grace, reported=reported)
        log.info("relay_stopped", exit_code=exit_code, events_delivered=status.events_delivered)


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


async def _inspect_schema(
    sink: ClickHouseSink, settings: RelaySettings, backoff: Backoff, stop: asyncio.Event
) -> schema.TableShape | None:
    """Check `event_log` before starting; wait for ClickHouse if it is not up yet."""
    failures = 0
    while not stop.is_set():
        try:
            shape = await schema.inspect(sink, settings.clickhouse_database)
            await _configure_inserts(sink, settings)
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
        else:
            return shape
    return None


async def _configure_inserts(sink: ClickHouseSink, settings: RelaySettings) -> None:
    """Pick the insert's table and quorum: the whole shard by default on a cluster, none otherwise."""
    quorum = settings.relay_insert_quorum or 0
    sharded = False
    cluster = settings.clickhouse_cluster
    if cluster:
        topology = await schema.inspect_cluster(sink, settings.clickhouse_database, cluster)
        if settings.relay_insert_quorum is None:
            quorum = topology.replicas
        if quorum > topology.replicas:
            raise schema.SchemaError(
                f"RELAY_INSERT_QUORUM={quorum} but the shards of {cluster}"
                f" have {topology.replicas} replica(s)"
            )
        sharded = topology.shards > 1
    sink.configure_inserts(
        table=schema.DISTRIBUTED_TABLE if sharded else EVENT_LOG_TABLE,
        settings=insert_settings(quorum=quorum, sharded=sharded, timeout=settings.relay_clickhouse_timeout),
    )
    log.info("clickhouse_inserts_configured", insert_quorum=quorum, sharded=sharded)


def _request_stop(stop: asyncio.Event, signum: int) -> None:
    if not stop.is_set():
        log.info("relay_stopping", signal=signal.Signals(signum).name)
    stop.set()
