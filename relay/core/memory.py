"""Give back to the system the memory a burst took, once the burst is over.

Draining a backlog moves batches of megabytes through asyncpg's and aiohttp's
buffers and `bytes` objects. Freed, that memory mostly stays in the C
allocator's heap (glibc keeps freed pages for reuse), so a relay that drained
a large backlog went on holding tens of megabytes it no longer needed.
`malloc_trim(0)` hands free pages back; it costs a millisecond or so, and runs
only when a burst has ended.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from collections.abc import Callable
from dataclasses import dataclass

# Events a forwarder moves before the end of its burst is worth a trim.
BURST_EVENTS = 10_000


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's `malloc_trim`, or `None` where the C library has none (musl, macOS)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim  # type: ignore[no-any-return]


_TRIM = _malloc_trim()


def give_back() -> None:
    """Collect garbage, then return the allocator's free pages to the system."""
    gc.collect()
    if _TRIM is not None:
        _TRIM(0)


@dataclass(slots=True)
class Burst:
    """Counts the events one forwarder moved since it last gave memory back."""

    threshold: int = BURST_EVENTS
    moved: int = 0

    def delivered(self, events: int) -> None:
        """A batch went through."""
        self.moved += max(events, 0)

    def ended(self) -> bool:
        """The outbox ran short after a burst: time to give memory back (counting starts again)."""
        if self.moved < self.threshold:
            return False
        self.moved = 0
        return True
