"""The loop: wait for work, claim a batch, deliver it to ClickHouse, acknowledge it.

Acknowledging is deleting the claimed rows in the transaction that claimed
them, committed only after ClickHouse acknowledged the insert. A crash between
the two re-delivers the batch; `event_log` hides the duplicates.

The loop only decides. It does its I/O through an `Outbox` (over PostgreSQL:
`relay.core.outbox.PostgresOutbox`) and a `Sink`, and waits on a `Clock`; what
a failure calls for next is one table (`RESPONSES`, read by `next_step`). Unit
tests drive every branch with fakes; the integration tests prove the SQL and
the wire.
"""

from __future__ import annotations

import asyncio
import enum
import time
import uuid
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Final, Protocol

import structlog

from relay.core.clickhouse import RejectedData, TransientError
from relay.core.doorbell import Doorbell
from relay.core.isolation import Canary, Isolator, Line, Outcome, Refusal, Sink, SystemicRefusal
from relay.core.memory import Burst, give_back
from relay.core.observer import Batch, Delivery, Observer, TraceContext
from relay.core.postgres import POSTGRES_ERRORS
from relay.core.retry import Backoff
from relay.core.waits import Clock

log = structlog.get_logger("relay.forwarder")

# The longest an isolating transaction cuts before it commits what it has
# (the rest stays in the outbox for the next round): it holds row locks and
# PostgreSQL's xmin horizon meanwhile.
ISOLATION_DEADLINE = 10.0
# Failures in a row of the same non-data kind after which the batch is halved.
SHRINK_AFTER = 2
SHRINKING_KINDS = frozenset({"server", "timeout"})


class Claim(Protocol):
    """One outbox transaction: what it takes leaves the outbox if it commits, and stays if it rolls back."""

    async def take_batch(
        self, limit: int, max_bytes: int, *, traced: bool = False
    ) -> tuple[bytes, list[TraceContext]]:
        """Claim and remove up to `limit` events (about `max_bytes`) as ClickHouse TSV (and trace headers)."""
        ...

    async def claim_lines(self, limit: int, max_bytes: int) -> list[Line]:
        """Claim up to `limit` events (about `max_bytes`) without removing them: (outbox id, TSV line)."""
        ...

    async def settle(self, *, delivered: list[int], refused: list[tuple[int, str]]) -> None:
        """Remove the delivered events; set the refused ones aside, each with its error."""
        ...

    @property
    def happened(self) -> float | None:
        """Once committed: when the oldest event `take_batch` removed happened (epoch seconds, to the
        microsecond, whatever ClickHouse keeps), or `None` if the outbox cannot say."""
        ...


class Outbox(Protocol):
    """Where a forwarder takes events from."""

    def claim(self) -> AbstractAsyncContextManager[Claim]:
        """A transaction, committed when the block ends without an error, rolled back otherwise."""
        ...

    async def canary(self) -> bytes | None:
        """A recently delivered event as TSV, to test ClickHouse with (`None` without the archive)."""
        ...


class Went(enum.StrEnum):
    """How a round went."""

    DELIVERED = "delivered"  # a batch went to ClickHouse and left the outbox
    EMPTY = "empty"  # nothing was waiting
    ISOLATED = "isolated"  # a refused batch was sorted out: good events delivered, bad ones set aside
    FAILED = "failed"  # nothing moved; the loop did what the failure called for


@dataclass(frozen=True, slots=True)
class Round:
    """What one round did: how it went, and how many events it delivered."""

    went: Went
    events: int = 0


class Next(enum.StrEnum):
    """What a failed round calls for."""

    ISOLATE = "isolate"  # some event of the batch is bad: isolate the batch next, at once
    REFUSED = "refused"  # ClickHouse refuses every event alike: say so, back off; the events wait
    SHRINK = "shrink"  # the same slow or failing insert again: halve the batch, back off
    BACK_OFF = "back_off"  # a transient failure: back off, then try the same again


class OversizedEvent(Exception):
    """One event whose TSV line alone is larger than `RELAY_BATCH_MAX_BYTES`."""

    code = None

    def __init__(self, size: int, cap: int) -> None:
        super().__init__(
            f"Event too large: {size} bytes as TSV, over RELAY_BATCH_MAX_BYTES ({cap});"
            " set aside without being sent to ClickHouse"
        )
        self.size = size


# What each failure calls for, first match first: (errors, their kind in
# metrics and logs, or `None` for the error's own `kind`, what comes next).
RESPONSES: Final[tuple[tuple[tuple[type[Exception], ...], str | None, Next], ...]] = (
    ((RejectedData, OversizedEvent), "rejected", Next.ISOLATE),
    ((SystemicRefusal,), "rejected", Next.REFUSED),
    ((TransientError,), None, Next.BACK_OFF),  # server, timeout, unavailable
    (POSTGRES_ERRORS, "postgres", Next.BACK_OFF),
)
FAILURES: Final = tuple(error for errors, _, _ in RESPONSES for error in errors)


@dataclass(frozen=True, slots=True)
class Step:
    """What the loop does after a failed round."""

    kind: str  # the failure's kind, for metrics and logs
    next: Next
    failures: int  # failures of this kind in a row, this one included (isolating is no retry: unchanged)


def next_step(error: Exception, *, last_kind: str, failures: int) -> Step:
    """What comes after a round that failed with `error`, after `failures` failures of `last_kind` in a row.

    A pure function of its arguments: `RESPONSES`, and halving the batch once
    the same slow or failing insert comes back `SHRINK_AFTER` times in a row.
    """
    for errors, fixed_kind, response in RESPONSES:
        if isinstance(error, errors):
            kind = fixed_kind or str(getattr(error, "kind", "error"))
            if response is Next.ISOLATE:
                return Step(kind=kind, next=response, failures=failures)
            in_a_row = failures + 1 if kind == last_kind else 1
            shrink = response is Next.BACK_OFF and kind in SHRINKING_KINDS and in_a_row >= SHRINK_AFTER
            return Step(kind=kind, next=Next.SHRINK if shrink else response, failures=in_a_row)
    raise TypeError(f"not a failure a forwarder handles: {type(error).__name__}")


@dataclass(frozen=True, slots=True)
class ForwarderConfig:
    """The knobs of one forwarding loop."""

    batch_size: int
    max_bytes: int
    poll_interval: float
    recheck_interval: float
    quiet_period: float
    backoff: Backoff


@dataclass(slots=True)
class Backlog:
    """What the forwarders of one relay know of the work waiting, to decide which of them claim.

    One forwarder keeps up with a steady flow, and its batches come back
    short. Two inserting side by side then only slow each other down: each
    ClickHouse insert is another part to write and merge on the same cores
    (at 1,000 events/s, a second forwarder made the p99 latency worse, not
    better). So the first forwarder (the lead) follows the flow, and the
    others claim when a burst starts from idle and while claims come back
    full: a backlog, where overlapping one batch's PostgreSQL work with
    another's insert pays. A claim says which as soon as it comes back, so
    the others start beside the insert of a full batch.
    """

    flag: asyncio.Event = field(default_factory=asyncio.Event)
    flowing: bool = False  # the lead is following a steady flow (its follow-up looks are on)

    def saw(self, *, full: bool) -> None:
        """A claim came back full (a backlog), or short (none: the outbox is caught up)."""
        if full:
            self.flag.set()
        else:
            self.flag.clear()


@dataclass(frozen=True, slots=True, kw_only=True)
class Forwarder:
    """One delivery loop; a relay runs `RELAY_CONCURRENCY` of them side by side.

    The lead follows the flow (wake-ups, follow-up looks, the poll); the others
    wait for a wake-up from idle, a `Backlog` or the poll, and then deliver
    until a claim comes back short.
    """

    name: str
    outbox: Outbox
    sink: Sink
    config: ForwarderConfig
    doorbell: Doorbell
    observer: Observer
    # The last line ClickHouse took, shared by the forwarders of one relay.
    canary: Canary = field(default_factory=Canary)
    # Shared by the forwarders of one relay, like the canary.
    backlog: Backlog = field(default_factory=Backlog)
    lead: bool = True
    clock: Clock = field(default_factory=Clock)

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
                done = await self.round(stop, attempts, batch_id=batch_id)
            if done.went is Went.FAILED:
                continue  # backed off already, or isolating next
            full = done.went is Went.DELIVERED and attempts.filled_by(done.events)
            attempts.grow(self.config)
            burst.delivered(done.events if done.went is Went.DELIVERED else 0)
            if full or done.went is Went.ISOLATED:
                continue  # more is waiting (or isolation just ran): go on without waiting
            if burst.ended():
                give_back()  # a backlog was drained: its buffers are garbage now
            if not self.lead:
                if done.went is Went.DELIVERED:
                    # Events are flowing and this one does not follow up on
                    # them: ring, so that the lead looks again (and keeps looking).
                    woken = bell.is_set()
                    self.doorbell.ring()
                    if not woken:
                        bell.clear()  # the ring is for the lead: no reason for this one to look again
                # A wake-up from idle starts everyone (the burst may be large);
                # while the lead follows a steady flow, only a backlog does.
                wakes = (self.backlog.flag, stop) if self.backlog.flowing else (self.backlog.flag, bell, stop)
                await self.clock.first_of(*wakes, seconds=self.config.poll_interval)
                continue
            if done.went is Went.DELIVERED:
                follow_up.extend(self.clock.monotonic())  # events are flowing: keep looking
            following = follow_up.active(self.clock.monotonic())
            self.backlog.flowing = following
            await self.clock.first_of(
                bell, stop, seconds=follow_up.interval if following else self.config.poll_interval
            )
            if stop.is_set():
                break
            if bell.is_set():
                # Producers notify at most once per debounce window (and each
                # session looks at most once per window): transactions that
                # kept quiet are found by the follow-up looks.
                follow_up.extend(self.clock.monotonic())
            else:
                self.observer.woke("recheck" if following else "poll")

    async def round(self, stop: asyncio.Event, attempts: Attempts, *, batch_id: str) -> Round:
        """One batch (or one isolation); a failure is answered (see `next_step`) before it returns."""
        try:
            if attempts.isolate:
                attempts.isolate = False
                done = await self.isolate_batch(attempts)
            else:
                done = await self.deliver_batch(attempts, batch_id=batch_id)
        except FAILURES as error:
            await self._answer(error, stop, attempts)
            return Round(Went.FAILED)
        attempts.succeeded()
        return done

    async def _answer(self, error: Exception, stop: asyncio.Event, attempts: Attempts) -> None:
        step = next_step(error, last_kind=attempts.kind, failures=attempts.failures)
        details = _details(error)
        if step.next is Next.ISOLATE:
            # Some row in the batch is bad (or too big to send). The transaction
            # rolled back; the next round finds it, at once.
            attempts.isolate = True
            self._failed(step.kind, **details)
            return
        attempts.kind, attempts.failures = step.kind, step.failures
        if step.next is Next.REFUSED:
            assert isinstance(error, SystemicRefusal)
            self._refusing(attempts, error)
            details["systemic"] = True
        elif step.next is Next.SHRINK:
            attempts.shrink()
        delay = self.config.backoff.delay(step.failures)
        self._failed(step.kind, attempt=step.failures, retry_in_s=round(delay, 3), **details)
        await self.clock.sleep_unless(stop, delay)

    async def deliver_batch(self, attempts: Attempts, *, batch_id: str) -> Round:
        """Move one batch from the outbox to ClickHouse."""
        started = time.perf_counter()
        traced = self.observer.wants_traces()
        async with self.outbox.claim() as claim:
            body, traces = await claim.take_batch(attempts.limit, attempts.max_bytes, traced=traced)
            events = body.count(b"\n")
            # Said at the claim, not after the insert: the others start now, beside this insert.
            self.backlog.saw(full=attempts.filled_by(events))
            if not body:
                # Nothing waits that ClickHouse could refuse: another relay
                # delivered it once ClickHouse took events again.
                self._accepting(attempts)
                return Round(Went.EMPTY)
            if len(body) > self.config.max_bytes and events == 1:
                raise OversizedEvent(len(body), self.config.max_bytes)  # rolls back: isolation sets it aside
            batch = Batch(batch_id=batch_id, events=events, size=len(body), traces=traces if traced else None)
            with self.observer.inserting(batch):
                await self.sink.insert(body)
            acknowledged_at = time.time()
            await self.observer.acknowledged(batch)
        self.canary.remember(body)
        self._accepting(attempts)
        duration = time.perf_counter() - started
        lag = acknowledged_at - claim.happened if claim.happened is not None else None
        self.observer.delivered(Delivery(batch.events, batch.size, duration=duration, lag=lag))
        log.info(
            "batch_delivered",
            events=batch.events,
            bytes=batch.size,
            duration_ms=round(duration * 1000, 2),
            attempt=attempts.failures + 1,
        )
        return Round(Went.DELIVERED, batch.events)

    async def isolate_batch(self, attempts: Attempts) -> Round:
        """Deliver a batch that ClickHouse refused, setting its bad events aside.

        The events are cut where ClickHouse says it stopped (see
        `relay.core.isolation`): the good ones are delivered and removed, each
        refused one goes to the dead-letter table with ClickHouse's error, an
        event over the byte cap goes there without being sent, all in one
        transaction bounded by `ISOLATION_DEADLINE`. A systemic refusal raises
        `SystemicRefusal` and rolls everything back.
        """
        cap = self.config.max_bytes
        isolator = Isolator(self.sink, self.canary, deadline=ISOLATION_DEADLINE, fallback=self.outbox.canary)
        async with self.outbox.claim() as claim:
            lines = await claim.claim_lines(attempts.limit, attempts.max_bytes)
            sendable: list[Line] = [line for line in lines if len(line[1]) <= cap]
            outcome = await isolator.isolate(sendable) if sendable else Outcome()
            outcome.refused.extend(
                Refusal(outbox_id, line, OversizedEvent(len(line), cap))
                for outbox_id, line in lines
                if len(line) > cap
            )
            await claim.settle(
                delivered=outcome.delivered,
                refused=[(refusal.outbox_id, str(refusal.error)) for refusal in outcome.refused],
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
        return Round(Went.ISOLATED, len(outcome.delivered)) if lines else Round(Went.EMPTY)

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


def _details(error: Exception) -> dict[str, object]:
    """What a log line says of a failure besides its kind."""
    if isinstance(error, POSTGRES_ERRORS):
        return {"error_type": type(error).__name__, "sqlstate": getattr(error, "sqlstate", None)}
    return {"error_code": getattr(error, "code", None)}


@dataclass(slots=True)
class Attempts:
    """How one forwarder's last rounds went, and what that makes of the next one."""

    limit: int  # events per batch now: halved while timeouts or server errors repeat
    max_bytes: int
    failures: int = 0  # failures in a row, of `kind` (see `next_step`)
    kind: str = ""
    isolate: bool = False  # the next round isolates: a batch was refused, or the last isolation found poison
    refusing: bool = False  # ClickHouse refuses every event alike

    def filled_by(self, events: int) -> bool:
        """Whether a claim of `events` took all it could: more is likely waiting (a backlog)."""
        return events >= self.limit

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
