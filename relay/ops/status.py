"""What the relay has done lately, for `/status` and `/livez`."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from shared.outbox import Backlog

_RATE_WINDOW_SECONDS = 60.0


@dataclass
class RelayStatus:
    """Counters and timestamps of this process; cheap to update once per batch."""

    started_at: float = field(default_factory=time.time)
    events_delivered: int = 0
    batches_delivered: int = 0
    dead_letters_moved: int = 0
    last_success_at: float | None = None
    last_error_kind: str | None = None
    last_error_at: float | None = None
    last_tick_at: float = field(default_factory=time.monotonic)
    outbox: Backlog | None = None
    outbox_checked_at: float | None = None
    archive_events: int | None = None
    # ClickHouse refuses every event the same way (a schema or setting change).
    systemic_refusal: bool = False
    systemic_refusal_code: int | None = None
    reconcile_last: dict[str, int] | None = None
    reconcile_last_run_at: float | None = None
    reconcile_last_success_at: float | None = None
    reconcile_failed_at: float | None = None
    _deliveries: deque[tuple[float, int]] = field(default_factory=deque)

    def record_batch(self, events: int) -> None:
        """A batch of `events` was acknowledged and removed from the outbox."""
        now = time.time()
        self.events_delivered += events
        self.batches_delivered += 1
        self.last_success_at = now
        self._deliveries.append((now, events))
        self._forget_before(now - _RATE_WINDOW_SECONDS)

    def record_error(self, kind: str) -> None:
        """A delivery attempt failed with an error of this kind."""
        self.last_error_kind = kind
        self.last_error_at = time.time()

    def reconciled(self, summary: dict[str, int], *, complete: bool) -> None:
        """A reconciliation ran to its end; `complete`: ClickHouse holds every archived event."""
        self.reconcile_last = summary
        self.reconcile_last_run_at = time.time()
        if complete:
            self.reconcile_last_success_at = self.reconcile_last_run_at

    def reconcile_failed(self) -> None:
        """A reconciliation could not finish (a database did not answer)."""
        self.reconcile_failed_at = time.time()

    def tick(self) -> None:
        """The main loop is alive."""
        self.last_tick_at = time.monotonic()

    def rate(self) -> float:
        """Events per second over the last minute."""
        now = time.time()
        self._forget_before(now - _RATE_WINDOW_SECONDS)
        return sum(events for _, events in self._deliveries) / _RATE_WINDOW_SECONDS

    def _forget_before(self, horizon: float) -> None:
        while self._deliveries and self._deliveries[0][0] < horizon:
            self._deliveries.popleft()
