"""A wake-up the listener rings and every forwarder hears."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass(slots=True)
class Doorbell:
    """Rings every subscriber at once; a ring while nobody waits is kept until they do."""

    _subscribers: list[asyncio.Event] = field(default_factory=list, init=False)

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
