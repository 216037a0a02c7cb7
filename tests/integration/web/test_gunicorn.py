"""In production mode the site is served by gunicorn, which a process manager can stop with SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.project import ROOT, production_env
from tests.support.waiting import free_port


def get(url: str, *, headers: dict[str, str]) -> tuple[int, str]:
    """Status and body of a GET."""
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, timeout=5) as response:
        return response.status, response.read().decode()


@pytest.mark.slow
def test_serve_in_production_mode_answers_through_gunicorn(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    headers = {"Host": "localhost", "X-Forwarded-Proto": "https"}
    process = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        cwd=ROOT,
        # Gunicorn's control socket goes under XDG_RUNTIME_DIR: keep it private to this test.
        # Behind a trusted proxy (this machine), which says the client spoke HTTPS.
        env=production_env(HOME=str(tmp_path), XDG_RUNTIME_DIR=str(tmp_path), TRUSTED_PROXIES="127.0.0.1/32"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        answer: tuple[int, str] | None = None
        while answer is None:
            try:
                answer = get(url, headers=headers)
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        status, body = answer
        assert status == 200
        assert "You are not signed in" in body
        # Every worker's metrics, added up from the multiprocess directory serve set up.
        status, body = get(f"{url}metrics", headers=headers)
        assert status == 200
        assert "web_throttled_requests_total" in body
    finally:
        # The pid we started is gunicorn's master now (the command exec'd it).
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "gunicorn" in stderr.lower()
