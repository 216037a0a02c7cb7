"""Production mode: the deployment checks pass, missing secrets stop start-up, gunicorn serves."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.core.management import call_command
from pytest_django import Settings

from tests.helpers import free_port
from webapp.core.management.commands import serve

ROOT = Path(__file__).resolve().parents[2]


def production_env(**overrides: str) -> dict[str, str]:
    """A production-mode environment that ignores the developer's .env and shell."""
    env = {
        "PATH": os.environ.get("PATH", ""),
        "DIE_HARD_ENV_FILE": os.devnull,
        "DJANGO_SETTINGS_MODULE": "webapp.config.settings",
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "diehard.example.com,localhost",
        # Never connected to by these tests: start-up must not need the database.
        "DATABASE_URL": "postgres://diehard@127.0.0.1:9/diehard",
        "LOG_FORMAT": "json",
    }
    env.update(overrides)
    return env


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a management command in a fresh process with exactly this environment."""
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_deployment_checks_pass_in_production_mode() -> None:
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env())

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


def proxy_ssl_header(**env: str) -> str:
    """What `SECURE_PROXY_SSL_HEADER` is in a fresh production-mode process with this environment."""
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings;"
            " print(getattr(settings, 'SECURE_PROXY_SSL_HEADER', None))",
        ],
        cwd=ROOT,
        env=production_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


def test_x_forwarded_proto_is_ignored_unless_a_proxy_is_trusted() -> None:
    assert proxy_ssl_header() == "None"
    assert proxy_ssl_header(TRUSTED_PROXY_COUNT="1") == "('HTTP_X_FORWARDED_PROTO', 'https')"


def test_production_mode_without_a_secret_key_fails_at_start_up_naming_it() -> None:
    env = production_env()
    del env["SECRET_KEY"]

    result = manage("check", env=env)

    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_serve_runs_the_development_server_when_debug_is_on(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.DEBUG = True
    calls: list[tuple[object, ...]] = []
    monkeypatch.setattr(serve, "call_command", lambda *args: calls.append(args))

    call_command("serve", "--bind", "127.0.0.1:8123", skip_checks=True)

    assert calls == [("runserver", "127.0.0.1:8123")]


def test_serve_replaces_itself_with_gunicorn_when_debug_is_off(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.DEBUG = False
    execs: list[tuple[str, list[str], dict[str, str]]] = []
    monkeypatch.setattr(serve.os, "execvpe", lambda file, argv, env: execs.append((file, argv, env)))

    call_command("serve", "--workers", "3", "--threads", "2", skip_checks=True)

    [(file, argv, env)] = execs
    assert file == sys.executable
    assert argv[:4] == [sys.executable, "-m", "gunicorn", "webapp.config.wsgi:application"]
    assert argv[argv.index("--bind") + 1] == "127.0.0.1:8000"
    assert argv[argv.index("--workers") + 1] == "3"
    assert argv[argv.index("--threads") + 1] == "2"
    assert "--access-logfile" not in argv
    # gunicorn's workers share their metrics through a fresh directory of files.
    assert Path(env["PROMETHEUS_MULTIPROC_DIR"]).is_dir()
    assert not any(Path(env["PROMETHEUS_MULTIPROC_DIR"]).iterdir())


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
        env=production_env(HOME=str(tmp_path), XDG_RUNTIME_DIR=str(tmp_path), TRUSTED_PROXY_COUNT="1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, body = get(url, headers=headers)
                break
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
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
