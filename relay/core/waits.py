"""Waiting that a stop request can cut short."""

from __future__ import annotations

import asyncio
import contextlib
import time


async def sleep_unless(stop: asyncio.Event, delay: float) -> None:
    """Sleep `delay` seconds, or less if `stop` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=delay)


async def first_of(*events: asyncio.Event, seconds: float | None) -> None:
    """Wait until one of the events is set, or `seconds` pass."""
    if any(event.is_set() for event in events):
        return
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


class Clock:
    """The time a loop sees: a monotonic clock and the waits above. Unit tests pass a fake one."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""
        return time.monotonic()

    async def sleep_unless(self, stop: asyncio.Event, delay: float) -> None:
        """`sleep_unless`, on this clock."""
        await sleep_unless(stop, delay)

    async def first_of(self, *events: asyncio.Event, seconds: float | None) -> None:
        """`first_of`, on this clock."""
        await first_of(*events, seconds=seconds)
