"""The scenarios: each a fault injected while producers write, then the accounting.

Each function's docstring says what it injects; every scenario must end with
nothing lost, nothing visible twice and nothing unexpected, and each checks
what else its fault promises (a backlog really built up, lag stayed bounded,
poison went aside, a relay stopped cleanly).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import asyncpg

from relay.core import archive
from tests.chaos import web
from tests.chaos.producer import make_events
from tests.chaos.suite import DATABASE, Context, drain, reconcile, scenario
from tests.support.faulty_proxy import Mode

RELAY_APPLICATION = "die-hard-relay%"


@scenario
async def relay_kill9_random(ctx: Context) -> None:
    """Two relays; one of them is killed with SIGKILL at a random moment every 0.5-2.5 s and restarted."""
    await ctx.start_relays(2)

    async def chaos(stop: asyncio.Event) -> None:
        while await ctx.pause(stop, ctx.rng.uniform(0.5, 2.5)):
            if ctx.fleet.running:
                ctx.fleet.kill(ctx.rng.choice(ctx.fleet.running))
                ctx.fault("relay SIGKILL")

    await ctx.produce_while(chaos)


@scenario
async def relay_kill_between_ack_and_commit(ctx: Context) -> None:
    """A relay armed to SIGKILL itself after ClickHouse acknowledged a batch, before the PostgreSQL commit.

    It is restarted (armed again) each time, beside a clean relay: its batches
    reach ClickHouse, stay in the outbox and are delivered again. The hidden
    copies must exist (the fault really struck) and must never be visible.
    """
    # Background merges would collapse the copies before anyone counts them;
    # with merges stopped, only the view's FINAL hides them.
    await asyncio.to_thread(
        ctx.clickhouse.query, "SYSTEM STOP MERGES event_log", database=ctx.clickhouse_database
    )
    await ctx.start_relays(1)
    ctx.fleet.start(fault="kill_after_ack")
    restarts = ctx.fleet.restarts

    async def chaos(stop: asyncio.Event) -> None:
        await ctx.pause(stop, 3600)

    await ctx.produce_while(chaos)
    for _ in range(ctx.fleet.restarts - restarts):
        ctx.fault("relay killed itself between ack and commit")
    ctx.after.append(lambda: _copies_hidden(ctx))


def _copies_hidden(ctx: Context) -> None:
    stored = int(ctx.clickhouse.query("SELECT count() FROM event_log", database=ctx.clickhouse_database))
    visible = int(
        ctx.clickhouse.query("SELECT count() FROM event_log_dedup", database=ctx.clickhouse_database)
    )
    ctx.check(stored > visible, f"no copy was delivered twice ({stored} stored, {visible} visible)")


@scenario
async def relays_churn(ctx: Context) -> None:
    """One to four relays at once, killed (SIGKILL or SIGTERM) and started at random."""
    await ctx.start_relays(3)

    async def chaos(stop: asyncio.Event) -> None:
        while await ctx.pause(stop, ctx.rng.uniform(0.2, 1.0)):
            running = ctx.fleet.running
            if len(running) > 1 and ctx.rng.random() < 0.6:
                signum = ctx.rng.choice((signal.SIGKILL, signal.SIGTERM))
                ctx.fleet.kill(ctx.rng.choice(running), signum)
                ctx.fault(f"relay {signum.name}")
            elif len(running) < 4:
                ctx.fleet.start()
                ctx.fault("relay started")

    # No keeper: the chaos decides how many relays run; at least one always does.
    await ctx.produce_while(chaos, keep_relays=False)


@scenario
async def relay_sigterm_mid_batch(ctx: Context) -> None:
    """Relays stopped with SIGTERM while a batch is in hand (acknowledged, commit pending).

    The relays hold every batch 2 s between ClickHouse's acknowledgement and
    the commit; SIGTERM lands inside that window. Each must finish the batch,
    hand over and exit 0; the other relay goes on.
    """
    await ctx.start_relays(2, fault="pause_after_ack:2")
    stopping: list[asyncio.Task[int]] = []

    async def chaos(stop: asyncio.Event) -> None:
        while await ctx.pause(stop, ctx.rng.uniform(0.8, 2.0)):
            # Only relays that answer: a relay still importing has no batch in
            # hand and no signal handler yet (SIGTERM simply ends it).
            answering = [r for r in ctx.fleet.running if await asyncio.to_thread(r.status) is not None]
            if not answering:
                continue
            victim = ctx.rng.choice(answering)
            ctx.fleet.kill(victim, signal.SIGTERM)
            ctx.fault("relay SIGTERM mid-batch")
            stopping.append(asyncio.create_task(asyncio.to_thread(victim.process.wait, 30)))

    await ctx.produce_while(chaos)
    exits = await asyncio.gather(*stopping)
    ctx.check(all(code == 0 for code in exits), f"relays stopped with SIGTERM exited with {exits}")


@scenario
async def clickhouse_kill9(ctx: Context) -> None:
    """ClickHouse killed with SIGKILL mid-stream and restarted 0.5-2 s later, again and again."""
    await ctx.start_relays(2)

    async def chaos(stop: asyncio.Event) -> None:
        while await ctx.pause(stop, ctx.rng.uniform(1.0, 2.5)):
            ctx.clickhouse.kill()
            ctx.fault("clickhouse SIGKILL")
            await asyncio.sleep(ctx.rng.uniform(0.5, 2.0))
            await ctx.start_clickhouse()

    await ctx.produce_while(chaos)


@scenario
async def clickhouse_outage_backlog(ctx: Context) -> None:
    """ClickHouse stopped while producers go on until a backlog of 100,000 events waits; then back.

    The relays keep retrying with backoff, stay alive, keep everything in the
    outbox, and deliver the whole backlog once ClickHouse returns.
    """
    await ctx.start_relays(2)
    await asyncio.to_thread(ctx.clickhouse.stop)
    ctx.fault("clickhouse stopped")
    outage_started = asyncio.get_running_loop().time()
    producer = ctx.producer(per_transaction=500)
    await producer.run(total=ctx.profile.backlog, rate=ctx.profile.backlog / 5)
    remaining = ctx.profile.outage - (asyncio.get_running_loop().time() - outage_started)
    await asyncio.sleep(max(remaining, 0))
    ctx.check(
        await ctx.pending() >= ctx.profile.backlog, "the backlog did not build up while ClickHouse was down"
    )
    ctx.check(len(ctx.fleet.running) == 2, "a relay died during the outage")
    await ctx.start_clickhouse()


async def _proxy_faults(
    ctx: Context, mode: Mode, *, on: tuple[float, float], off: tuple[float, float]
) -> None:
    await ctx.start_relays(2)

    async def chaos(stop: asyncio.Event) -> None:
        while await ctx.pause(stop, ctx.rng.uniform(*off)):
            ctx.proxy.set_mode(mode)
            ctx.fault(f"proxy {mode}")
            await ctx.pause(stop, ctx.rng.uniform(*on))
            ctx.proxy.set_mode(Mode.PASS)

    await ctx.produce_while(chaos)


@scenario
async def clickhouse_slow(ctx: Context) -> None:
    """ClickHouse slow: the proxy adds 0.5 s to every chunk both ways, so big inserts time out mid-way."""
    await _proxy_faults(ctx, Mode.SLOW, on=(2.0, 4.0), off=(0.5, 1.5))


@scenario
async def clickhouse_stall(ctx: Context) -> None:
    """ClickHouse stalls: the proxy holds every byte for 1-5 s; inserts hang until the relay's timeout."""
    await _proxy_faults(ctx, Mode.STALL, on=(1.0, 5.0), off=(0.5, 1.5))


@scenario
async def clickhouse_connection_cut(ctx: Context) -> None:
    """Connections to ClickHouse cut with a TCP reset after a random number of bytes, mid-request or reply."""
    cuts = ctx.proxy.cuts
    await _proxy_faults(ctx, Mode.CUT, on=(1.0, 3.0), off=(0.3, 1.0))
    ctx.check(ctx.proxy.cuts > cuts, "the proxy cut no connection")


@scenario
async def clickhouse_refuses_connections(ctx: Context) -> None:
    """New connections to ClickHouse refused (reset at once) for 1-3 s at a time."""
    await _proxy_faults(ctx, Mode.REFUSE, on=(1.0, 3.0), off=(0.3, 1.0))


@scenario
async def postgres_backends_terminated(ctx: Context) -> None:
    """Every relay connection to PostgreSQL, the LISTEN one included, killed with pg_terminate_backend."""
    await ctx.start_relays(2)
    statement = (
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        f" WHERE application_name LIKE '{RELAY_APPLICATION}'"
    )
    listeners = 0

    async def chaos(stop: asyncio.Event) -> None:
        nonlocal listeners
        while await ctx.pause(stop, ctx.rng.uniform(0.3, 1.2)):
            rows = await asyncio.to_thread(
                ctx.postgres.execute,
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'die-hard-relay-listener'",
            )
            listeners += int(rows[0][0])
            terminated = await asyncio.to_thread(ctx.postgres.execute, statement)
            for _ in range(int(terminated[0][0])):
                ctx.fault("relay backend terminated")

    await ctx.produce_while(chaos)
    ctx.check(listeners > 0, "no LISTEN connection was ever terminated")


@scenario
async def postgres_restart(ctx: Context) -> None:
    """The PostgreSQL server restarted (fast shutdown) under load, producers and relays reconnecting."""
    await ctx.start_relays(2)

    async def chaos(stop: asyncio.Event) -> None:
        while await ctx.pause(stop, ctx.rng.uniform(1.0, 2.5)):
            await asyncio.to_thread(ctx.postgres.stop, mode="fast")
            ctx.fault("postgres restarted")
            await asyncio.sleep(ctx.rng.uniform(0.2, 1.5))
            await ctx.start_postgres()

    await ctx.produce_while(chaos)


@scenario
async def postgres_crash(ctx: Context) -> None:
    """PostgreSQL crashes (immediate shutdown: no checkpoint, crash recovery on start) under load."""
    await ctx.start_relays(2)

    async def chaos(stop: asyncio.Event) -> None:
        while await ctx.pause(stop, ctx.rng.uniform(1.0, 2.5)):
            await asyncio.to_thread(ctx.postgres.stop, mode="immediate")
            ctx.fault("postgres crashed")
            await asyncio.sleep(ctx.rng.uniform(0.2, 1.0))
            await ctx.start_postgres()

    await ctx.produce_while(chaos)


@scenario
async def xmin_held_back(ctx: Context) -> None:
    """A session idle in a transaction holds back the xmin horizon (no vacuum can clean) under load.

    Deleted outbox rows pile up as dead tuples for the whole run; delivery must
    keep up and the oldest waiting event must stay younger than the profile's bound.
    """
    await ctx.start_relays(2)
    holder = await asyncpg.connect(ctx.servers.dsn)
    try:
        await holder.execute(
            "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT txid_current(), count(*) FROM event_outbox"
        )
        ctx.fault("xmin held back by an idle transaction")
        await ctx.produce_while(total=ctx.profile.events * 2, rate=ctx.profile.rate * 2)
        horizon = await asyncio.to_thread(
            ctx.postgres.execute,
            "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'event_outbox'",
            DATABASE,
        )
        ctx.notes.append(f"dead tuples kept: {horizon[0][0] if horizon else '?'}")
    finally:
        await holder.close()
    lag = max((sample.lag for sample in ctx.samples), default=0.0)
    ctx.check(lag < ctx.profile.lag_bound, f"lag reached {lag:.1f} s with xmin held back")


@scenario
async def late_commit(ctx: Context) -> None:
    """Transactions that write events, then wait 1-4 s before committing, while later ones commit first.

    Their events get lower outbox ids than events already delivered; a relay
    that remembered "the last id seen" would skip them for good.
    """
    await ctx.start_relays(2)

    async def commit_late(hold: float) -> None:
        writer = ctx.producer()  # a connection of its own for each open transaction
        await writer.write(make_events(20, ctx.rng), hold=hold)
        await writer.close()

    async def chaos(stop: asyncio.Event) -> None:
        pending: list[asyncio.Task[None]] = []
        while await ctx.pause(stop, ctx.rng.uniform(0.2, 0.6)):
            pending.append(asyncio.create_task(commit_late(ctx.rng.uniform(1.0, 4.0))))
            ctx.fault("late-committing transaction")
        await asyncio.gather(*pending)

    await ctx.produce_while(chaos)


@scenario
async def burst_100k(ctx: Context) -> None:
    """100,000 events committed in one transaction while the paced producer goes on."""
    await ctx.start_relays(2)

    async def chaos(stop: asyncio.Event) -> None:
        await ctx.pause(stop, 1.0)
        burst = ctx.producer(per_transaction=ctx.profile.backlog)
        if await burst.write(make_events(ctx.profile.backlog, ctx.rng)):
            ctx.fault("100k-event transaction")
        await burst.close()

    await ctx.produce_while(chaos)


@scenario
async def poison_events(ctx: Context) -> None:
    """2% of the events are poison (ClickHouse refuses them); each must go aside, the rest through."""
    await ctx.start_relays(2)
    await ctx.produce_while(producer=ctx.producer(poison_share=0.02))
    poison = ctx.history.poison & ctx.history.ok
    # The accounting holds each of them to being in the dead-letter table.
    for _ in poison:
        ctx.fault("poison event")


@scenario
async def web_sign_ups(ctx: Context) -> None:
    """People sign up through the site's own service while relays are killed and ClickHouse connections cut.

    Beyond the event accounting, the business check the original assignment
    makes: every user PostgreSQL holds has exactly one `user_created` event
    visible to analysts, with that e-mail address.
    """
    web.configure(ctx.servers.dsn)
    await ctx.start_relays(2)
    prefix = f"web-{ctx.name}"

    async def chaos(stop: asyncio.Event) -> None:
        while await ctx.pause(stop, ctx.rng.uniform(0.5, 2.0)):
            if ctx.rng.random() < 0.5 and ctx.fleet.running:
                ctx.fleet.kill(ctx.rng.choice(ctx.fleet.running))
                ctx.fault("relay SIGKILL")
            else:
                ctx.proxy.set_mode(Mode.CUT)
                ctx.fault("proxy cut")
                await ctx.pause(stop, 1.0)
                ctx.proxy.set_mode(Mode.PASS)

    count = ctx.profile.events // 5
    work = asyncio.to_thread(web.sign_ups, ctx.history, count=count, rate=ctx.profile.rate / 5, prefix=prefix)
    await ctx.produce_while(chaos, work=work)
    ctx.after.append(lambda: _one_event_per_user(ctx, prefix))


def _one_event_per_user(ctx: Context, prefix: str) -> None:
    users = {
        row[0]
        for row in ctx.postgres.execute(
            f"SELECT email FROM users_user WHERE email LIKE '{prefix}-%'", DATABASE
        )
    }
    answer = ctx.clickhouse.query(
        "SELECT visitParamExtractString(event_context, 'email') FROM event_log_dedup"
        f" WHERE event_type = 'user_created' AND event_context LIKE '%{prefix}-%' FORMAT TSV",
        database=ctx.clickhouse_database,
    )
    emails = answer.splitlines()
    ctx.check(len(users) > 0, "nobody signed up")
    ctx.check(sorted(emails) == sorted(users), f"{len(users)} users but {len(emails)} user_created events")


# `event_log` as it is, but with a payload column no event fits: ClickHouse
# refuses every row, old or new, the same way (a data error, code 131).
NARROWED_EVENT_LOG = """
CREATE TABLE event_log (
    event_id UUID, event_type String, event_date_time DateTime('UTC'), environment String,
    event_context FixedString(4), metadata_version UInt64
) ENGINE = ReplacingMergeTree PARTITION BY toYYYYMM(event_date_time)
ORDER BY (event_type, event_date_time, event_id)
"""


@scenario
async def systemic_refusal(ctx: Context) -> None:
    """ClickHouse refuses every event the same way for 10-14 s: `event_log` swapped for a narrowed one.

    Its payload column becomes a `FixedString(4)` no event fits, so every row,
    old or new, is refused with the same data error. The relays must see it is
    ClickHouse, not the events (`relay_systemic_refusal` 1 on `/metrics`),
    set nothing aside, keep everything in the outbox and deliver it once when
    the table is back.
    """
    await ctx.start_relays(2)
    loop = asyncio.get_running_loop()
    flags: set[float] = set()
    taken_by_narrowed: list[int] = []

    def clickhouse(sql: str) -> str:
        return ctx.clickhouse.query(sql, database=ctx.clickhouse_database)

    async def chaos(stop: asyncio.Event) -> None:
        if not await ctx.pause(stop, 2.0):
            return
        await asyncio.to_thread(clickhouse, "RENAME TABLE event_log TO event_log_kept")
        await asyncio.to_thread(clickhouse, NARROWED_EVENT_LOG)
        ctx.fault("event_log narrowed: every row refused")
        # The refusal lasts its time even if the producer finishes first.
        until = loop.time() + ctx.rng.uniform(10.0, 14.0)
        while loop.time() < until:
            for relay in ctx.fleet.running:
                flag = await asyncio.to_thread(relay.metric, "relay_systemic_refusal")
                if flag is not None:
                    flags.add(flag)
            await asyncio.sleep(0.5)
        taken_by_narrowed.append(int(await asyncio.to_thread(clickhouse, "SELECT count() FROM event_log")))
        await asyncio.to_thread(clickhouse, "DROP TABLE event_log")
        await asyncio.to_thread(clickhouse, "RENAME TABLE event_log_kept TO event_log")

    await ctx.produce_while(chaos, rate=ctx.profile.rate / 2.5)
    ctx.check(1.0 in flags, f"no relay reported relay_systemic_refusal 1 (saw {sorted(flags)})")
    ctx.check(taken_by_narrowed == [0], f"the narrowed table took rows: {taken_by_narrowed}")
    await drain(ctx)
    for relay in ctx.fleet.running:
        flag = await _metric_settles(relay.metric, "relay_systemic_refusal", 0.0)
        ctx.check(flag == 0.0, f"{relay.name} still reports relay_systemic_refusal {flag} once delivering")
    ctx.after.append(lambda: _nothing_set_aside(ctx))


async def _metric_settles(
    read: Callable[[str], float | None], name: str, expected: float, *, within: float = 10.0
) -> float | None:
    """The metric's value once it equals `expected`, or its last value after `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    value = await asyncio.to_thread(read, name)
    while value != expected and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.5)
        value = await asyncio.to_thread(read, name)
    return value


def _nothing_set_aside(ctx: Context) -> None:
    rows = ctx.postgres.execute("SELECT count(*) FROM event_outbox_dead_letter", DATABASE)
    ctx.check(int(rows[0][0]) == 0, f"{rows[0][0]} events were dead-lettered during a systemic refusal")


@scenario
async def events_lost_in_clickhouse_repaired(ctx: Context) -> None:
    """Events removed from ClickHouse after delivery (mutation, dropped partition); `relay reconcile` repairs.

    Events are dated now, three hours ago and forty days ago (another month,
    its own partition), with the archive kept 60 days. Once all are delivered,
    a quarter of those three hours old are deleted with `ALTER TABLE … DELETE`
    and the old month with `DROP PARTITION`. The one-shot `relay reconcile`
    must report exactly those as missing and resent (its last line, JSON),
    then another quarter is deleted and the relays' own reconciliation
    (`RELAY_RECONCILE_INTERVAL` 2 s) must send exactly those again; the
    accounting then finds every event exactly once.
    """
    # The relays' own periodic reconciliation is off at first: the command does
    # it all, so its counts are exactly what was removed.
    ctx.fleet.env.update(RELAY_ARCHIVE_RETENTION="60d", RELAY_RECONCILE_INTERVAL="0")
    now = datetime.now(UTC)
    old = timedelta(days=40)
    await _archive_on_since(ctx, now - old - timedelta(days=1))
    await ctx.start_relays(2)
    ages = (timedelta(0), timedelta(hours=3), old)
    await ctx.produce_while(producer=ctx.producer(ages=ages))
    await drain(ctx)

    def clickhouse(sql: str) -> str:
        return ctx.clickhouse.query(sql, database=ctx.clickhouse_database)

    def visible() -> int:
        return int(clickhouse("SELECT count() FROM event_log_dedup"))

    delivered = await asyncio.to_thread(visible)
    await asyncio.to_thread(
        clickhouse,
        "ALTER TABLE event_log DELETE WHERE event_date_time < now() - 3600"
        " AND event_date_time > now() - 86400 AND sipHash64(toString(event_id)) % 4 = 0",
    )
    await _mutations_done(ctx)
    deleted = delivered - await asyncio.to_thread(visible)
    ctx.fault(f"{deleted} events deleted by a mutation")
    await asyncio.to_thread(clickhouse, f"ALTER TABLE event_log DROP PARTITION {now - old:%Y%m}")
    removed = delivered - await asyncio.to_thread(visible)
    ctx.fault(f"{removed - deleted} events lost with a dropped partition")
    ctx.check(deleted > 0 and removed > deleted, f"removed {deleted} by mutation, {removed} in all")

    summary = await reconcile(ctx)
    ctx.check(
        summary.get("missing") == removed and summary.get("resent") == removed,
        f"removed {removed}, relay reconcile reported {summary}",
    )

    # Then the relays' own periodic reconciliation, every 2 s, repairs a second loss.
    await asyncio.to_thread(
        clickhouse,
        "ALTER TABLE event_log DELETE WHERE event_date_time < now() - 3600"
        " AND event_date_time > now() - 86400 AND sipHash64(toString(event_id)) % 4 = 1",
    )
    await _mutations_done(ctx)
    lost_again = delivered - await asyncio.to_thread(visible)
    ctx.fault(f"{lost_again} more events deleted by a mutation")
    codes = ctx.fleet.stop_all()
    ctx.check(codes == [0, 0], f"relays stopped to reconcile more often exited with {codes}")
    ctx.fleet.env["RELAY_RECONCILE_INTERVAL"] = "2s"
    await ctx.start_relays(2)
    for _ in range(60):  # 30 s at most
        if await asyncio.to_thread(visible) >= delivered:
            break
        await asyncio.sleep(0.5)
    # A relay counts its re-sends once its whole run is over, a moment after
    # the rows are back: read until the counts add up (or 10 s pass).
    resent: list[float | None] = []
    for _ in range(20):
        resent = [
            await asyncio.to_thread(relay.metric, "relay_reconcile_resent_events_total")
            for relay in ctx.fleet.running
        ]
        if sum(value or 0 for value in resent) >= lost_again:
            break
        await asyncio.sleep(0.5)
    ctx.notes.append(f"periodic reconciliation: {lost_again} deleted, resent by each relay {resent}")
    ctx.check(
        lost_again > 0 and sum(value or 0 for value in resent) == lost_again,
        f"deleted {lost_again}, the relays' reconciliation resent {resent}",
    )


async def _archive_on_since(ctx: Context, moment: datetime) -> None:
    """Make the archive's partition for `moment`'s hour, as if the archive had been on since then."""
    connection = await asyncpg.connect(ctx.servers.dsn)
    try:
        await archive.create_partition(connection, archive.hour_of(moment))
    finally:
        await connection.close()


async def _mutations_done(ctx: Context, *, within: float = 30.0) -> None:
    query = (
        f"SELECT count() FROM system.mutations WHERE database = '{ctx.clickhouse_database}' AND NOT is_done"
    )
    deadline = asyncio.get_running_loop().time() + within
    while int(await asyncio.to_thread(ctx.clickhouse.query, query)) > 0:
        if asyncio.get_running_loop().time() > deadline:
            ctx.problems.append(f"a ClickHouse mutation did not finish within {within:.0f} s")
            return
        await asyncio.sleep(0.2)
