"""The relay's ClickHouse sinks, built from the settings.

The insert target (the table, a quorum, synchronous inserts) is decided once,
by `prepare_sink`, from what the server says of the table and the cluster,
and handed to the sink's constructor: a sink never changes how it inserts.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
import structlog

from relay.core import schema
from relay.core.clickhouse import ClickHouseSink, InsertTarget, insert_settings
from relay.settings import RelaySettings
from shared.outbox import EVENT_LOG_TABLE

log = structlog.get_logger("relay")


def clickhouse_sink(
    session: aiohttp.ClientSession,
    settings: RelaySettings,
    *,
    database: str | None = None,
    admin: bool = False,
    target: InsertTarget | None = None,
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
        target=target,
    )


@dataclass(frozen=True, slots=True)
class PreparedSink:
    """A sink whose inserts are settled, and the table it writes to."""

    sink: ClickHouseSink
    shape: schema.TableShape


async def prepare_sink(session: aiohttp.ClientSession, settings: RelaySettings) -> PreparedSink:
    """Inspect `event_log` (and the cluster), decide the insert target once, and build the sink for it.

    Raises `SchemaError` when the table will not do, `DeliveryError` when
    ClickHouse does not answer.
    """
    reader = clickhouse_sink(session, settings)
    shape = await schema.inspect(reader, settings.clickhouse_database)
    target = await insert_target(reader, settings, synchronous=shape.async_insert)
    return PreparedSink(clickhouse_sink(session, settings, target=target), shape)


async def insert_target(
    reader: ClickHouseSink, settings: RelaySettings, *, synchronous: bool
) -> InsertTarget:
    """The insert's table and quorum: the whole shard by default on a cluster, none otherwise."""
    quorum = settings.relay_insert_quorum or 0
    sharded = False
    cluster = settings.clickhouse_cluster
    if cluster:
        topology = await schema.inspect_cluster(reader, settings.clickhouse_database, cluster)
        if settings.relay_insert_quorum is None:
            quorum = topology.replicas
        if quorum > topology.replicas:
            raise schema.SchemaError(
                f"RELAY_INSERT_QUORUM={quorum} but the shards of {cluster}"
                f" have {topology.replicas} replica(s)"
            )
        sharded = topology.shards > 1
    log.info("clickhouse_inserts_configured", insert_quorum=quorum, sharded=sharded)
    return InsertTarget(
        table=schema.DISTRIBUTED_TABLE if sharded else EVENT_LOG_TABLE,
        settings=insert_settings(quorum=quorum, sharded=sharded, timeout=settings.relay_clickhouse_timeout),
        synchronous=synchronous,
    )
