"""What the relay's core reports reaches every observer listening to it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import pytest

from relay.core.observer import Batch, Delivery, Observer, Observers, Reconciled, WakeCause
from relay.ops.metrics import RelayMetrics
from relay.ops.status import RelayStatus
from relay.ops.telemetry import Telemetry
from tests.support.faulty_relay import FaultAfterAck


@dataclass
class Recorder(Observer):
    """Writes down every report it hears."""

    name: str
    traces: bool = False
    heard: list[str] = field(default_factory=list)

    def wants_traces(self) -> bool:
        return self.traces

    @contextlib.contextmanager
    def inserting(self, batch: Batch) -> Iterator[None]:
        self.heard.append(f"enter {batch.batch_id}")
        try:
            yield
        finally:
            self.heard.append(f"exit {batch.batch_id}")

    async def acknowledged(self, batch: Batch) -> None:
        self.heard.append(f"acknowledged {batch.events}")

    def delivered(self, delivery: Delivery) -> None:
        self.heard.append(f"delivered {delivery.events}")

    def dead_lettered(self, events: int) -> None:
        self.heard.append(f"dead_lettered {events}")

    def failed(self, kind: str) -> None:
        self.heard.append(f"failed {kind}")

    def woke(self, cause: WakeCause) -> None:
        self.heard.append(f"woke {cause}")

    def listener_reconnected(self) -> None:
        self.heard.append("reconnected")

    def probed(self, report: Mapping[str, str]) -> None:
        self.heard.append(f"probed {report['clickhouse']}")

    def reconciled(self, result: Reconciled) -> None:
        self.heard.append(f"reconciled {result.missing}")

    def reconcile_failed(self, kind: str) -> None:
        self.heard.append(f"reconcile_failed {kind}")


BATCH = Batch(batch_id="b1", events=3, size=120)
FOUND = Reconciled(buckets_checked=4, missing=2, resent=2, extra=1, complete=True)


def test_every_observer_hears_every_report_in_order() -> None:
    first, second = Recorder("first"), Recorder("second")
    observers = Observers(first, second)

    with observers.inserting(BATCH):
        pass
    asyncio.run(observers.acknowledged(BATCH))
    observers.delivered(Delivery(events=3, size=120))
    observers.dead_lettered(2)
    observers.failed("timeout")
    observers.woke("poll")
    observers.listener_reconnected()
    observers.probed({"postgres": "ok", "clickhouse": "timeout"})
    observers.reconciled(FOUND)
    observers.reconcile_failed("postgres")

    expected = [
        "enter b1",
        "exit b1",
        "acknowledged 3",
        "delivered 3",
        "dead_lettered 2",
        "failed timeout",
        "woke poll",
        "reconnected",
        "probed timeout",
        "reconciled 2",
        "reconcile_failed postgres",
    ]
    assert first.heard == expected
    assert second.heard == expected


def test_a_batch_is_traced_when_any_observer_wants_it() -> None:
    assert not Observers(Recorder("a"), Recorder("b")).wants_traces()
    assert Observers(Recorder("a"), Recorder("b", traces=True)).wants_traces()


def test_a_failed_insert_leaves_every_observers_context() -> None:
    first, second = Recorder("first"), Recorder("second")

    with pytest.raises(RuntimeError), Observers(first, second).inserting(BATCH):
        raise RuntimeError("ClickHouse went away")

    assert first.heard == second.heard == ["enter b1", "exit b1"]


def test_a_plain_observer_ignores_every_report() -> None:
    observer = Observer()

    with observer.inserting(BATCH):
        asyncio.run(observer.acknowledged(BATCH))
    observer.delivered(Delivery(events=1, size=10))

    assert not observer.wants_traces()


def test_telemetry_turns_readiness_and_reconciliation_into_gauges_and_status() -> None:
    metrics, status = RelayMetrics(), RelayStatus()
    telemetry = Telemetry(metrics=metrics, status=status)

    telemetry.probed({"postgres": "ok", "clickhouse": "unavailable"})
    telemetry.reconciled(FOUND)
    telemetry.reconciled(FOUND)
    telemetry.reconcile_failed("unavailable")

    assert metrics.dependency_up.labels(dependency="postgres")._value.get() == 1
    assert metrics.dependency_up.labels(dependency="clickhouse")._value.get() == 0
    assert metrics.reconcile_missing._value.get() == 4  # missing events add up, run after run
    assert metrics.reconcile_extra._value.get() == 1  # the same extras, found again: not added up
    assert metrics.reconcile_last_success._value.get() > 0
    assert status.reconcile_last == FOUND.summary()
    assert status.reconcile_failed_at is not None


@pytest.mark.parametrize(
    ("spec", "fault"),
    [
        ("kill_after_ack", FaultAfterAck(kill=True)),
        ("pause_after_ack:1.5", FaultAfterAck(pause=1.5)),
    ],
)
def test_the_test_only_fault_is_read_from_its_spec(spec: str, fault: FaultAfterAck) -> None:
    assert FaultAfterAck.parse(spec) == fault


@pytest.mark.parametrize("spec", ["", "kill_after_ack:3", "pause_after_ack", "crash"])
def test_an_unknown_fault_spec_is_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="DIE_HARD_FAULT"):
        FaultAfterAck.parse(spec)
