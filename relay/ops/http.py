"""The relay's own HTTP endpoint: liveness, readiness, Prometheus metrics, status for people.

Served by aiohttp inside the relay's event loop. `/livez` checks only that the
loop ticks (a database outage must not get healthy relays restarted);
`/readyz` checks PostgreSQL and ClickHouse, each within its own timeout
(see `relay.core.readiness`), at most once per `READYZ_CACHE_SECONDS`
whoever asks: a caller that polls it in a loop (anything on the network can)
costs the forwarders' pool one probe per window, not one per request.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from relay.core.listener import Listener
from relay.ops.metrics import RelayMetrics
from relay.ops.status import RelayStatus

# How long one readiness answer serves every `/readyz` caller.
READYZ_CACHE_SECONDS = 1.5


class Probes(Protocol):
    """What answers readiness: `relay.core.readiness.Readiness`, or a test's fake."""

    async def check(self) -> dict[str, str]:
        """One round of probes."""
        ...


class RecentReadiness:
    """The last readiness report while it is younger than `max_age`; concurrent callers share one probe."""

    def __init__(self, readiness: Probes, *, max_age: float = READYZ_CACHE_SECONDS) -> None:
        self._readiness = readiness
        self._max_age = max_age
        self._lock = asyncio.Lock()
        self._report: dict[str, str] | None = None
        self._at = 0.0

    async def report(self) -> dict[str, str]:
        """A copy of the current report, probing again only when the last one is too old."""
        async with self._lock:
            if self._report is None or time.monotonic() - self._at > self._max_age:
                self._report = await self._readiness.check()
                self._at = time.monotonic()
            return dict(self._report)


def _iso(timestamp: float | None) -> str | None:
    return datetime.fromtimestamp(timestamp, UTC).isoformat() if timestamp is not None else None


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpEndpoint:
    """Builds the aiohttp application and serves it until the relay stops."""

    host: str
    port: int
    readiness: RecentReadiness
    listener: Listener
    metrics: RelayMetrics
    status: RelayStatus
    liveness_timeout: float

    def application(self) -> web.Application:
        """`/livez`, `/readyz`, `/metrics` and `/status`."""
        app = web.Application()
        app.router.add_get("/livez", self.livez)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics_page)
        app.router.add_get("/status", self.status_page)
        return app

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set."""
        runner = web.AppRunner(self.application(), access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
            await stop.wait()
        finally:
            await runner.cleanup()

    async def livez(self, _request: web.Request) -> web.Response:
        """200 while the event loop ticks."""
        silent_for = time.monotonic() - self.status.last_tick_at
        if silent_for > self.liveness_timeout:
            return web.json_response({"status": "stalled", "silent_for_s": round(silent_for, 1)}, status=503)
        return web.json_response({"status": "ok"})

    async def readyz(self, _request: web.Request) -> web.Response:
        """200 when PostgreSQL and ClickHouse both answer in time, 503 naming the ones that do not."""
        report = await self.readiness.report()
        if self.status.systemic_refusal:
            # ClickHouse answers but refuses every event: not ready, and say why.
            report["clickhouse_accepts_events"] = "refusing"
        ready = all(result == "ok" for result in report.values())
        return web.json_response(
            {"status": "ready" if ready else "unavailable", "checks": report}, status=200 if ready else 503
        )

    async def metrics_page(self, _request: web.Request) -> web.Response:
        """Prometheus text exposition."""
        return web.Response(
            body=generate_latest(self.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def status_page(self, _request: web.Request) -> web.Response:
        """A JSON summary for people."""
        status = self.status
        backlog = status.outbox
        age = round(backlog.oldest_pending_age_seconds, 3) if backlog else None
        return web.json_response(
            {
                "pending_events": backlog.pending_events if backlog else None,
                "oldest_pending_age_seconds": age,
                "dead_letters": backlog.dead_letters if backlog else None,
                "outbox_checked_at": _iso(status.outbox_checked_at),
                "events_delivered": status.events_delivered,
                "batches_delivered": status.batches_delivered,
                "dead_lettered_by_this_process": status.dead_letters_moved,
                "current_rate_events_per_s": round(status.rate(), 2),
                "last_success_at": _iso(status.last_success_at),
                "last_error": (
                    {"kind": status.last_error_kind, "at": _iso(status.last_error_at)}
                    if status.last_error_kind
                    else None
                ),
                "archive_events": status.archive_events,
                "systemic_refusal": (
                    {"error_code": status.systemic_refusal_code} if status.systemic_refusal else None
                ),
                "reconcile": {
                    "last_run_at": _iso(status.reconcile_last_run_at),
                    "last_success_at": _iso(status.reconcile_last_success_at),
                    "last_failure_at": _iso(status.reconcile_failed_at),
                    "last_result": status.reconcile_last,
                },
                "listener_connected": self.listener.connected,
                "started_at": _iso(status.started_at),
            }
        )
