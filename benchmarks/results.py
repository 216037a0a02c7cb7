"""A benchmark's result: one JSON object, printed as its last line and kept for the report."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path


def emit(result: Mapping[str, object], path: Path | None) -> None:
    """Print `result` as the last line; also write it to `path` (for `benchmarks.report`) when given."""
    line = json.dumps(result)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(line + "\n")
    print(line, flush=True)
