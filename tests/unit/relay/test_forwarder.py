"""The forwarder's decisions, driven through `Forwarder.run` with an in-memory outbox, ClickHouse and clock.

The outbox here keeps PostgreSQL's promise (what a transaction takes leaves
only when it commits); the sink answers as ClickHouse does (it stops at the
first row it cannot take and names it); the clock jumps instead of waiting.
The integration tests run the same paths against the real servers.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest

from relay.core.clickhouse import RejectedData, TransientError
from relay.core.doorbell import Doorbell
from relay.core.forwarder import (
    SHRINK_AFTER,
    Backlog,
    Forwarder,
    ForwarderConfig,
    Next,
    OversizedEvent,
    Step,
    next_step,
)
from relay.core.isolation import Line, SystemicRefusal
from relay.core.observer import Delivery, Observer, TraceContext
from relay.core.retry import Backoff
from relay.core.waits import Clock

BACKOFF = Backoff(initial=1.0, maximum=30.0)
POLL = 5.0
RECHECK = 0.05


def event(number: int, *, bad: bool = False, payload: str = "{}") -> bytes:
    """One TSV line as the relay renders it; a bad one is refused by the fake ClickHouse."""
    event_type = "bad_event" if bad else "user_created"
    return f"{uuid.UUID(int=number)}\t{event_type}\t2026-12-03 08:00:00\tLocal\t{payload}\t1\n".encode()


class MemoryOutbox:
    """The outbox in a dict. What a claim takes leaves it when the claim commits, and stays on rollback."""

    def __init__(self, lines: list[bytes]) -> None:
        self.pending: dict[int, bytes] = dict(enumerate(lines, start=1))
        self.archived: list[bytes] = []
        self.dead: list[tuple[int, str]] = []
        self.failures: list[Exception] = []  # raised by the next claims, in order
        self._locked: set[int] = set()

    def add(self, lines: list[bytes]) -> None:
        first = max(self.pending, default=0) + len(self.archived) + len(self.dead) + 1
        self.pending.update(enumerate(lines, start=first))

    @contextlib.asynccontextmanager
    async def claim(self) -> AsyncIterator[MemoryClaim]:
        if self.failures:
            raise self.failures.pop(0)
        claim = MemoryClaim(self)
        try:
            yield claim
        except BaseException:
            claim.end(committed=False)  # rolled back, cancelled included
            raise
        claim.end(committed=True)

    async def canary(self) -> bytes | None:
        return self.archived[-1] if self.archived else None

    def lowest(self, limit: int, max_bytes: int) -> list[int]:
        ids: list[int] = []
        size = 0
        for outbox_id in sorted(set(self.pending) - self._locked)[:limit]:
            size += len(self.pending[outbox_id])
            if ids and size > max_bytes:
                break
            ids.append(outbox_id)
        self._locked.update(ids)
        return ids


@dataclass
class MemoryClaim:
    """One transaction on `MemoryOutbox`."""

    outbox: MemoryOutbox
    removed: list[int] = field(default_factory=list)
    claimed: list[int] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)
    happened: float | None = None

    async def take_batch(
        self, limit: int, max_bytes: int, *, traced: bool = False
    ) -> tuple[bytes, list[TraceContext]]:
        ids = self.outbox.lowest(limit, max_bytes)
        self.claimed += ids
        self.removed += ids
        return b"".join(self.outbox.pending[outbox_id] for outbox_id in ids), []

    async def claim_lines(self, limit: int, max_bytes: int) -> list[Line]:
        ids = self.outbox.lowest(limit, max_bytes)
        self.claimed += ids
        return [(outbox_id, self.outbox.pending[outbox_id]) for outbox_id in ids]

    async def settle(self, *, delivered: list[int], refused: list[tuple[int, str]]) -> None:
        self.removed += delivered
        self.refused += refused

    def end(self, *, committed: bool) -> None:
        if committed:
            for outbox_id in self.removed:
                self.outbox.archived.append(self.outbox.pending.pop(outbox_id))
            for outbox_id, error in self.refused:
                del self.outbox.pending[outbox_id]
                self.outbox.dead.append((outbox_id, error))
        self.outbox._locked.difference_update(self.claimed)


class FakeClickHouse:
    """Takes TSV lines unless they are bad (or it refuses everything); the next `errors` are raised first."""

    def __init__(self) -> None:
        self.stored: list[bytes] = []
        self.inserts: list[int] = []  # events per insert, in order
        self.errors: list[Exception] = []
        self.refuse_all = False
        self.on_insert: Callable[[], None] | None = None

    async def insert(self, body: bytes) -> None:
        lines = body.splitlines(keepends=True)
        self.inserts.append(len(lines))
        if self.on_insert is not None:
            self.on_insert()
        if self.errors:
            raise self.errors.pop(0)
        for row, line in enumerate(lines, start=1):
            if self.refuse_all or b"bad_event" in line:
                raise RejectedData(f"Code: 27. Cannot parse input: (at row {row})", code=27)
        self.stored.extend(lines)


class FakeClock(Clock):
    """A clock whose waits take no time; it stops the loop once `done()` holds (or after too many waits)."""

    def __init__(self, stop: asyncio.Event, done: Callable[[], bool]) -> None:
        self.stop = stop
        self.done = done
        self.now = 0.0
        self.sleeps: list[float] = []  # back-offs
        self.waits: list[float | None] = []  # waits for work
        self.waited_on: list[int] = []  # how many events each wait for work would end on
        self.already_set: list[int] = []  # how many of those were set already: the wait would end at once
        self.on_sleep: Callable[[], None] | None = None

    def monotonic(self) -> float:
        return self.now

    async def sleep_unless(self, stop: asyncio.Event, delay: float) -> None:
        self.sleeps.append(delay)
        self.now += delay
        if self.on_sleep is not None:
            self.on_sleep()
        self._tick()

    async def first_of(self, *events: asyncio.Event, seconds: float | None) -> None:
        self.waits.append(seconds)
        self.waited_on.append(len(events))
        self.already_set.append(sum(event.is_set() for event in events))
        self.now += seconds or 0.0
        self._tick()

    def _tick(self) -> None:
        if self.done() or len(self.sleeps) + len(self.waits) > 100:
            self.stop.set()


@dataclass
class Heard(Observer):
    """What the forwarder reported."""

    delivered_events: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    dead_letters: int = 0
    refusals: list[int | None] = field(default_factory=list)
    accepted_again: int = 0

    def delivered(self, delivery: Delivery) -> None:
        self.delivered_events.append(delivery.events)

    def failed(self, kind: str) -> None:
        self.failures.append(kind)

    def dead_lettered(self, events: int) -> None:
        self.dead_letters += events

    def refusing(self, error_code: int | None) -> None:
        self.refusals.append(error_code)

    def accepting(self) -> None:
        self.accepted_again += 1


@dataclass
class Rig:
    """A forwarder wired to the fakes, and the fakes to look at afterwards."""

    outbox: MemoryOutbox
    clickhouse: FakeClickHouse
    clock: FakeClock
    heard: Heard
    forwarder: Forwarder
    stop: asyncio.Event

    async def run(self) -> None:
        async with asyncio.timeout(5):
            await self.forwarder.run(self.stop)


def rig(
    lines: list[bytes],
    *,
    batch_size: int = 100,
    max_bytes: int = 1024 * 1024,
    lead: bool = True,
    backlog: Backlog | None = None,
) -> Rig:
    outbox = MemoryOutbox(lines)
    clickhouse = FakeClickHouse()
    stop = asyncio.Event()
    clock = FakeClock(stop, done=lambda: not outbox.pending)
    heard = Heard()
    forwarder = Forwarder(
        name="forwarder-test",
        outbox=outbox,
        sink=clickhouse,
        config=ForwarderConfig(
            batch_size=batch_size,
            max_bytes=max_bytes,
            poll_interval=POLL,
            recheck_interval=RECHECK,
            quiet_period=0.1,
            backoff=BACKOFF,
        ),
        doorbell=Doorbell(),
        observer=heard,
        backlog=backlog or Backlog(),
        lead=lead,
        clock=clock,
    )
    return Rig(outbox, clickhouse, clock, heard, forwarder, stop)


async def test_a_backlog_goes_in_full_batches_without_waiting_then_the_loop_looks_again_soon() -> None:
    relay = rig([event(n) for n in range(250)])

    await relay.run()

    assert relay.clickhouse.inserts == [100, 100, 50]
    assert relay.heard.delivered_events == [100, 100, 50]
    assert relay.clock.waits == [RECHECK]  # no wait between full batches; a short one after the last
    assert relay.clock.sleeps == []
    assert len(relay.outbox.archived) == 250


async def test_a_full_claim_signals_a_backlog_before_its_insert_and_a_short_one_ends_it() -> None:
    relay = rig([event(n) for n in range(250)])
    seen: list[bool] = []
    relay.clickhouse.on_insert = lambda: seen.append(relay.forwarder.backlog.flag.is_set())

    await relay.run()

    assert relay.clickhouse.inserts == [100, 100, 50]
    assert seen == [True, True, False]
    assert not relay.forwarder.backlog.flag.is_set()


async def test_a_forwarder_past_the_first_waits_for_a_wake_up_or_a_backlog_not_looking_again_soon() -> None:
    relay = rig([event(n) for n in range(50)], lead=False)

    await relay.run()

    assert relay.clickhouse.inserts == [50]
    assert relay.clock.waits == [POLL]  # no follow-up looks: the lead has those
    assert relay.clock.waited_on == [3]  # the backlog, the doorbell, the stop


async def test_a_forwarder_past_the_first_that_delivered_rings_so_that_the_lead_follows_up() -> None:
    relay = rig([event(n) for n in range(50)], lead=False)
    lead_bell = relay.forwarder.doorbell.subscribe()
    lead_bell.clear()

    await relay.run()

    assert relay.clickhouse.inserts == [50]
    assert lead_bell.is_set()


async def test_a_forwarder_past_the_first_that_rang_for_the_lead_does_not_wake_itself() -> None:
    relay = rig([event(n) for n in range(50)], lead=False)
    relay.forwarder.doorbell.subscribe()  # the lead's

    await relay.run()

    assert relay.clickhouse.inserts == [50]
    assert relay.clock.already_set[0] == 0  # it waits, rather than claiming again at once


async def test_while_the_lead_follows_a_steady_flow_the_others_wait_for_a_backlog_alone() -> None:
    backlog = Backlog()
    backlog.flowing = True
    relay = rig([event(n) for n in range(50)], lead=False, backlog=backlog)

    await relay.run()

    assert relay.clock.waited_on == [2]  # the backlog and the stop: wake-ups are the lead's


async def test_the_lead_says_when_it_follows_a_steady_flow() -> None:
    relay = rig([event(n) for n in range(50)])

    await relay.run()

    assert relay.clock.waits == [RECHECK]
    assert relay.forwarder.backlog.flowing


async def test_a_forwarder_past_the_first_goes_on_without_waiting_while_batches_come_back_full() -> None:
    backlog = Backlog()
    backlog.saw(full=True)  # the lead's last batch was full
    relay = rig([event(n) for n in range(250)], lead=False, backlog=backlog)

    await relay.run()

    assert relay.clickhouse.inserts == [100, 100, 50]
    assert relay.clock.waits == [POLL]  # only after the short batch
    assert not backlog.flag.is_set()


async def test_a_transient_failure_backs_off_and_then_delivers_the_same_events_once() -> None:
    relay = rig([event(n) for n in range(10)])
    relay.clickhouse.errors = [TransientError("ClickHouse unreachable", kind="unavailable")]

    await relay.run()

    assert relay.heard.failures == ["unavailable"]
    assert len(relay.clock.sleeps) == 1
    assert BACKOFF.initial / 2 <= relay.clock.sleeps[0] <= BACKOFF.bound(1)
    assert relay.clickhouse.inserts == [10, 10]
    assert sorted(relay.clickhouse.stored) == sorted(event(n) for n in range(10))  # each once


async def test_the_same_timeout_twice_halves_the_batch_and_success_grows_it_back() -> None:
    relay = rig([event(n) for n in range(300)])
    timeout = TransientError("ClickHouse did not answer in time", kind="timeout")
    relay.clickhouse.errors = [timeout] * SHRINK_AFTER

    await relay.run()

    assert relay.clickhouse.inserts == [100, 100, 50, 100, 100, 50]
    assert relay.heard.failures == ["timeout", "timeout"]
    assert len(relay.clock.sleeps) == 2
    assert len(relay.clickhouse.stored) == 300


async def test_unreachable_clickhouse_is_retried_at_full_batch_size() -> None:
    relay = rig([event(n) for n in range(100)])
    relay.clickhouse.errors = [TransientError("ClickHouse unreachable", kind="unavailable")] * 3

    await relay.run()

    assert relay.clickhouse.inserts == [100, 100, 100, 100]  # nothing to gain from smaller batches


async def test_a_poison_event_is_set_aside_with_its_error_and_the_rest_delivered_without_waiting() -> None:
    lines = [event(n, bad=n == 7) for n in range(1, 21)]
    relay = rig(lines)

    await relay.run()

    [(outbox_id, error)] = relay.outbox.dead
    assert outbox_id == 7
    assert "Cannot parse input" in error
    assert sorted(relay.clickhouse.stored) == sorted(line for line in lines if b"bad_event" not in line)
    assert relay.heard.failures == ["rejected"]
    assert relay.heard.dead_letters == 1
    assert relay.clock.sleeps == []  # isolating is not backing off


async def test_an_event_over_the_byte_cap_is_set_aside_without_being_sent() -> None:
    huge = event(1, payload="x" * 5_000)
    relay = rig([huge, event(2)], max_bytes=1_000)

    await relay.run()

    [(outbox_id, error)] = relay.outbox.dead
    assert outbox_id == 1
    assert "RELAY_BATCH_MAX_BYTES" in error
    assert huge not in relay.clickhouse.stored
    assert relay.clickhouse.stored == [event(2)]


async def test_when_clickhouse_refuses_every_event_none_is_set_aside_and_the_events_wait() -> None:
    relay = rig([event(n) for n in range(5)])
    await relay.run()  # ClickHouse took these: the archive now holds a canary
    relay.stop.clear()
    relay.outbox.add([event(n) for n in range(100, 110)])
    relay.clickhouse.refuse_all = True
    refused_sleeps = 3

    def recover() -> None:
        if len(relay.clock.sleeps) == refused_sleeps:
            relay.clickhouse.refuse_all = False  # whoever changed ClickHouse changed it back

    relay.clock.on_sleep = recover
    await relay.run()

    assert relay.outbox.dead == []
    assert relay.heard.refusals == [27] * refused_sleeps
    assert len(relay.clock.sleeps) == refused_sleeps
    assert relay.heard.accepted_again == 1
    assert len(relay.clickhouse.stored) == 15


async def test_a_postgres_failure_backs_off_under_its_own_kind() -> None:
    relay = rig([event(n) for n in range(10)])
    relay.outbox.failures = [ConnectionResetError("connection reset by peer")]

    await relay.run()

    assert relay.heard.failures == ["postgres"]
    assert len(relay.clock.sleeps) == 1
    assert len(relay.clickhouse.stored) == 10


async def test_a_stop_during_an_insert_finishes_the_batch_in_hand_and_claims_no_more() -> None:
    relay = rig([event(n) for n in range(300)])
    relay.clickhouse.on_insert = relay.stop.set

    await relay.run()

    assert relay.clickhouse.inserts == [100]
    assert len(relay.outbox.archived) == 100  # committed
    assert len(relay.outbox.pending) == 200


async def test_a_batch_cancelled_before_clickhouse_answers_stays_in_the_outbox() -> None:
    relay = rig([event(n) for n in range(300)])
    answered = asyncio.Event()

    async def hang(body: bytes) -> None:
        await answered.wait()

    relay.clickhouse.insert = hang  # type: ignore[method-assign]
    running = asyncio.create_task(relay.forwarder.run(relay.stop))
    await asyncio.sleep(0.01)
    running.cancel()  # the grace period ran out
    with pytest.raises(asyncio.CancelledError):
        await running

    assert len(relay.outbox.pending) == 300  # rolled back: nothing lost, nothing delivered
    assert relay.outbox.archived == []
    assert relay.outbox.lowest(300, 1024 * 1024) == list(range(1, 301))  # and nothing left locked


REFUSED = RejectedData("Code: 27. Cannot parse input: (at row 3)", code=27)
TIMEOUT = TransientError("ClickHouse did not answer in time", kind="timeout")
SERVER = TransientError("Code: 252. Too many parts", kind="server", code=252)
UNAVAILABLE = TransientError("ClickHouse unreachable: ClientConnectorError", kind="unavailable")


@pytest.mark.parametrize(
    ("error", "last_kind", "failures", "expected"),
    [
        (REFUSED, "", 0, Step("rejected", Next.ISOLATE, 0)),
        (REFUSED, "timeout", 1, Step("rejected", Next.ISOLATE, 1)),  # isolating is no retry
        (OversizedEvent(2_000, 1_000), "", 0, Step("rejected", Next.ISOLATE, 0)),
        (SystemicRefusal(REFUSED, canary=True), "", 0, Step("rejected", Next.REFUSED, 1)),
        (SystemicRefusal(REFUSED, canary=True), "rejected", 1, Step("rejected", Next.REFUSED, 2)),
        (UNAVAILABLE, "", 0, Step("unavailable", Next.BACK_OFF, 1)),
        (UNAVAILABLE, "unavailable", 5, Step("unavailable", Next.BACK_OFF, 6)),
        (TIMEOUT, "", 0, Step("timeout", Next.BACK_OFF, 1)),
        (TIMEOUT, "timeout", 1, Step("timeout", Next.SHRINK, 2)),
        (TIMEOUT, "server", 1, Step("timeout", Next.BACK_OFF, 1)),
        (SERVER, "server", 3, Step("server", Next.SHRINK, 4)),
        (ConnectionRefusedError(), "postgres", 1, Step("postgres", Next.BACK_OFF, 2)),
        (TimeoutError(), "timeout", 4, Step("postgres", Next.BACK_OFF, 1)),
    ],
)
def test_each_failure_calls_for_its_own_next_step(
    error: Exception, last_kind: str, failures: int, expected: Step
) -> None:
    assert next_step(error, last_kind=last_kind, failures=failures) == expected


def test_an_error_no_rule_names_is_not_swallowed() -> None:
    with pytest.raises(TypeError, match="KeyError"):
        next_step(KeyError("event_id"), last_kind="", failures=0)
