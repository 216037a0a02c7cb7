"""What operators see of a dead letter's error: a summary that never quotes the refused row."""

from __future__ import annotations

import re
from typing import Final

from shared.clickhouse import error_code

# ClickHouse's error text quotes the refused row (names, e-mail addresses), so
# lists show only the error code and the exception's headline; the full text
# stays in the table and in the admin's detail view, next to the payload.
_HEADLINE: Final = re.compile(r"DB::Exception: ([^:\n]*)")
SUMMARY_CHARS: Final = 60


def error_summary(error: str) -> str:
    """The error's code and headline, e.g. `Code: 27 — Cannot parse input`."""
    code = error_code(error)
    headline = _HEADLINE.search(error)
    parts: list[str] = []
    if code is not None:
        parts.append(f"Code: {code}")
    if headline and headline.group(1).strip():
        parts.append(_shorten(headline.group(1)))
    if parts:
        return " — ".join(parts)
    # Not ClickHouse's format: whatever follows the first colon may quote data.
    return _shorten(error[:SUMMARY_CHARS].partition(":")[0])


def _shorten(text: str) -> str:
    # Tabs and newlines would break the command's columns and the admin's cells.
    line = " ".join(text.split())
    return line if len(line) <= SUMMARY_CHARS else f"{line[: SUMMARY_CHARS - 1]}…"
