"""The one-shot sub-commands: `relay migrate`, `check`, `reconcile`, `replay` and `expire`.

Each is one function of the settings that returns the process's exit code:
0 done, 1 failed, 65 the ClickHouse schema does not fit (see `relay.app`). `relay run` is the daemon
itself, `relay.app.run`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from datetime import datetime

import aiohttp
import asyncpg
import structlog

from relay.app import EXIT_FAILED, EXIT_OK, EXIT_SCHEMA
from relay.core import schema, user_events
from relay.core.archive import ArchiveQueries
from relay.core.clickhouse import DeliveryError
from relay.core.observer import Observer
from relay.core.postgres import POSTGRES_ERRORS
from relay.maintenance import reconcile as reconciliation
from relay.maintenance.replay import Replay
from relay.settings import RelaySettings
from relay.sinks import clickhouse_sink, prepare_sink

log = structlog.get_logger("relay")


async def migrate(settings: RelaySettings) -> int:
    """Create `event_log` and its view unless they exist (`relay migrate`)."""
    async with aiohttp.ClientSession() as session:
        sink = clickhouse_sink(session, settings, database="default", admin=True)
        features = await schema.apply(
            await sink.first_answering(),
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


async def check(settings: RelaySettings) -> int:
    """Check the ClickHouse table (and cluster) the relay would write to, and exit (`relay check`)."""
    async with aiohttp.ClientSession() as session:
        sink = clickhouse_sink(session, settings)
        try:
            shape = await schema.inspect(sink, settings.clickhouse_database)
            if settings.clickhouse_cluster:
                await schema.inspect_cluster(sink, settings.clickhouse_database, settings.clickhouse_cluster)
        except (schema.SchemaError, DeliveryError) as error:
            return _refused(error)
    log.info("clickhouse_schema_ok", timestamp_precision=shape.timestamp_precision)
    return EXIT_OK


async def expire(settings: RelaySettings) -> int:
    """Delete events older than `EVENT_LOG_RETENTION_DAYS` from `event_log` now (`relay expire`)."""
    if not settings.event_log_retention_days:
        log.info("clickhouse_retention_off")
        return EXIT_OK
    async with aiohttp.ClientSession() as session:
        sink = clickhouse_sink(session, settings, database="default", admin=True)
        client = await sink.first_answering()
        arguments = (
            settings.clickhouse_database,
            settings.event_log_retention_days,
            settings.clickhouse_cluster,
        )
        for statement in (schema.expire_statement(*arguments), user_events.expire_statement(*arguments)):
            await client.execute(statement)
    log.info("clickhouse_events_expired", retention_days=settings.event_log_retention_days)
    return EXIT_OK


async def reconcile(settings: RelaySettings, *, since: datetime | None) -> int:
    """`relay reconcile`: one reconciliation, a summary on stdout ending in a JSON line.

    Exit 0 when ClickHouse holds every archived event of the hours checked
    (after re-sending what it lacked), 1 when it does not or a database failed,
    65 when the ClickHouse table is missing or incompatible. It is the running
    relays' own procedure (`Reconciler.once`), waiting while one of them is at it.
    """
    async with aiohttp.ClientSession() as session:
        try:
            prepared = await prepare_sink(session, settings)  # re-sends go with the quorum too
        except (schema.SchemaError, DeliveryError) as error:
            return _refused(error)
        reconciler = reconciliation.Reconciler(
            connect=lambda: _connection(settings),
            sink=prepared.sink,
            queries=ArchiveQueries(timestamp_precision=prepared.shape.timestamp_precision),
            batch_size=settings.relay_batch_size,
            settle=settings.relay_reconcile_settle,
            observer=Observer(),
        )
        result = await reconciler.once(since=since, wait=True)
    if not isinstance(result, reconciliation.Report):
        return EXIT_FAILED
    for line in reconciliation.describe(result, retention=settings.relay_archive_retention):
        print(line)
    print(json.dumps(result.summary()))
    return EXIT_OK if result.complete else EXIT_FAILED


async def replay(
    settings: RelaySettings, *, since: datetime | None, until: datetime | None, event_types: tuple[str, ...]
) -> int:
    """`relay replay`: send the archived events of a window to ClickHouse again; a JSON line last.

    Exit 0 when the archive still held every event delivered in the window and
    all were sent, 1 when it no longer held part of it or a database failed,
    65 when the ClickHouse table is missing or incompatible.
    """
    if since is None:
        raise ValueError("relay replay needs --since")  # the command line requires it
    async with aiohttp.ClientSession() as session:
        try:
            prepared = await prepare_sink(session, settings)  # replays go with the quorum too
        except (schema.SchemaError, DeliveryError) as error:
            return _refused(error)
        try:
            async with _connection(settings) as connection:
                report = await Replay(
                    connection=connection,
                    sink=prepared.sink,
                    queries=ArchiveQueries(timestamp_precision=prepared.shape.timestamp_precision),
                    batch_size=settings.relay_batch_size,
                    batch_max_bytes=settings.relay_batch_max_bytes,
                ).run(since=since, until=until, event_types=event_types)
        except (*POSTGRES_ERRORS, DeliveryError) as error:
            log.error("replay_failed", error_kind=getattr(error, "kind", type(error).__name__))
            return EXIT_FAILED
    log.info("replay_finished", **report.summary())
    if not report.complete:
        print(
            f"The archive holds deliveries only from {report.archive_covers_since or 'no time at all'}:"
            " events of the window delivered before that were not replayed (RELAY_ARCHIVE_RETENTION)."
        )
    print(json.dumps(report.summary()))
    return EXIT_OK if report.complete else EXIT_FAILED


def _refused(error: schema.SchemaError | DeliveryError) -> int:
    """Log why ClickHouse will not do, and return the exit code that says so."""
    if isinstance(error, schema.SchemaError):
        log.error("clickhouse_schema_invalid", problem=str(error))
        return EXIT_SCHEMA
    log.error("clickhouse_unavailable", error_kind=error.kind)
    return EXIT_FAILED


@contextlib.asynccontextmanager
async def _connection(settings: RelaySettings) -> AsyncIterator[asyncpg.Connection]:
    """A PostgreSQL connection of its own, closed after use."""
    connection = await asyncpg.connect(settings.postgres_dsn, command_timeout=settings.relay_postgres_timeout)
    try:
        yield connection
    finally:
        await connection.close()
