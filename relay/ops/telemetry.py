"""The ops side's ear on the core: what the forwarders, the listener, the readiness probes and
reconciliation report becomes metrics, `/status` and Sentry traces."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass

from relay.core.observer import Batch, Delivery, Observer, Reconciled, WakeCause
from relay.ops import tracing
from relay.ops.metrics import RelayMetrics
from relay.ops.status import RelayStatus


@dataclass(frozen=True, slots=True)
class Telemetry(Observer):
    """Keeps the relay's metrics and status, and traces sampled batches."""

    metrics: RelayMetrics
    status: RelayStatus

    def wants_traces(self) -> bool:
        return tracing.sampled()

    def inserting(self, batch: Batch) -> AbstractContextManager[None]:
        if batch.traces is None:
            return contextlib.nullcontext()
        return tracing.batch_insert(
            batch.traces, batch_id=batch.batch_id, events=batch.events, size=batch.size
        )

    def delivered(self, delivery: Delivery) -> None:
        metrics = self.metrics
        metrics.events_delivered.inc(delivery.events)
        metrics.batches.inc()
        metrics.batch_size.observe(delivery.events)
        if delivery.size:
            metrics.bytes_delivered.inc(delivery.size)
        if delivery.duration:
            metrics.batch_duration.observe(delivery.duration)
        if delivery.lag is not None:
            metrics.event_lag.observe(max(delivery.lag, 0.0))
        metrics.last_success.set_to_current_time()
        self.status.record_batch(delivery.events)

    def dead_lettered(self, events: int) -> None:
        self.metrics.dead_letters.inc(events)
        self.status.dead_letters_moved += events

    def failed(self, kind: str) -> None:
        self.metrics.delivery_errors.labels(kind=kind).inc()
        self.status.record_error(kind)

    def woke(self, cause: WakeCause) -> None:
        self.metrics.wakeups.labels(cause=cause).inc()

    def refusing(self, error_code: int | None) -> None:
        self.metrics.systemic_refusal.set(1)
        self.status.systemic_refusal = True
        self.status.systemic_refusal_code = error_code

    def accepting(self) -> None:
        self.metrics.systemic_refusal.set(0)
        self.status.systemic_refusal = False
        self.status.systemic_refusal_code = None

    def listener_reconnected(self) -> None:
        self.metrics.listener_reconnects.inc()

    def probed(self, report: Mapping[str, str]) -> None:
        for dependency, result in report.items():
            self.metrics.dependency_up.labels(dependency=dependency).set(1 if result == "ok" else 0)

    def reconciled(self, result: Reconciled) -> None:
        self.metrics.reconcile_missing.inc(result.missing)
        self.metrics.reconcile_resent.inc(result.resent)
        self.metrics.reconcile_extra.set(result.extra)  # the same extras are found again each run
        if result.complete:
            self.metrics.reconcile_last_success.set_to_current_time()
        self.status.reconciled(result.summary(), complete=result.complete)

    def reconcile_failed(self, kind: str) -> None:
        self.status.reconcile_failed()
