"""What the relay's core reports as it works, and the one object it reports to.

The delivery loop and the listener know nothing of metrics, `/status` or
traces: they tell an `Observer` what happened. The ops side (`relay.ops.telemetry`)
is one observer; `Observers` lets more listen at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Literal

from relay.core.outbox import TraceContext

type WakeCause = Literal["notify", "poll", "recheck"]


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
