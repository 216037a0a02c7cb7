"""The web site's Prometheus metrics, and `GET /metrics` for internal callers.

Under gunicorn each worker is a process: `manage.py serve` points
`PROMETHEUS_MULTIPROC_DIR` at a fresh directory, and the page adds up every
worker's figures from there. Under runserver the process's own registry is read.
"""

from __future__ import annotations

import os

from django.http import HttpRequest, HttpResponse, HttpResponseNotFound
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    generate_latest,
    multiprocess,
)

from webapp.core.clients import is_internal

THROTTLED = Counter(
    "web_throttled_requests_total",
    "Requests refused by the abuse throttles (429), by what was attempted.",
    ["action"],
)
for _action in ("sign_in", "sign_up", "password_reset", "email_verification", "activity"):
    THROTTLED.labels(action=_action)


@never_cache
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format; internal callers only (anyone else gets a 404)."""
    if not is_internal(request):
        return HttpResponseNotFound()
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # untyped in prometheus-client
    else:
        registry = REGISTRY
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
