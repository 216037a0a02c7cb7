"""Prometheus metrics of the relay, in a registry of its own.

Names are part of the operations contract (dashboards and alerts use them).
Counters move per batch, never per event, so they cost nothing on the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import version

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    disable_created_metrics,
)

# `*_created` series double the page and no dashboard or alert reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]  # prometheus-client leaves it unannotated

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_LAG_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


@dataclass
class RelayMetrics:
    """Every metric the relay exports."""

    registry: CollectorRegistry = field(default_factory=lambda: CollectorRegistry(auto_describe=True))

    def __post_init__(self) -> None:
        r = self.registry
        # process_resident_memory_bytes, process_cpu_seconds_total, open file descriptors...
        ProcessCollector(registry=r)
        # relay_build_info{version="…"} 1: which version each relay runs (during a rolling upgrade, several).
        Info("relay_build", "The relay's version.", registry=r).info({"version": version("die-hard")})
        self.pending_events = Gauge(
            "relay_outbox_pending_events", "Events waiting in the outbox.", registry=r
        )
        self.oldest_pending_age = Gauge(
            "relay_outbox_oldest_pending_age_seconds",
            "Age of the oldest event waiting in the outbox: the relay's lag.",
            registry=r,
        )
        self.events_delivered = Counter(
            "relay_events_delivered",
            "Events acknowledged by ClickHouse and removed from the outbox.",
            registry=r,
        )
        self.bytes_delivered = Counter(
            "relay_bytes_delivered", "Bytes of TSV acknowledged by ClickHouse.", registry=r
        )
        self.batches = Counter("relay_batches", "Batches delivered.", registry=r)
        self.batch_duration = Histogram(
            "relay_batch_duration_seconds",
            "Time from claiming a batch to committing its removal.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "relay_batch_size_events",
            "Events per delivered batch.",
            buckets=(1, 10, 100, 1000, 5000, 10000, 20000, 50000, 100000),
            registry=r,
        )
        self.event_lag = Histogram(
            "relay_event_lag_seconds",
            "Time from an event happening to ClickHouse acknowledging it (oldest event of each batch).",
            buckets=_LAG_BUCKETS,
            registry=r,
        )
        self.delivery_errors = Counter(
            "relay_delivery_errors",
            "Failed delivery attempts, by kind (unavailable, timeout, server, rejected, postgres).",
            ["kind"],
            registry=r,
        )
        self.dead_letter_events = Gauge(
            "relay_dead_letter_events", "Events currently in the dead-letter table.", registry=r
        )
        self.dead_letters = Counter(
            "relay_dead_letters", "Events this process moved to the dead-letter table.", registry=r
        )
        self.last_success = Gauge(
            "relay_last_success_timestamp_seconds",
            "Unix time of the last batch ClickHouse acknowledged.",
            registry=r,
        )
        self.listener_reconnects = Counter(
            "relay_listener_reconnects", "Times the LISTEN connection was re-established.", registry=r
        )
        self.wakeups = Counter(
            "relay_wakeups", "Wake-ups, by cause (notify, poll, recheck).", ["cause"], registry=r
        )
        self.archive_events = Gauge(
            "relay_archive_events",
            "Delivered events kept in the archive (PostgreSQL's estimate).",
            registry=r,
        )
        self.reconcile_missing = Counter(
            "relay_reconcile_missing_events",
            "Events reconciliation found in the archive but not in ClickHouse.",
            registry=r,
        )
        self.reconcile_resent = Counter(
            "relay_reconcile_resent_events",
            "Missing events reconciliation sent to ClickHouse again.",
            registry=r,
        )
        self.reconcile_extra = Gauge(
            "relay_reconcile_extra_events",
            "Events this relay's last reconciliation found in ClickHouse but not in the archive.",
            registry=r,
        )
        self.reconcile_last_success = Gauge(
            "relay_reconcile_last_success_timestamp_seconds",
            "Unix time of the last reconciliation that left ClickHouse complete.",
            registry=r,
        )
        self.systemic_refusal = Gauge(
            "relay_systemic_refusal",
            "1 while ClickHouse refuses every event the same way (events wait in the outbox).",
            registry=r,
        )
        self.dependency_up = Gauge(
            "relay_dependency_up",
            "1 when the dependency (postgres, clickhouse) answered the last readiness probe, else 0.",
            ["dependency"],
            registry=r,
        )
        for kind in ("unavailable", "timeout", "server", "rejected", "postgres"):
            self.delivery_errors.labels(kind=kind)
        for cause in ("notify", "poll", "recheck"):
            self.wakeups.labels(cause=cause)
