"""The loop: wait for work, claim a batch, deliver it to ClickHouse, acknowledge it.

Acknowledging is deleting the claimed rows in the transaction that claimed
them, committed only after ClickHouse acknowledged the insert. A crash between
the two re-delivers the batch; `event_log` hides the duplicates.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field

import asyncpg
import structlog

from relay.core import outbox
from relay.core.clickhouse import ClickHouseSink, RejectedData, TransientError
from relay.core.doorbell import Doorbell
from relay.core.isolation import Canary, Isolator, Line, Outcome, Refusal, SystemicRefusal
from relay.core.memory import Burst, give_back
from relay.core.observer import Batch, Delivery, Observer
from relay.core.outbox import OutboxQueries
from relay.core.postgres import POSTGRES_ERRORS, Connection, copy_out
from relay.core.retry import Backoff
from relay.core.waits import first_of, sleep_unless

log = structlog.get_logger("relay.forwarder")

# The longest an isolating transaction cuts before it commits what it has
# (the rest stays in the outbox for the next round): it holds row locks and
# PostgreSQL's xmin horizon meanwhile.
ISOLATION_DEADLINE = 10.0
# Failures in a row of the same non-data kind after which the batch is halved.
SHRINK_AFTER = 2
SHRINKING_KINDS = frozenset({"server", "timeout"})


@dataclass(frozen=True, slots=True)
class ForwarderConfig:
    """The knobs of one forwarding loop."""

    batch_size: int
    max_bytes: int
    poll_interval: float
    recheck_interval: float
    quiet_period: float
    backoff: Backoff


@dataclass(frozen=True, slots=True, kw_only=True)
class Forwarder:
    """One delivery loop; a relay runs `RELAY_CONCURRENCY` of them side by side."""

    name: str
    pool: asyncpg.Pool
    sink: ClickHouseSink
    queries: OutboxQueries
    config: ForwarderConfig
    doorbell: Doorbell
    observer: Observer
    # The last line ClickHouse took, shared by the forwarders of one relay.
    canary: Canary = field(default_factory=Canary)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver batches until `stop` is set; the batch in hand is finished first."""
        bell = self.doorbell.subscribe()
        attempts = Attempts(limit=self.config.batch_size, max_bytes=self.config.max_bytes)
        follow_up = FollowUp(interval=self.config.recheck_interval, quiet_period=self.config.quiet_period)
        burst = Burst()
        while not stop.is_set():
            # Cleared before claiming: a ring during the batch means "look again".
            bell.clear()
            batch_id = uuid.uuid4().hex[:16]
            with structlog.contextvars.bound_contextvars(batch_id=batch_id, forwarder=self.name):
                delivered = await self._round(stop, attempts, batch_id)
            if delivered is None:
                continue  # failed: backed off already, or isolating next
            full = delivered >= attempts.limit
            attempts.grow(self.config)
            burst.delivered(delivered)
            if full or delivered < 0:
                continue  # more is waiting (or isolation just ran): go on without waiting
            if burst.ended():
                give_back()  # a backlog was drained: its buffers are garbage now
            if delivered:
                follow_up.extend(time.monotonic())  # events are flowing: keep looking
            following = follow_up.active(time.monotonic())
            await first_of(bell, stop, seconds=follow_up.interval if following else self.config.poll_interval)
            if stop.is_set():
                break
            if bell.is_set():
                # Producers notify at most once per debounce window (and each
                # session looks at most once per window): transactions that
                # kept quiet are found by the follow-up looks.
                follow_up.extend(time.monotonic())
            else:
                self.observer.woke("recheck" if following else "poll")

    async def _round(self, stop: asyncio.Event, attempts: Attempts, batch_id: str) -> int | None:
        """One batch (or one isolation); `None` when it failed, after the back-off it called for."""
        try:
            if attempts.isolate:
                attempts.isolate = False
                delivered = await self.isolate_batch(attempts)
            else:
                delivered = await self.deliver_batch(
                    batch_id=batch_id, attempt=attempts.failures + 1, attempts=attempts
                )
        except (RejectedData, OversizedEvent) as error:
            # Some row in the batch is bad (or too big to send). The transaction
            # rolled back; the next round finds it, at once.
            self._failed("rejected", error_code=error.code)
            attempts.isolate = True
            return None
        except SystemicRefusal as error:
            attempts.failed("rejected")
            self._refusing(attempts, error)
            await self._back_off(stop, attempts.failures, "rejected", error_code=error.code, systemic=True)
            return None
        except TransientError as error:
            attempts.failed(error.kind)
            if error.kind in SHRINKING_KINDS and attempts.failures >= SHRINK_AFTER:
                attempts.shrink()
            await self._back_off(stop, attempts.failures, error.kind, error_code=error.code)
            return None
        except POSTGRES_ERRORS as error:
            attempts.failed("postgres")
            await self._back_off(
                stop,
                attempts.failures,
                "postgres",
                error_type=type(error).__name__,
                sqlstate=getattr(error, "sqlstate", None),
            )
            return None
        attempts.succeeded()
        return delivered

    async def deliver_batch(
        self, *, batch_id: str = "", attempt: int = 1, attempts: Attempts | None = None
    ) -> int:
        """Move one batch from the outbox to ClickHouse; return how many events it held."""
        started = time.perf_counter()
        traced = self.observer.wants_traces()
        attempts = attempts or Attempts(limit=self.config.batch_size, max_bytes=self.config.max_bytes)
        limit, max_bytes = attempts.limit, attempts.max_bytes
        async with self.pool.acquire() as connection:
            async with connection.transaction():
                body, traces = await outbox.take_batch(
                    connection, self.queries, limit, max_bytes, traced=traced
                )
                if not body:
                    # Nothing waits that ClickHouse could refuse: another relay
                    # delivered it once ClickHouse took events again.
                    self._accepting(attempts)
                    return 0
                if len(body) > self.config.max_bytes and body.count(b"\n") == 1:
                    raise OversizedEvent(
                        len(body), self.config.max_bytes
                    )  # rolls back: isolation sets it aside
                batch = Batch(
                    batch_id=batch_id,
                    events=body.count(b"\n"),
                    size=len(body),
                    traces=traces if traced else None,
                )
                with self.observer.inserting(batch):
                    await self.sink.insert(body)
                acknowledged_at = time.time()
                await self.observer.acknowledged(batch)
            # After the commit, off the events' path: the lag, to the microsecond.
            happened = await self._oldest_taken(connection)
        self.canary.remember(body)
        self._accepting(attempts)
        duration = time.perf_counter() - started
        lag = acknowledged_at - happened if happened is not None else None
        self.observer.delivered(Delivery(batch.events, batch.size, duration=duration, lag=lag))
        log.info(
            "batch_delivered",
            events=batch.events,
            bytes=batch.size,
            duration_ms=round(duration * 1000, 2),
            attempt=attempt,
        )
        return batch.events

    async def isolate_batch(self, attempts: Attempts | None = None) -> int:
        """Deliver a batch that ClickHouse refused, setting its bad events aside; -1 when done.

        The events are cut where ClickHouse says it stopped (see
        `relay.core.isolation`): the good ones are delivered and removed, each
        refused one goes to the dead-letter table with ClickHouse's error, an
        event over the byte cap goes there without being sent, all in one
        transaction bounded by `ISOLATION_DEADLINE`. A systemic refusal raises
        `SystemicRefusal` and rolls everything back.
        """
        attempts = attempts or Attempts(limit=self.config.batch_size, max_bytes=self.config.max_bytes)
        limit, max_bytes = attempts.limit, attempts.max_bytes
        cap = self.config.max_bytes
        isolator = Isolator(self.sink, self.canary, deadline=ISOLATION_DEADLINE, fallback=self._archived_line)
        async with self.pool.acquire() as connection, connection.transaction():
            lines = await outbox.claim_lines(connection, self.queries, limit, max_bytes)
            sendable: list[Line] = [line for line in lines if len(line[1]) <= cap]
            outcome = await isolator.isolate(sendable) if sendable else Outcome()
            outcome.refused.extend(
                Refusal(outbox_id, line, OversizedEvent(len(line), cap))
                for outbox_id, line in lines
                if len(line) > cap
            )
            await outbox.delete(connection, self.queries, outcome.delivered)
            await outbox.dead_letter(
                connection, [(refusal.outbox_id, str(refusal.error)) for refusal in outcome.refused]
            )
        for refusal in outcome.refused:
            log.warning(
                "event_dead_lettered",
                event_id=refusal.line[:36].decode(errors="replace"),
                error_code=getattr(refusal.error, "code", None),
            )
        if outcome.delivered:
            self.observer.delivered(Delivery(len(outcome.delivered), outcome.delivered_bytes))
            self._accepting(attempts)
        if outcome.refused:
            self.observer.dead_lettered(len(outcome.refused))
        # Poison seldom comes alone: while isolation keeps finding refused
        # events, the next batch is isolated straight away instead of first
        # failing whole on the hot path (a claim, delete and archive rolled
        # back). A batch found clean returns the loop to the hot path.
        attempts.isolate = bool(outcome.refused)
        (log.error if outcome.refused else log.info)(
            "batch_isolated",
            events=len(outcome.delivered),
            dead_lettered=len(outcome.refused),
            left_in_outbox=outcome.untouched,
            inserts=outcome.inserts,
        )
        return -1 if lines else 0

    async def _oldest_taken(self, connection: Connection) -> float | None:
        """When the oldest event of the batch just committed happened; `None` if PostgreSQL cannot say."""
        try:
            return await outbox.oldest_taken(connection)
        except POSTGRES_ERRORS:  # the batch is delivered and committed: only the lag sample is lost
            return None

    async def _archived_line(self) -> bytes | None:
        """A recently delivered event, as TSV, to test ClickHouse with (`None` without the archive)."""
        if self.queries.canary is None:
            return None
        async with self.pool.acquire() as connection:
            body = await copy_out(connection, self.queries.canary)
        return body or None

    def _refusing(self, attempts: Attempts, error: SystemicRefusal) -> None:
        log.error(
            "clickhouse_refuses_all_events",
            error_code=error.code,
            checked_with="an event it took before" if error.canary else "another event of the batch",
        )
        attempts.refusing = True
        self.observer.refusing(error.code)

    def _accepting(self, attempts: Attempts) -> None:
        if attempts.refusing:
            log.warning("clickhouse_accepts_events_again")
            attempts.refusing = False
            self.observer.accepting()

    def _failed(self, kind: str, **details: object) -> None:
        self.observer.failed(kind)
        log.warning("batch_failed", error_kind=kind, forwarder=self.name, **details)

    async def _back_off(self, stop: asyncio.Event, failures: int, kind: str, **details: object) -> None:
        delay = self.config.backoff.delay(failures)
        self._failed(kind, attempt=failures, retry_in_s=round(delay, 3), **details)
        await sleep_unless(stop, delay)


class OversizedEvent(Exception):
    """One event whose TSV line alone is larger than `RELAY_BATCH_MAX_BYTES`."""

    code = None

    def __init__(self, size: int, cap: int) -> None:
        super().__init__(
            f"Event too large: {size} bytes as TSV, over RELAY_BATCH_MAX_BYTES ({cap});"
            " set aside without being sent to ClickHouse"
        )
        self.size = size


@dataclass(slots=True)
class Attempts:
    """How one forwarder's last rounds went, and what that makes of the next one."""

    limit: int  # events per batch now: halved while timeouts or server errors repeat
    max_bytes: int
    failures: int = 0  # failures in a row, of `kind`
    kind: str = ""
    isolate: bool = False  # the next round isolates: a batch was refused, or the last isolation found poison
    refusing: bool = False  # ClickHouse refuses every event alike

    def failed(self, kind: str) -> None:
        """One more failure; a failure of another kind starts the count again."""
        self.failures = self.failures + 1 if kind == self.kind else 1
        self.kind = kind

    def succeeded(self) -> None:
        """A round went through."""
        self.failures = 0
        self.kind = ""

    def shrink(self) -> None:
        """Halve the batch: the same non-data failure keeps coming back (too large, too slow)."""
        if self.limit > 1:
            self.limit = max(1, self.limit // 2)
            self.max_bytes = max(1024, self.max_bytes // 2)
            log.warning("batch_shrunk", batch_size=self.limit, max_bytes=self.max_bytes)

    def grow(self, config: ForwarderConfig) -> None:
        """Double the batch again after a success, up to the configured size."""
        self.limit = min(config.batch_size, self.limit * 2)
        self.max_bytes = min(config.max_bytes, self.max_bytes * 2)


@dataclass(slots=True)
class FollowUp:
    """Short, regular looks at the outbox while events keep arriving.

    A notification wakes the relay at most once per debounce window, and the
    transactions committed inside the window stay silent. Rather than wait for
    the next notification, a forwarder looks again every `interval` after a
    wake-up or a look that found events, and keeps doing so until the outbox
    has stayed empty for `quiet_period` (two debounce windows: longer than any
    producer can stay silent). The wait an event can meet is then `interval`,
    not the debounce window; an idle outbox costs nothing.
    """

    interval: float
    quiet_period: float
    until: float = 0.0

    def extend(self, now: float) -> None:
        """Something happened at `now`: keep looking for another quiet period."""
        self.until = now + self.quiet_period

    def active(self, now: float) -> bool:
        """Whether the next wait is a short one."""
        return now < self.until
