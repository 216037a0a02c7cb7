"""The results table, one row per scenario, and the summary line scripts read."""

from __future__ import annotations

import json
from collections.abc import Sequence

from tests.chaos.suite import Result

COLUMNS = (
    ("scenario", 36),
    ("events", 8),
    ("faults", 7),
    ("once", 8),
    ("lost", 5),
    ("dup", 4),
    ("unexp", 6),
    ("hidden", 7),
    ("indet", 6),
    ("dead", 5),
    ("backlog", 8),
    ("lag_s", 6),
    ("secs", 5),
    ("result", 6),
)


def header() -> str:
    return " ".join(
        f"{name:<{width}}" if index == 0 else f"{name:>{width}}"
        for index, (name, width) in enumerate(COLUMNS)
    )


def row(result: Result) -> str:
    a = result.accounting
    values = (
        result.name,
        a.events,
        result.faults,
        a.delivered_once,
        a.lost,
        a.duplicated,
        a.unexpected,
        a.redelivered,
        f"{a.recovered}/{a.indeterminate}",
        a.dead_lettered,
        result.max_backlog,
        f"{result.max_lag:.1f}",
        f"{result.seconds:.0f}",
        "ok" if result.passed else "FAIL",
    )
    return " ".join(
        f"{value!s:<{width}}" if index == 0 else f"{value!s:>{width}}"
        for index, ((_, width), value) in enumerate(zip(COLUMNS, values, strict=True))
    )


def markdown(results: Sequence[Result]) -> str:
    """The same table in Markdown, for docs/RELIABILITY.md."""
    lines = ["| " + " | ".join(name for name, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for result in results:
        cells = [cell.strip() for cell in row(result).split(" ") if cell.strip()]
        lines.append("| `" + cells[0] + "` | " + " | ".join(cells[1:]) + " |")
    return "\n".join(lines)


def summary(results: Sequence[Result], *, failed: Sequence[str] = ()) -> str:
    """The last line: JSON with exactly the keys others script against."""
    return json.dumps(
        {
            "scenarios": len(results),
            "events": sum(result.accounting.events for result in results),
            "lost": sum(result.accounting.lost for result in results),
            "duplicated": sum(result.accounting.duplicated for result in results),
            "unexpected": sum(result.accounting.unexpected for result in results),
            "failed": [result.name for result in results if not result.passed] + list(failed),
            # Acknowledged events lost with an asynchronous standby's missing
            # WAL: measured, by design not a failure (see the failover scenarios).
            "rpo_lost": sum(result.accounting.rpo_lost for result in results),
        }
    )
