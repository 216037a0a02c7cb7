"""`GET /health/`: can this site serve, and how far behind is the relay?

Status codes are for load balancers and orchestrators, which act on them:

- 503 "down": PostgreSQL does not answer. Nothing works without it (not even
  a sign-up, whose event is written there), so take this instance out.
- 200 "degraded": Redis or ClickHouse does not answer, or the relay is behind.
  The site still signs people up (e-mail waits in PostgreSQL for beat's
  sweep, events wait in the outbox), and pulling web instances would not help the relay catch up.
- 200 "ok": everything answers and the relay is within its thresholds.

The body names each dependency's state in one word and gives the outbox's
numbers; it never carries an error's text, an address or a credential.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from webapp.health.checks import Probes, status_of


@never_cache
@require_safe
async def health(request: HttpRequest) -> JsonResponse:
    """Probe every dependency concurrently and report their states and the relay's backlog."""
    probes = Probes.from_settings()
    results = await probes.run()
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
    return JsonResponse({"status": status, "dependencies": dependencies, "relay": relay}, status=code)
