"""The process boundary holds at run time, not only in the import contracts."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.slow
def test_the_relay_imports_no_django() -> None:
    probe = (
        "import sys, relay.app, relay.__main__;"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'django', 'webapp', 'celery'}))"
    )

    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)

    assert result.stdout.strip() == "[]"
