"""Sentry with an in-memory transport: envelopes are kept in a list, nothing leaves the process."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.integrations import Integration
from sentry_sdk.transport import Transport


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
