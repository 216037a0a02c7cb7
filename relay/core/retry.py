"""Pure retry policy: how long to wait before the next attempt."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final

_GROWTH: Final = 2.0  # each bound doubles the one before


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with full jitter, capped.

    Full jitter (a uniform draw between zero and the exponential bound) spreads
    the retries of several relays that failed at the same moment, so they do not
    hit a recovering ClickHouse in lockstep.
    """

    initial: float
    maximum: float

    def bound(self, attempt: int) -> float:
        """Upper bound of the delay before retry number `attempt` (1-based)."""
        if attempt < 1:
            return 0.0
        return min(self.maximum, self.initial * _GROWTH ** (attempt - 1))

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """A jittered delay in [initial/2, bound(attempt)] before retry number `attempt`."""
        bound = self.bound(attempt)
        if bound == 0.0:
            return 0.0
        draw = (rng or random).uniform(0.0, bound)
        # A floor keeps a tight failure loop from spinning at 0 s.
        return max(draw, min(self.initial / 2, bound))
