"""`make run`, the README's one command for the whole system: the site, the relay, the worker
and beat come up, a sign-up over HTTP reaches ClickHouse, and one Ctrl-C stops them all."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.clickhouse import ClickHouse
from tests.support.http import answers, http_post_json
from tests.support.outbox_tables import Outbox
from tests.support.project import ROOT
from tests.support.relays import relay_environment, visible
from tests.support.waiting import free_port, wait_until

pytestmark = pytest.mark.slow

# honcho gives its processes 5 s after Ctrl-C before it kills them (Procfile).
STOP_WITHIN = 20
SIGN_UP = {
    "email": "al@example.com",
    "password": "c0rrect-horse-battery",
    "first_name": "Al",
    "last_name": "Powell",
}


@dataclass(frozen=True)
class MakeRun:
    """`make run` as started: its process (a group of its own), its output, where it serves."""

    process: subprocess.Popen[bytes]
    log: Path
    web_url: str
    relay_url: str

    def ctrl_c(self) -> None:
        """What a terminal's Ctrl-C does: SIGINT to the whole foreground group."""
        os.killpg(self.process.pid, signal.SIGINT)

    def group_alive(self) -> bool:
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return False
        return True


@pytest.fixture
def make_run(outbox: Outbox, clickhouse: ClickHouse, tmp_path: Path) -> Iterator[MakeRun]:
    """`make run` in a session of its own, pointed at the test databases and on free ports."""
    web_port, relay_port = free_port(), free_port()
    env = relay_environment(outbox, clickhouse, http_port=relay_port, poll_interval=0.2)
    env |= {"WEB_PORT": str(web_port), "DEBUG": "true", "MAIL_DISPATCH_INTERVAL": "1"}
    log = tmp_path / "make-run.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            ["make", "--no-print-directory", "run"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, as a terminal's Ctrl-C reaches it
        )
    run = MakeRun(process, log, f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{relay_port}")
    try:
        yield run
    finally:
        # Ctrl-C first: honcho's processes are sessions of their own, which only honcho stops.
        if process.poll() is None:
            run.ctrl_c()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=STOP_WITHIN)
        if run.group_alive():
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def test_make_run_carries_a_sign_up_into_clickhouse_and_one_ctrl_c_stops_every_process(
    make_run: MakeRun, clickhouse: ClickHouse
) -> None:
    wait_until(lambda: answers(f"{make_run.web_url}/health/"), timeout=60, interval=0.5)
    wait_until(lambda: answers(f"{make_run.relay_url}/readyz"), timeout=60, interval=0.5)

    status, body = http_post_json(f"{make_run.web_url}/api/users/", SIGN_UP)
    assert status == 201, body
    wait_until(lambda: visible(clickhouse) == 1, timeout=30, interval=0.2)

    make_run.ctrl_c()
    # make itself dies of the Ctrl-C, as in a terminal, once run.sh has cleaned up.
    stopped = make_run.process.wait(timeout=STOP_WITHIN)
    assert stopped in {0, 130, -signal.SIGINT}, make_run.log.read_text()[-3000:]
    wait_until(lambda: not make_run.group_alive(), timeout=STOP_WITHIN)
    assert not answers(f"{make_run.web_url}/health/")
    assert not answers(f"{make_run.relay_url}/readyz")
    output = make_run.log.read_text()
    # honcho says so of each process once it has exited.
    for name in ("web", "relay", "worker", "beat"):
        assert f"{name}.1 stopped" in output, name
