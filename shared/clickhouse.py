"""What both sides know of ClickHouse's answers: how to read an error's code."""

from __future__ import annotations

import re
from typing import Final

_CODE: Final = re.compile(r"Code:\s*(\d+)")


def error_code(message: str) -> int | None:
    """The numeric code of a ClickHouse error message (`Code: 27. DB::Exception: ...`), if any."""
    match = _CODE.search(message)
    return int(match.group(1)) if match else None
