"""Sentry, switched on only when `SENTRY_CONFIG_DSN` is set."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sentry_sdk
from sentry_sdk.integrations import Integration

from shared.settings import CommonSettings


def init_sentry(
    settings: CommonSettings,
    *,
    component: str,
    integrations: Sequence[Integration] = (),
    **options: Any,
) -> bool:
    """Initialise the Sentry SDK for one component; returns whether it is on."""
    if not settings.sentry_config_dsn:
        return False
    sentry_sdk.init(
        dsn=settings.sentry_config_dsn,
        environment=settings.sentry_config_environment or settings.environment,
        traces_sample_rate=settings.sentry_traces_sample_rate,
        send_default_pii=False,
        integrations=list(integrations),
        server_name=component,
        **options,
    )
    sentry_sdk.set_tag("component", component)
    return True
