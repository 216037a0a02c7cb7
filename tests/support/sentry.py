"""Sentry with an in-memory transport: envelopes are kept in a list, nothing leaves the process."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.integrations import Integration
from sentry_sdk.integrations.django import DjangoIntegration
from sentry_sdk.transport import Transport

from shared.sentry import init_sentry
from shared.settings import CommonSettings


class CapturingTransport(Transport):
    """Keeps every envelope the SDK would have sent."""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    def transactions(self) -> list[dict[str, Any]]:
        """The transaction events captured so far."""
        return [
            item.payload.json
            for envelope in self.envelopes
            for item in envelope.items
            if item.type == "transaction" and item.payload.json is not None
        ]


@contextlib.contextmanager
def capturing_sentry(*integrations: Integration) -> Iterator[CapturingTransport]:
    """Sentry on, tracing every transaction, into memory; switched off again afterwards."""
    transport = CapturingTransport()
    sentry_sdk.init(
        dsn="https://public@sentry.invalid/1",
        transport=transport,
        traces_sample_rate=1.0,
        default_integrations=False,
        integrations=list(integrations),
    )
    try:
        yield transport
    finally:
        sentry_sdk.flush()
        sentry_sdk.init(dsn=None)


@pytest.fixture
def sentry_capture() -> Iterator[CapturingTransport]:
    """`capturing_sentry` as a fixture, with no integrations."""
    with capturing_sentry() as transport:
        yield transport


@pytest.fixture
def sentry_events() -> Iterator[CapturingTransport]:
    """Sentry set up by the project's own `init_sentry` (as the site runs it), sending into memory.

    Every transaction is traced, so whatever any of them carries is seen.
    """
    transport = CapturingTransport()
    settings = CommonSettings(
        sentry_config_dsn="https://public@sentry.invalid/1", sentry_traces_sample_rate=1.0
    )
    init_sentry(settings, component="web", integrations=[DjangoIntegration()], transport=transport)
    try:
        yield transport
    finally:
        sentry_sdk.flush()
        sentry_sdk.init(dsn=None)


def everything_sent(transport: CapturingTransport) -> str:
    """Every byte the SDK would have sent, as text."""
    return "\n".join(
        json.dumps(item.payload.json) if item.payload.json is not None else item.payload.get_bytes().decode()
        for envelope in transport.envelopes
        for item in envelope.items
    )


def error_events(transport: CapturingTransport) -> list[dict[str, Any]]:
    """The error events (not transactions) the SDK captured."""
    return [
        item.payload.json
        for envelope in transport.envelopes
        for item in envelope.items
        if item.type == "event" and item.payload.json is not None
    ]
