"""Asking a Celery worker to do something soon, without ever making a request wait on the broker.

For work whose truth is already in PostgreSQL (an e-mail to send, an erasure
to carry out): a periodic sweep does it anyway, so this is only a head start.
One connection attempt bounded by a second; after a failure the process stops
asking for a while, so a broker outage costs one request a short wait.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Final

import structlog
from celery import Task

logger = structlog.get_logger(__name__)

_PAUSE_SECONDS: Final = 30.0
# Redis transport options for that one publish: one connection attempt, bounded by 1 s.
_FAIL_FAST: Final = {
    "max_retries": 0,
    "interval_start": 0,
    "socket_connect_timeout": 1,
    "socket_timeout": 1,
    "retry_on_timeout": False,
}


class _Gate:
    """Remembers, per process, that the broker just failed, to stop asking it for a while."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closed_until = 0.0

    def open(self) -> bool:
        with self._lock:
            return time.monotonic() >= self._closed_until

    def close(self, seconds: float) -> None:
        with self._lock:
            self._closed_until = time.monotonic() + seconds

    def reset(self) -> None:
        with self._lock:
            self._closed_until = 0.0


broker_gate = _Gate()


def send_soon(task: Task[Any, Any], *args: Any) -> bool:
    """Queue `task(*args)` if the broker answers at once; False (and a log line) if not."""
    if not broker_gate.open():
        logger.info("task_left_to_sweep", task=task.name, reason="broker_paused")
        return False
    try:
        # A connection of its own that gives up at once: no publish retries, no reconnection loop.
        with task.app.connection_for_write(transport_options=_FAIL_FAST) as connection:
            # `connection` is passed through to the producer (celery-types does not list it).
            task.apply_async(args=args, connection=connection, retry=False)  # type: ignore[call-arg]
    except Exception as error:
        broker_gate.close(_PAUSE_SECONDS)
        logger.warning(
            "task_left_to_sweep", task=task.name, reason="broker_unavailable", error_kind=type(error).__name__
        )
        return False
    return True
