"""A real Sentry endpoint on 127.0.0.1 that keeps what the SDK sends it.

The SDK is initialised with a DSN pointing at `SentrySink` and keeps its own
HTTP transport: each envelope is serialised, compressed, POSTed from the SDK's
background worker and parsed back here, exactly as sentry.io would receive it.
What a test reads is therefore what would have left the process, not what the
SDK meant to send. The readers flush the SDK first, so nothing still queued in
its worker is missed; a request the sink could not understand fails the read.
"""

from __future__ import annotations

import contextlib
import gzip
import importlib
import re
import threading
from collections.abc import Iterator
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

import pytest
import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.integrations import Integration
from sentry_sdk.integrations.django import DjangoIntegration

from shared.sentry import init_sentry
from shared.settings import CommonSettings

PROJECT_ID = 1
# Long enough for a slow CI machine: an envelope still queued when the reading
# starts would otherwise be missing, and "the secret is not in what was sent"
# would pass for the wrong reason.
FLUSH_TIMEOUT = 10.0
# The sink is on this machine: a proxy named in the environment must not carry
# the test's envelopes anywhere else.
NO_PROXY = ""

_ENVELOPE_PATH = re.compile(rf"/api/{PROJECT_ID}/envelope/")


def _decompressed(body: bytes, encoding: str) -> bytes:
    """The body as sent before the SDK compressed it (gzip by default, brotli when installed)."""
    if encoding in ("", "identity"):
        return body
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "br":
        # Only chosen by the SDK when the brotli module is there to compress with.
        decompressed: bytes = importlib.import_module("brotli").decompress(body)
        return decompressed
    raise ValueError(f"unknown Content-Encoding {encoding!r}")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, sink: SentrySink) -> None:
        super().__init__(("127.0.0.1", 0), _EnvelopeHandler)
        self.sink = sink


def _received(path: str, headers: Message, body: bytes) -> tuple[bytes, Envelope]:
    """The decompressed body of a request as sentry.io would accept it, and its envelope."""
    if not _ENVELOPE_PATH.fullmatch(path):
        raise ValueError(f"not an envelope endpoint: {path}")
    if "sentry_key=public" not in headers.get("X-Sentry-Auth", ""):
        raise ValueError("no sentry_key in X-Sentry-Auth")
    raw = _decompressed(body, headers.get("Content-Encoding", ""))
    return raw, Envelope.deserialize(raw)


class _EnvelopeHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        assert isinstance(self.server, _Server)
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            raw, envelope = _received(self.path, self.headers, body)
        except Exception as error:
            # Kept, and raised by the next read: a test must not pass on what never arrived.
            self.server.sink.refuse(f"{type(error).__name__}: {error}")
            self.send_response(400)
        else:
            self.server.sink.receive(raw, envelope)
            self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the SDK's requests are not the test's output."""


class SentrySink:
    """A listening Sentry ingestion endpoint; keeps every envelope POSTed to it, in arrival order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bodies: list[bytes] = []
        self._envelopes: list[Envelope] = []
        self._refused: list[str] = []
        self._server = _Server(self)
        self._thread = threading.Thread(target=self._server.serve_forever, name="sentry-sink", daemon=True)

    @property
    def dsn(self) -> str:
        """The DSN that sends the SDK here."""
        return f"http://public@127.0.0.1:{self._server.server_port}/{PROJECT_ID}"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def receive(self, body: bytes, envelope: Envelope) -> None:
        with self._lock:
            self._bodies.append(body)
            self._envelopes.append(envelope)

    def refuse(self, reason: str) -> None:
        with self._lock:
            self._refused.append(reason)

    def _arrived[T](self, received: list[T]) -> list[T]:
        sentry_sdk.flush(timeout=FLUSH_TIMEOUT)
        with self._lock:
            assert not self._refused, f"the Sentry sink refused requests: {self._refused}"
            return list(received)

    @property
    def envelopes(self) -> list[Envelope]:
        """Every envelope that arrived, once the SDK has sent what it still held."""
        return self._arrived(self._envelopes)

    @property
    def bodies(self) -> list[bytes]:
        """Every request body that arrived, decompressed: the bytes the SDK sent."""
        return self._arrived(self._bodies)

    def items(self, item_type: str) -> list[dict[str, Any]]:
        """The JSON payloads of the items of one type (`event`, `transaction`) that arrived."""
        return [
            item.payload.json
            for envelope in self.envelopes
            for item in envelope.items
            if item.type == item_type and item.payload.json is not None
        ]

    def transactions(self) -> list[dict[str, Any]]:
        """The transaction events that arrived."""
        return self.items("transaction")


def _switch_off() -> None:
    """Send what is still queued, stop the SDK's worker and leave Sentry off."""
    sentry_sdk.get_client().close(timeout=FLUSH_TIMEOUT)
    sentry_sdk.init(dsn=None)


@contextlib.contextmanager
def capturing_sentry(*integrations: Integration) -> Iterator[SentrySink]:
    """Sentry on, tracing every transaction, sending to a local sink; switched off again afterwards."""
    with SentrySink() as sink:
        sentry_sdk.init(
            dsn=sink.dsn,
            http_proxy=NO_PROXY,
            traces_sample_rate=1.0,
            default_integrations=False,
            integrations=list(integrations),
        )
        try:
            yield sink
        finally:
            _switch_off()


@pytest.fixture
def sentry_capture() -> Iterator[SentrySink]:
    """`capturing_sentry` as a fixture, with no integrations."""
    with capturing_sentry() as sink:
        yield sink


@pytest.fixture
def sentry_events() -> Iterator[SentrySink]:
    """Sentry set up by the project's own `init_sentry` (as the site runs it), sending to a local sink.

    Every transaction is traced, so whatever any of them carries is seen.
    """
    with SentrySink() as sink:
        settings = CommonSettings(sentry_config_dsn=sink.dsn, sentry_traces_sample_rate=1.0)
        init_sentry(settings, component="web", integrations=[DjangoIntegration()], http_proxy=NO_PROXY)
        try:
            yield sink
        finally:
            _switch_off()


def everything_sent(sink: SentrySink) -> str:
    """Every byte the SDK sent to the sink, decompressed, as text."""
    return "\n".join(body.decode(errors="replace") for body in sink.bodies)


def error_events(sink: SentrySink) -> list[dict[str, Any]]:
    """The error events (not transactions) that arrived."""
    return sink.items("event")
