"""Finding the events ClickHouse refuses in a batch: by cause where it can, else about one round trip each.

ClickHouse parses a TSV insert row by row, writes nothing of an insert it
refuses, and names the row it stopped at (`(at row N)`) and, for a parse
error, the column and the text (`relay.core.diagnostics`).

**By cause.** The whole batch is sent. Refused at row N, the lines before N
are good, line N is refused with ClickHouse's own error, and every other line
holding the same text in the refused column is set aside with it (the parser
reads each field alone: the same text is refused the same way). The rest is
sent whole again. A flood of events spoilt by one bug costs a few inserts,
one per distinct bad value.

**Cutting.** When a refusal takes no other line with it (a unique fault, or
diagnostics that do not show the field whole), the rest is *cut*: later
attempts send a window of about twice the distance to the last refusal
(doubling while attempts succeed), so a dense flood never re-sends the whole
remainder. Segments of the rest are cut concurrently, since a refusal costs a
round trip. A refusal that names no row (a constraint checked per block) is
split in halves instead. The good lines go in one insert at the end.

**Systemic refusals.** When ClickHouse itself changed (a column narrowed, a
setting altered), every event is refused the same way, and dead-lettering
them would empty the outbox into the dead-letter table. So when the first
event of a refused batch is refused, the batch's last event is tried alone:
taken, or refused another way, the first event was simply bad. Refused the
same way, a *canary* is inserted: a line ClickHouse accepted before (from this
process, or from the archive; inserting it again is invisible, `event_log`
collapses copies, so it is only sent when the batch itself cannot tell). If
the canary is refused too, the refusal is systemic: nothing is set aside, and
the caller backs off with the events kept in the outbox. With no canary at
all, a last event refused the same way makes the refusal systemic.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Final, Protocol

from relay.core.clickhouse import RejectedData
from relay.core.diagnostics import Fault, own_error, refused_row

type Line = tuple[int, bytes]  # (outbox id, TSV line)

# Segments of one batch cut at the same time.
SEGMENTS: Final = 8
# Windows after a refusal at row N: 2 N lines, at least this many. A refused
# insert writes nothing and ClickHouse stops reading at the bad row, so a
# large first window costs little; successful ones each make a part.
MIN_WINDOW: Final = 16


class Sink(Protocol):
    """Where lines go: `relay.core.clickhouse.ClickHouseSink`."""

    async def insert(self, body: bytes) -> None:
        """Insert a TSV body; raise `RejectedData` or `TransientError` when it is not taken."""


class SystemicRefusal(Exception):
    """ClickHouse refuses events it used to take: the fault is on its side, not the events'."""

    def __init__(self, error: RejectedData, *, canary: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.code = error.code
        self.canary = canary


@dataclass(frozen=True, slots=True)
class Refusal:
    """An event ClickHouse refused on its own, with the error it gave."""

    outbox_id: int
    line: bytes
    error: Exception  # ClickHouse's refusal, or why the event was not sent at all


@dataclass(slots=True)
class Outcome:
    """What isolating a batch found: events ClickHouse now holds, events it refused, events not reached."""

    delivered: list[int] = field(default_factory=list)
    delivered_bytes: int = 0
    refused: list[Refusal] = field(default_factory=list)
    untouched: int = 0  # left in the outbox when the deadline came
    inserts: int = 0


class Canary:
    """The last line ClickHouse accepted, remembered from each delivered batch (a slice, no parsing)."""

    def __init__(self) -> None:
        self.line: bytes | None = None

    def remember(self, body: bytes) -> None:
        """Keep the first line of a body ClickHouse just accepted."""
        end = body.find(b"\n")
        if end > 0:
            self.line = body[: end + 1]


class Isolator:
    """Delivers what ClickHouse takes from a refused batch and finds what it refuses."""

    def __init__(
        self,
        sink: Sink,
        canary: Canary,
        *,
        deadline: float,
        fallback: Callable[[], Awaitable[bytes | None]] | None = None,
    ) -> None:
        self.sink = sink
        self.canary = canary
        self.deadline = deadline
        self._fallback = fallback

    async def fallback(self) -> bytes | None:
        """A canary from elsewhere (the archive) when none was remembered since start."""
        return await self._fallback() if self._fallback is not None else None

    async def isolate(self, lines: list[Line]) -> Outcome:
        """Sort `lines` out; raise `SystemicRefusal` (nothing set aside) when ClickHouse refuses all alike."""
        outcome = Outcome()
        good: list[Line] = []
        until = time.monotonic() + self.deadline
        rest = await self._by_cause(list(lines), outcome, good, until)
        if rest:
            size = -(-len(rest) // SEGMENTS)
            try:
                async with asyncio.TaskGroup() as group:
                    for first in range(0, len(rest), size):
                        group.create_task(self._cut(rest[first : first + size], outcome, good, until))
            except ExceptionGroup as failures:
                # One segment could not reach ClickHouse (the others were
                # cancelled): the caller rolls back and retries as for any batch.
                raise failures.exceptions[0] from failures
        if good:
            await self._insert_all(good, outcome)
        return outcome

    async def _by_cause(
        self, lines: list[Line], outcome: Outcome, good: list[Line], until: float
    ) -> list[Line]:
        """Send the batch whole while each refusal takes the lines refused alike with it.

        Returns the lines still to cut (after a refusal that took no other
        line, or that named no row); lines known good but not yet delivered go
        to `good`. Raises `SystemicRefusal` when the first event is refused
        because ClickHouse refuses everything.
        """
        rest = lines
        first = True
        while rest:
            if time.monotonic() > until:
                outcome.untouched += len(rest)
                return []
            outcome.inserts += 1
            try:
                await self.sink.insert(b"".join(line for _, line in rest))
            except RejectedData as error:
                row = refused_row(error)
                if row is None or not 1 <= row <= len(rest):
                    return rest
                if first and row == 1:
                    await self._judge(error, rest, outcome)  # may take the last line out of `rest`
                first = False
                outbox_id, line = rest[row - 1]
                outcome.refused.append(Refusal(outbox_id, line, own_error(error, row)))
                fault = Fault.of(error, row, line)
                alike = [] if fault is None else [entry for entry in rest[row:] if fault.matches(entry[1])]
                if fault is None or not alike:
                    good.extend(rest[: row - 1])
                    return rest[row:]
                outcome.refused.extend(Refusal(outbox_id, line, fault.error()) for outbox_id, line in alike)
                left_out = {outbox_id for outbox_id, _ in alike}
                # The lines before row N were good: they go again with the rest.
                rest = rest[: row - 1] + [entry for entry in rest[row:] if entry[0] not in left_out]
            else:
                _delivered(outcome, rest)
                return []
        return []

    async def _judge(self, error: RejectedData, lines: list[Line], outcome: Outcome) -> None:
        """Insert a line that should be good; raise `SystemicRefusal` if ClickHouse refuses it alike.

        The batch's last line goes first (taken out of `lines`: delivered or
        refused here), since it is owed anyway: taken, or refused another way,
        the first refusal was the event's own. Refused the same way, the canary
        (a line ClickHouse took before; sending it again stores a copy the view
        hides) decides, and without one the refusal counts as systemic. A lone
        event with nothing to compare against is treated as poison unless the
        canary is refused too.
        """
        probe: Line | None = None
        probe_refusal: RejectedData | None = None
        if len(lines) >= 2:
            probe = lines.pop()
            outcome.inserts += 1
            try:
                await self.sink.insert(probe[1])
            except RejectedData as refusal:
                if refusal.code != error.code:
                    outcome.refused.append(Refusal(probe[0], probe[1], refusal))
                    return
                probe_refusal = refusal
            else:
                _delivered(outcome, [probe])
                self.canary.line = probe[1]
                return
        canary = self.canary.line or await self.fallback()
        if canary is None:
            if probe_refusal is not None:
                raise SystemicRefusal(probe_refusal, canary=False) from probe_refusal
            return
        outcome.inserts += 1
        try:
            await self.sink.insert(canary)
        except RejectedData as refusal:
            raise SystemicRefusal(refusal, canary=True) from refusal
        if probe is not None and probe_refusal is not None:
            outcome.refused.append(Refusal(probe[0], probe[1], probe_refusal))

    async def _cut(self, lines: list[Line], outcome: Outcome, good: list[Line], until: float) -> None:
        position = 0
        window = len(lines)
        while position < len(lines):
            if time.monotonic() > until:
                outcome.untouched += len(lines) - position
                return
            chunk = lines[position : position + window]
            outcome.inserts += 1
            try:
                await self.sink.insert(b"".join(line for _, line in chunk))
            except RejectedData as error:
                row = refused_row(error)
                if row is None or not 1 <= row <= len(chunk):
                    await self._halves(chunk, outcome)
                    position += len(chunk)
                    continue
                good.extend(chunk[: row - 1])
                outcome.refused.append(Refusal(chunk[row - 1][0], chunk[row - 1][1], own_error(error, row)))
                position += row
                window = max(2 * row, MIN_WINDOW)
            else:
                _delivered(outcome, chunk)
                position += len(chunk)
                window *= 2

    async def _insert_all(self, lines: list[Line], outcome: Outcome) -> None:
        """One insert of every line found good; halves if ClickHouse refuses it after all."""
        outcome.inserts += 1
        try:
            await self.sink.insert(b"".join(line for _, line in lines))
        except RejectedData:
            await self._halves(lines, outcome)
        else:
            _delivered(outcome, lines)

    async def _halves(self, lines: list[Line], outcome: Outcome) -> None:
        """Split in halves until each refused part is one event (for refusals that name no row)."""
        if not lines:
            return
        outcome.inserts += 1
        try:
            await self.sink.insert(b"".join(line for _, line in lines))
        except RejectedData as error:
            if len(lines) == 1:
                outcome.refused.append(Refusal(lines[0][0], lines[0][1], error))
                return
            middle = len(lines) // 2
            await self._halves(lines[:middle], outcome)
            await self._halves(lines[middle:], outcome)
        else:
            _delivered(outcome, lines)


def _delivered(outcome: Outcome, lines: list[Line]) -> None:
    outcome.delivered.extend(outbox_id for outbox_id, _ in lines)
    outcome.delivered_bytes += sum(len(line) for _, line in lines)
