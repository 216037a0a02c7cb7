"""A PostgreSQL primary with a streaming standby of the tests' own, for failover tests.

The chaos suite's pair (`tests.chaos.servers.PostgresPair`) on free ports in a
scratch directory, created fresh and removed whatever happens.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.chaos.servers import PostgresPair
from tests.support.processes import Children
from tests.support.waiting import wait_until


@contextlib.contextmanager
def running_pair(*, synchronous: bool = True) -> Iterator[PostgresPair]:
    """A primary and a standby that streams from it (synchronously, unless asked otherwise)."""
    directory = Path(tempfile.mkdtemp(prefix="diehard-pair-"))
    directory.chmod(0o755)  # the postgres account must reach its data directories
    children = Children()
    pair = PostgresPair.under(children, directory, synchronous=synchronous)
    try:
        pair.create()
        wait_until(pair.streaming, timeout=60, interval=0.1)
        yield pair
    finally:
        pair.remove()
        children.stop_all()
        shutil.rmtree(directory, ignore_errors=True)
