"""Failover scenarios: the primary PostgreSQL dies under load and its standby takes over.

Each runs on a pair of its own: a primary cloned from the suite's migrated
cluster (`pg_basebackup`) and a standby streaming its WAL through a TCP proxy,
so the replication link can lag on purpose. Producers and relays are given
both hosts with `target_session_attrs=read-write` and must find the new
primary by themselves.

The fault is the same in both: the replication link stalls for 1-2 s, the
primary is killed with SIGKILL (every process at once) while it does, what
the link held never arrives, and a second later the standby is promoted
(`pg_ctl promote`). With a synchronous standby every acknowledged commit is on
it; with an asynchronous one, the commits of the stall are gone with the
primary, and the scenario measures how many (the RPO in events).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

from shared.outbox import ARCHIVE_TABLE, DEAD_LETTER_TABLE, OUTBOX_TABLE
from tests.chaos.servers import PostgresPair
from tests.chaos.suite import DATABASE, Context, drain, reconcile, scenario
from tests.support.faulty_proxy import FaultyProxy, Mode
from tests.support.waiting import free_port

# Every event id the server holds: waiting, delivered (the archive) or set aside.
HELD = (
    f"SELECT event_id FROM {OUTBOX_TABLE} UNION SELECT event_id FROM {ARCHIVE_TABLE}"
    f" UNION SELECT event_id FROM {DEAD_LETTER_TABLE}"
)
# How long nobody takes writes: the time failure detection takes before promotion.
DETECTION = 1.0
# Events deleted from ClickHouse after the failover, for reconciliation to find.
DELETED = 50


@scenario
async def postgres_failover_sync_standby(ctx: Context) -> None:
    """The primary, with a synchronous standby, SIGKILLed under load; the standby promoted; nothing lost.

    The replication link stalls first, so commits wait for the standby; the
    ones in flight at the kill are indeterminate, every acknowledged one must
    be on the new primary and reach analysts exactly once, and the archive and
    `relay reconcile` must work on the new primary.
    """
    await _fail_over(ctx, synchronous=True)


@scenario
async def postgres_failover_async_standby_rpo(ctx: Context) -> None:
    """The same failover with an asynchronous standby: what it loses (RPO) is measured, not failed.

    Acknowledged commits the standby never received are gone from PostgreSQL
    (`rolled back`); those a relay had not delivered before the kill never
    reach analysts (`rpo_lost`, reported apart from `lost`). An event the new
    primary holds must still arrive exactly once.
    """
    await _fail_over(ctx, synchronous=False)


async def _fail_over(ctx: Context, *, synchronous: bool) -> None:
    pair = PostgresPair.under(ctx.servers.children, ctx.fleet.logs / "pair", synchronous=synchronous)
    link = FaultyProxy(upstream_port=pair.primary.port, port=free_port())
    await link.start()
    ctx.cleanups.append(pair.remove)
    try:
        pair.standby.settings["wal_retrieve_retry_interval"] = "200ms"
        pair.create(source=ctx.servers.postgres, replication_port=link.port)
        await _until(pair.streaming, within=60, what="the standby did not stream")
        ctx.use_postgres(pair.primary, dsn=pair.url(DATABASE))
        ctx.fleet.env["RELAY_RECONCILE_SETTLE"] = "1s"
        await ctx.start_relays(2)
        acknowledged_before: set[uuid.UUID] = set()

        async def chaos(stop: asyncio.Event) -> None:
            # The whole fault runs even if the producer finishes first.
            await ctx.pause(stop, ctx.rng.uniform(1.5, 2.5))
            acknowledged_before.update(ctx.history.ok)
            link.set_mode(Mode.STALL)
            ctx.fault("replication link stalled")
            await asyncio.sleep(ctx.rng.uniform(1.0, 2.0))
            lag = await asyncio.to_thread(pair.lag_bytes)
            pair.primary.kill()
            ctx.fault("primary SIGKILL")
            await link.close()  # what the link held never reaches the standby
            ctx.notes.append(f"standby behind by {lag} bytes of WAL at the kill")
            await asyncio.sleep(DETECTION)
            pair.standby.promote()
            ctx.use_postgres(pair.standby)
            ctx.fault("standby promoted")

        await ctx.produce_while(chaos)
    finally:
        await link.close()
    await drain(ctx)
    held = {row[0] for row in await asyncio.to_thread(ctx.postgres.execute, HELD, DATABASE)}
    rolled_back = ctx.history.ok - held
    ctx.notes.append(
        f"acknowledged {len(ctx.history.ok)}, rolled back by the failover {len(rolled_back)}"
        f" ({len(rolled_back & acknowledged_before)} of them acknowledged before the stall),"
        f" indeterminate {len(ctx.history.indeterminate)}, failed {ctx.history.failed}"
    )
    if synchronous:
        ctx.check(not rolled_back, f"{len(rolled_back)} acknowledged events are not on the new primary")
    else:
        ctx.rolled_back = rolled_back
    await _reconcile_on_new_primary(ctx, held & ctx.history.ok)


async def _reconcile_on_new_primary(ctx: Context, held: set[uuid.UUID]) -> None:
    """Delete archived events from ClickHouse; `relay reconcile` on the new primary resends exactly those."""
    chosen = sorted(held, key=str)[:: max(len(held) // DELETED, 1)][:DELETED]
    ids = ", ".join(f"toUUID('{event_id}')" for event_id in chosen)
    await asyncio.to_thread(
        ctx.clickhouse.query,
        f"ALTER TABLE event_log DELETE WHERE event_id IN ({ids})",
        database=ctx.clickhouse_database,
    )
    await _until(
        lambda: (
            ctx.clickhouse.query(
                "SELECT count() FROM system.mutations WHERE NOT is_done"
                f" AND database = '{ctx.clickhouse_database}'"
            ).strip()
            == "0"
        ),
        within=30,
        what="the ClickHouse mutation did not finish",
    )
    ctx.fault(f"{len(chosen)} events deleted from ClickHouse after the failover")
    await asyncio.sleep(1.5)  # the relays' settling time (RELAY_RECONCILE_SETTLE)
    summary = await reconcile(ctx, "--since", "1h", where=" on the new primary")
    ctx.check(
        summary.get("missing") == len(chosen) and summary.get("resent") == len(chosen),
        f"deleted {len(chosen)} events, relay reconcile on the new primary reported {summary}",
    )


async def _until(condition: Callable[[], bool], *, within: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await asyncio.to_thread(condition):
        if asyncio.get_running_loop().time() > deadline:
            raise RuntimeError(f"{what} within {within:.0f} s")
        await asyncio.sleep(0.1)
