"""The loop: wait for work, claim a batch, deliver it to ClickHouse, acknowledge it.

Acknowledging is deleting the claimed rows in the transaction that claimed
them, committed only after ClickHouse acknowledged the insert. A crash between
the two re-delivers the batch; `event_log` hides the duplicates.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import structlog

from relay import outbox
from relay.clickhouse import ClickHouseSink, RejectedData, TransientError
from relay.doorbell import Doorbell
from relay.observer import Batch, Delivery, Observer
from relay.outbox import POSTGRES_ERRORS, OutboxQueries
from relay.retry import Backoff
from relay.waits import first_of, sleep_unless

log = structlog.get_logger("relay.forwarder")

# Most events one isolation transaction claims: all-bad slices then cost at
# most ~2 x 256 small inserts before the transaction commits.
ISOLATION_BATCH = 256


@dataclass(frozen=True, slots=True)
class ForwarderConfig:
    """The knobs of one forwarding loop."""

    batch_size: int
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

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver batches until `stop` is set; the batch in hand is finished first."""
        bell = self.doorbell.subscribe()
        failures = 0
        isolate = False
        follow_up = FollowUp(interval=self.config.recheck_interval, quiet_period=self.config.quiet_period)
        while not stop.is_set():
            # Cleared before claiming: a ring during the batch means "look again".
            bell.clear()
            batch_id = uuid.uuid4().hex[:16]
            with structlog.contextvars.bound_contextvars(batch_id=batch_id, forwarder=self.name):
                try:
                    if isolate:
                        delivered = await self.isolate_batch()
                        isolate = False
                    else:
                        delivered = await self.deliver_batch(batch_id=batch_id, attempt=failures + 1)
                except RejectedData as error:
                    # Some row in the batch is bad. The transaction rolled back; the
                    # next round takes the slow path that finds it.
                    self._failed("rejected", error_code=error.code)
                    isolate = True
                    continue
                except TransientError as error:
                    failures += 1
                    await self._back_off(stop, failures, error.kind, error_code=error.code)
                    continue
                except POSTGRES_ERRORS as error:
                    failures += 1
                    await self._back_off(
                        stop,
                        failures,
                        "postgres",
                        error_type=type(error).__name__,
                        sqlstate=getattr(error, "sqlstate", None),
                    )
                    continue
            failures = 0
            if delivered >= self.config.batch_size:
                continue  # more is waiting: drain without waiting
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

    async def deliver_batch(self, *, batch_id: str = "", attempt: int = 1) -> int:
        """Move one batch from the outbox to ClickHouse; return how many events it held."""
        started = time.perf_counter()
        traced = self.observer.wants_traces()
        async with self.pool.acquire() as connection, connection.transaction():
            body, traces = await outbox.take_batch(
                connection, self.queries, self.config.batch_size, traced=traced
            )
            if not body:
                return 0
            batch = Batch(
                batch_id=batch_id, events=body.count(b"\n"), size=len(body), traces=traces if traced else None
            )
            with self.observer.inserting(batch):
                await self.sink.insert(body)
            acknowledged_at = time.time()
            await self.observer.acknowledged(batch)
        duration = time.perf_counter() - started
        self.observer.delivered(
            Delivery(batch.events, batch.size, duration=duration, lag=_lag(body, acknowledged_at))
        )
        log.info(
            "batch_delivered",
            events=batch.events,
            bytes=batch.size,
            duration_ms=round(duration * 1000, 2),
            attempt=attempt,
        )
        return batch.events

    async def isolate_batch(self) -> int:
        """Deliver a batch that ClickHouse refused, setting its bad events aside.

        At most `ISOLATION_BATCH` events are claimed and split in halves until
        each refused part is a single event; those go to the dead-letter table
        with ClickHouse's error, the rest are delivered and removed, all in one
        transaction. The cap bounds that transaction's length even when every
        event is bad; the next round takes the next slice.
        """
        async with self.pool.acquire() as connection, connection.transaction():
            limit = min(self.config.batch_size, ISOLATION_BATCH)
            lines = await outbox.claim_lines(connection, self.queries, limit)
            delivered: list[int] = []
            refused: list[tuple[int, bytes, RejectedData]] = []
            await self._deliver_halves(lines, delivered, refused)
            await outbox.delete(connection, delivered)
            for outbox_id, line, error in refused:
                await outbox.dead_letter(connection, outbox_id, str(error))
                log.warning(
                    "event_dead_lettered",
                    event_id=line[:36].decode(errors="replace"),
                    error_code=error.code,
                )
        if delivered:
            self.observer.delivered(Delivery(len(delivered), sum(len(line) for _, line in lines)))
        if refused:
            self.observer.dead_lettered(len(refused))
            log.error("batch_isolated", events=len(delivered), dead_lettered=len(refused))
        else:
            log.info("batch_isolated", events=len(delivered), dead_lettered=0)
        return len(lines)

    async def _deliver_halves(
        self,
        lines: list[tuple[int, bytes]],
        delivered: list[int],
        refused: list[tuple[int, bytes, RejectedData]],
    ) -> None:
        if not lines:
            return
        try:
            await self.sink.insert(b"".join(line for _, line in lines))
        except RejectedData as error:
            if len(lines) == 1:
                refused.append((lines[0][0], lines[0][1], error))
                return
            middle = len(lines) // 2
            await self._deliver_halves(lines[:middle], delivered, refused)
            await self._deliver_halves(lines[middle:], delivered, refused)
        else:
            delivered.extend(outbox_id for outbox_id, _ in lines)

    def _failed(self, kind: str, **details: object) -> None:
        self.observer.failed(kind)
        log.warning("batch_failed", error_kind=kind, forwarder=self.name, **details)

    async def _back_off(self, stop: asyncio.Event, failures: int, kind: str, **details: object) -> None:
        delay = self.config.backoff.delay(failures)
        self._failed(kind, attempt=failures, retry_in_s=round(delay, 3), **details)
        await sleep_unless(stop, delay)


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


def _lag(body: bytes, acknowledged_at: float) -> float | None:
    """Seconds from the first event of a TSV body (its third column) to `acknowledged_at`."""
    try:
        first_line = body[: body.find(b"\n")]
        stamp = first_line.split(b"\t", 3)[2].decode()
        happened = datetime.fromisoformat(stamp).replace(tzinfo=UTC).timestamp()
    except (IndexError, ValueError):  # a timestamp Python cannot read: no lag sample, not a crash
        return None
    return acknowledged_at - happened
