"""Reading what ClickHouse says about a refused TSV insert: which row, which column, which text.

ClickHouse names the row it stopped at (`(at row N)`) and, for a parse error,
prints a block per row up to that one, a line per column, the refused column's
line ending in `ERROR: text "…" is not like <type>` (18.16 and current servers
alike). Two uses:

- **Its own error for each refused event.** The message quotes the rows before
  the refused one and the input after it: other events, maybe other people's
  data, which must not outlive their own erasure in this event's dead letter.
  `own_error` keeps only what concerns the refused row.
- **Refusals by cause.** ClickHouse's parser reads each field alone, so a line
  whose refused column holds exactly the same text is refused the same way.
  `Fault` finds those lines, so that one insert sets aside every event a single
  bug made bad, instead of one insert per event.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from relay.core.clickhouse import RejectedData
from shared.outbox import EVENT_LOG_COLUMNS

_ROW: Final = re.compile(r"\(at row (\d+)\)")
# "Row N:" then one line per column, up to a blank line.
_ROW_BLOCK: Final = re.compile(r"^Row (\d+):\n((?:.+\n?)*)", re.MULTILINE)
_TEXT_NOT_LIKE: Final = re.compile(
    r'^Column (\d+),\s+name: (\w+),\s+type: (.+?),\s+ERROR: text "(.*)" is not like ', re.MULTILINE
)
# The headline's excerpt of the input from where parsing stopped.
_EXCERPT: Final = re.compile(r"(before: )(.*?)(?=: \(at row \d+\))")
# ClickHouse's name for the error, at the end of a current server's message.
_ERROR_NAME: Final = re.compile(r"\(([A-Z][A-Z_]+)\)\s*\Z")
# How the diagnostics show a field's end.
_FIELD_END: Final = re.compile(r"<TAB>|<LINE FEED>")


def refused_row(error: RejectedData) -> int | None:
    """The 1-based row ClickHouse stopped at, if its error names one."""
    match = _ROW.search(str(error))
    return int(match.group(1)) if match else None


def own_error(error: RejectedData, row: int) -> RejectedData:
    """ClickHouse's error for row `row` of an insert, without what it quotes of the other rows."""
    message = str(error)
    headline, _, diagnostics = message.partition("\n")
    parts = [_EXCERPT.sub(lambda match: match.group(1) + _to_row_end(match.group(2)), headline, count=1)]
    if name := _ERROR_NAME.search(message):
        parts[0] += f" ({name.group(1)})"
    if block := _block(diagnostics, row):
        # The ERROR line quotes on past the row's end, into the next row.
        parts.append(f"Row {row}:\n" + re.sub(r"<LINE FEED>[^\"]*", "<LINE FEED>…", block).rstrip("\n"))
    return RejectedData("\n\n".join(parts), code=error.code)


def _to_row_end(excerpt: str) -> str:
    """An excerpt of the input cut after the first line feed (ClickHouse shows it escaped: `\\n`)."""
    head, separator, tail = excerpt.partition("\\n")
    return head + separator + ("…" if tail else "")


def _block(diagnostics: str, row: int) -> str | None:
    for match in _ROW_BLOCK.finditer(diagnostics):
        if int(match.group(1)) == row:
            return match.group(2)
    return None


@dataclass(frozen=True, slots=True)
class Fault:
    """A column ClickHouse refused, and the exact text it refused there."""

    column: int
    name: str
    type: str
    text: bytes  # the field as it stands in the TSV line
    event_id: str  # the event ClickHouse refused for it
    code: int | None

    @classmethod
    def of(cls, error: RejectedData, row: int, line: bytes) -> Fault | None:
        """The fault ClickHouse found in `line` (row `row` of the insert), if its diagnostics show it whole.

        `None` unless the refused column is one of ours, at its place, and the
        text ClickHouse quotes begins with exactly this line's field followed by
        the field's end: then the column and the text are certainly the cause.
        """
        block = _block(str(error).partition("\n")[2], row)
        match = _TEXT_NOT_LIKE.search(block) if block else None
        if match is None:
            return None
        column, name, type_, quoted = int(match.group(1)), match.group(2), match.group(3), match.group(4)
        fields = line.rstrip(b"\n").split(b"\t")
        if (
            len(fields) != len(EVENT_LOG_COLUMNS)
            or column >= len(fields)
            or EVENT_LOG_COLUMNS[column] != name
        ):
            return None
        shown = _FIELD_END.split(quoted, maxsplit=1)
        if len(shown) < 2 or shown[0].encode() != fields[column]:
            return None  # cut short, or shown escaped: not certain it is the whole field
        return cls(column, name, type_, fields[column], fields[0].decode(errors="replace"), error.code)

    def matches(self, line: bytes) -> bool:
        """Whether `line` holds the same text in the same column (and so is refused alike)."""
        if self.column == len(EVENT_LOG_COLUMNS) - 1:
            return line.endswith(b"\t" + self.text + b"\n")
        fields = line.split(b"\t", self.column + 1)
        return len(fields) > self.column + 1 and fields[self.column] == self.text

    def error(self) -> RejectedData:
        """The error recorded for a line refused alike: the cause, not the other event's data."""
        return RejectedData(
            f"Code: {self.code}. ClickHouse refused column {self.name} ({self.type}) holding"
            f' "{self.text.decode(errors="replace")}" in event {self.event_id} of the same batch;'
            " this event holds the same text there, so it was set aside with it",
            code=self.code,
        )
