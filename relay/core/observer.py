"""What the relay's core reports as it works, and the one object it reports to.

The delivery loop, the listener, the readiness probes and reconciliation know
nothing of metrics, `/status` or traces: they tell an `Observer` what happened.
The ops side (`relay.ops.telemetry`) is one observer; `Observers` lets more
listen at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Literal

type WakeCause = Literal["notify", "poll", "recheck"]


@dataclass(frozen=True, slots=True)
class TraceContext:
    """Sentry trace headers an event was written with."""

    sentry_trace: str
    baggage: str


@dataclass(frozen=True, slots=True)
class Batch:
    """A batch in flight: claimed, being inserted or inserted, its removal not yet committed."""

    batch_id: str
    events: int
    size: int  # bytes of TSV
    traces: Sequence[TraceContext] | None = None  # None: this batch is not traced


@dataclass(frozen=True, slots=True)
class Delivery:
    """Events ClickHouse acknowledged and the outbox no longer holds."""

    events: int
    size: int  # bytes of TSV
    duration: float | None = None  # seconds from claiming to committing, when timed
    lag: float | None = None  # seconds from the oldest event happening to its acknowledgement


@dataclass(frozen=True, slots=True, kw_only=True)
class Reconciled:
    """What one reconciliation of the archive with ClickHouse found and did."""

    buckets_checked: int
    missing: int  # archived events ClickHouse did not hold
    resent: int
    extra: int  # events ClickHouse holds that the archive does not
    complete: bool  # ClickHouse now holds every archived event of the hours checked

    def summary(self) -> dict[str, int]:
        """The counts, as `relay reconcile` prints them and `/status` shows them."""
        return {
            "buckets_checked": self.buckets_checked,
            "missing": self.missing,
            "resent": self.resent,
            "extra": self.extra,
        }


class Observer:
    """Hears what the relay's core does. Each method does nothing until a subclass says otherwise."""

    def wants_traces(self) -> bool:
        """Whether the next batch should read its events' trace headers (it costs a statement)."""
        return False

    def inserting(self, batch: Batch) -> AbstractContextManager[None]:
        """A context around the ClickHouse insert of `batch`."""
        return contextlib.nullcontext()

    async def acknowledged(self, batch: Batch) -> None:
        """ClickHouse took `batch`; the outbox transaction has not committed yet."""

    def delivered(self, delivery: Delivery) -> None:
        """Events were delivered and removed from the outbox."""

    def dead_lettered(self, events: int) -> None:
        """This many events were set aside in the dead-letter table."""

    def failed(self, kind: str) -> None:
        """A delivery attempt failed with an error of this kind."""

    def woke(self, cause: WakeCause) -> None:
        """A forwarder looked at the outbox, or was told to, for this reason."""

    def refusing(self, error_code: int | None) -> None:
        """ClickHouse refuses every event alike (it changed, not the events): they wait in the outbox."""

    def accepting(self) -> None:
        """ClickHouse takes events again after refusing them all."""

    def listener_reconnected(self) -> None:
        """The LISTEN connection was re-established after being lost."""

    def probed(self, report: Mapping[str, str]) -> None:
        """The dependencies answered a readiness probe so: `{"postgres": "ok", "clickhouse": "timeout"}`."""

    def reconciled(self, result: Reconciled) -> None:
        """A reconciliation ran to its end."""

    def reconcile_failed(self, kind: str) -> None:
        """A reconciliation could not finish: a database failed with an error of this kind."""


class Observers(Observer):
    """Several observers heard as one, in order."""

    def __init__(self, *observers: Observer) -> None:
        self.observers = observers

    def wants_traces(self) -> bool:
        return any(observer.wants_traces() for observer in self.observers)

    @contextlib.contextmanager
    def inserting(self, batch: Batch) -> Iterator[None]:
        with contextlib.ExitStack() as stack:
            for observer in self.observers:
                stack.enter_context(observer.inserting(batch))
            yield

    async def acknowledged(self, batch: Batch) -> None:
        for observer in self.observers:
            await observer.acknowledged(batch)

    def delivered(self, delivery: Delivery) -> None:
        for observer in self.observers:
            observer.delivered(delivery)

    def dead_lettered(self, events: int) -> None:
        for observer in self.observers:
            observer.dead_lettered(events)

    def failed(self, kind: str) -> None:
        for observer in self.observers:
            observer.failed(kind)

    def woke(self, cause: WakeCause) -> None:
        for observer in self.observers:
            observer.woke(cause)

    def refusing(self, error_code: int | None) -> None:
        for observer in self.observers:
            observer.refusing(error_code)

    def accepting(self) -> None:
        for observer in self.observers:
            observer.accepting()

    def listener_reconnected(self) -> None:
        for observer in self.observers:
            observer.listener_reconnected()

    def probed(self, report: Mapping[str, str]) -> None:
        for observer in self.observers:
            observer.probed(report)

    def reconciled(self, result: Reconciled) -> None:
        for observer in self.observers:
            observer.reconciled(result)

    def reconcile_failed(self, kind: str) -> None:
        for observer in self.observers:
            observer.reconcile_failed(kind)
