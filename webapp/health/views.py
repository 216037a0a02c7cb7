"""`GET /health/`: can this site serve, and how far behind is the relay?

Status codes are for load balancers and orchestrators, which act on them:

- 503 "down": PostgreSQL does not answer. Nothing works without it (not even
  a sign-up, whose event is written there), so take this instance out.
- 200 "degraded": Redis or ClickHouse does not answer, or the relay is behind.
  The site still signs people up (e-mail waits in PostgreSQL for beat's
  sweep, events wait in the outbox), and pulling web instances would not help
  the relay catch up.
- 200 "ok": everything answers and the relay is within its thresholds.

Anyone gets the status word. Internal callers (`INTERNAL_NETWORKS`) and staff
also get each dependency's state in one word and the outbox's numbers; never
an error's text, an address or a credential.

The probes run at most once per `HEALTH_CACHE_SECONDS` per process, however
many callers ask: a flood of requests cannot turn into a flood of queries.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from webapp.core.clients import is_internal
from webapp.health.checks import Probes, status_of


@dataclass(frozen=True, slots=True)
class HealthReport:
    """The outcome of one round of probes."""

    status: str
    code: int
    detail: dict[str, Any]
    checked_at: datetime
    taken_at: float = field(default_factory=time.monotonic)


class ReportCache:
    """The last report of this process; one round of probes at a time refreshes it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._report: HealthReport | None = None

    def get(self, *, max_age: float, probe: Callable[[], HealthReport]) -> HealthReport:
        """The cached report if younger than `max_age` seconds, else a fresh one."""
        # Callers arriving while a round runs wait for it and share its result.
        with self._lock:
            report = self._report
            if report is None or time.monotonic() - report.taken_at >= max_age:
                report = self._report = probe()
            return report

    def clear(self) -> None:
        """Forget the last report."""
        with self._lock:
            self._report = None


reports = ReportCache()


def probe() -> HealthReport:
    """Probe every dependency concurrently; the report of their states and the relay's backlog."""
    probes = Probes.from_settings()
    results = async_to_sync(probes.run)()
    dependencies = {
        name: {"status": status_of(results[name])} for name in ("postgres", "redis", "clickhouse")
    }
    relay: dict[str, Any] = {"status": status_of(results["relay"])}
    if (backlog := probes.relay.backlog) is not None:
        relay |= {
            "pending_events": backlog.pending_events,
            "oldest_pending_age_seconds": round(backlog.oldest_pending_age_seconds, 3),
            "dead_letters": backlog.dead_letters,
        }
    if dependencies["postgres"]["status"] != "ok":
        status, code = "down", 503
    elif relay["status"] != "ok" or any(entry["status"] != "ok" for entry in dependencies.values()):
        status, code = "degraded", 200
    else:
        status, code = "ok", 200
    return HealthReport(
        status=status,
        code=code,
        detail={"dependencies": dependencies, "relay": relay},
        checked_at=datetime.now(UTC),
    )


@never_cache
@require_safe
def health(request: HttpRequest) -> JsonResponse:
    """The site's state; with each dependency's and the relay's for internal callers and staff."""
    report = reports.get(max_age=settings.HEALTH_CACHE_SECONDS, probe=probe)
    body: dict[str, Any] = {"status": report.status}
    if is_internal(request) or request.user.is_staff:
        body |= report.detail | {"checked_at": report.checked_at.isoformat()}
    return JsonResponse(body, status=report.code)
