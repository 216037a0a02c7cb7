"""Sentry, switched on only when `SENTRY_CONFIG_DSN` (or the SDK's own `SENTRY_DSN`) is set.

What reaches Sentry is the error, its stack (code and line numbers) and the
request's method, path and harmless headers; never a frame's local variables
(they hold passwords, payloads and batches of events), a request body, cookies
or who the user is. `data_collection` asks the SDK not to collect them, and
`scrub` removes them again from every event before it leaves, so a change of
SDK defaults cannot bring them back.

Secrets that travel in URLs (a password-reset link's token) are cut out of
error events and transactions alike (`shared.redaction`): a transaction
records the request's URL too, and with tracing on, every request makes one.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

from shared.redaction import redact_data
from shared.settings import CommonSettings

if TYPE_CHECKING:
    from sentry_sdk._types import DataCollectionUserOptions, Event, Hint
    from sentry_sdk.integrations import Integration

# Request headers worth having on an error report; all others (cookies,
# authorization, forwarded addresses, trace baggage, ...) are left out.
_HEADERS_KEPT = ["accept", "content-length", "content-type", "host", "user-agent"]

DATA_COLLECTION: DataCollectionUserOptions = {
    "user_info": False,
    "cookies": {"mode": "off"},
    "http_headers": {"request": {"mode": "allowlist", "terms": _HEADERS_KEPT}},
    "http_bodies": [],
    "url_query_params": {"mode": "off"},
    "graphql": {"document": False, "variables": False},
    "gen_ai": {"inputs": False, "outputs": False},
    "database_query_data": False,
    "queues": False,
    "stack_frame_variables": False,
}


def scrub(event: Event, _hint: Hint) -> Event:
    """Drop frame variables, request bodies and cookies from an event, however collected; redact its URLs."""
    request = event.get("request")
    if isinstance(request, dict):
        for key in ("data", "cookies", "env"):
            request.pop(key, None)
    for exception in (event.get("exception") or {}).get("values") or []:
        _drop_frame_vars(exception.get("stacktrace"))
    for thread in (event.get("threads") or {}).get("values") or []:
        _drop_frame_vars(thread.get("stacktrace"))
    return redact_data(event)


def _drop_frame_vars(stacktrace: dict[str, Any] | None) -> None:
    for frame in (stacktrace or {}).get("frames") or []:
        frame.pop("vars", None)


def init_sentry(
    settings: CommonSettings,
    *,
    component: str,
    integrations: Sequence[Integration] = (),
    **options: Any,
) -> bool:
    """Initialise the Sentry SDK for one component; returns whether it is on.

    Without a DSN the SDK is not even imported: a process that reports nowhere
    does not carry it (the relay's memory, docs/BENCHMARKS.md).
    """
    if not settings.sentry_config_dsn:
        return False
    import sentry_sdk

    sentry_sdk.init(
        dsn=settings.sentry_config_dsn,
        environment=settings.sentry_config_environment or settings.environment,
        release=settings.sentry_release or f"die-hard@{version('die-hard')}",
        traces_sample_rate=settings.sentry_traces_sample_rate,
        data_collection=DATA_COLLECTION,
        include_local_variables=False,
        max_request_body_size="never",
        before_send=scrub,
        # Transactions record the request's URL and span data too.
        before_send_transaction=scrub,
        integrations=list(integrations),
        server_name=component,
        **options,
    )
    sentry_sdk.set_tag("component", component)
    return True
