"""A wake-up shared by the listener, the poll timer and the forwarders."""

from __future__ import annotations

import asyncio


class Doorbell:
    """Rings every subscriber at once; a ring while nobody waits is kept until they do."""

    def __init__(self) -> None:
        self._subscribers: list[asyncio.Event] = []

    def subscribe(self) -> asyncio.Event:
        """An event that is set whenever the bell rings; the subscriber clears it."""
        event = asyncio.Event()
        event.set()  # a new subscriber looks at the outbox once before waiting
        self._subscribers.append(event)
        return event

    def ring(self) -> None:
        """Wake every subscriber."""
        for event in self._subscribers:
            event.set()
