"""`make run`, the README's one command for the whole system: the site, the relay, the worker
and beat come up, a sign-up over HTTP reaches ClickHouse, and one Ctrl-C stops them all."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.clickhouse import ClickHouse
from tests.support.outbox_tables import Outbox
from tests.support.project import ROOT
from tests.support.relays import relay_environment, visible
from tests.support.waiting import free_port, wait_until

pytestmark = pytest.mark.slow

# honcho gives its processes 5 s after Ctrl-C before it kills them (Procfile).
STOP_WITHIN = 20


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def make_run(
    outbox: Outbox, clickhouse: ClickHouse, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
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
    process.web_url = f"http://127.0.0.1:{web_port}"  # type: ignore[attr-defined]
    process.relay_url = f"http://127.0.0.1:{relay_port}"  # type: ignore[attr-defined]
    try:
        yield process, log
    finally:
        # Ctrl-C first: honcho's processes are sessions of their own, which only honcho stops.
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=STOP_WITHIN)
        if group_alive(process.pid):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def test_make_run_carries_a_sign_up_into_clickhouse_and_one_ctrl_c_stops_every_process(
    make_run: tuple[subprocess.Popen[bytes], Path], clickhouse: ClickHouse
) -> None:
    process, log = make_run
    web_url, relay_url = process.web_url, process.relay_url  # type: ignore[attr-defined]
    wait_until(lambda: answers(f"{web_url}/health/"), timeout=60, interval=0.5)
    wait_until(lambda: answers(f"{relay_url}/readyz"), timeout=60, interval=0.5)

    request = urllib.request.Request(
        f"{web_url}/api/users/",
        data=json.dumps(
            {
                "email": "al@example.com",
                "password": "c0rrect-horse-battery",
                "first_name": "Al",
                "last_name": "Powell",
            }
        ).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201
    wait_until(lambda: visible(clickhouse) == 1, timeout=30, interval=0.2)

    os.killpg(process.pid, signal.SIGINT)
    # make itself dies of the Ctrl-C, as in a terminal, once run.sh has cleaned up.
    assert process.wait(timeout=STOP_WITHIN) in {0, 130, -signal.SIGINT}, log.read_text()[-3000:]
    wait_until(lambda: not group_alive(process.pid), timeout=STOP_WITHIN)
    assert not answers(f"{web_url}/health/")
    assert not answers(f"{relay_url}/readyz")
    output = log.read_text()
    # honcho says so of each process once it has exited.
    for name in ("web", "relay", "worker", "beat"):
        assert f"{name}.1 stopped" in output, name
