"""Production mode: the deployment checks pass, missing secrets stop start-up; `serve` picks the server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from pytest_django import Settings

from tests.support.project import ROOT, production_env
from webapp.core.management.commands import serve


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


@pytest.mark.slow
def test_the_deployment_checks_pass_in_production_mode() -> None:
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env())

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.slow
def test_production_mode_without_a_secret_key_fails_at_start_up_naming_it() -> None:
    env = production_env()
    del env["SECRET_KEY"]

    result = manage("check", env=env)

    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


@pytest.mark.slow
def test_production_mode_without_a_mail_server_fails_at_start_up_naming_it() -> None:
    env = production_env()
    del env["EMAIL_HOST"]

    result = manage("check", env=env)

    assert result.returncode != 0
    assert "EMAIL_HOST" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["console", "filebased", "locmem"])
def test_production_mode_refuses_a_mail_backend_that_keeps_the_messages(backend: str) -> None:
    env = production_env(EMAIL_BACKEND=f"django.core.mail.backends.{backend}.EmailBackend")
    del env["EMAIL_HOST"]

    result = manage("check", env=env)

    assert result.returncode != 0
    assert f"EMAIL_BACKEND=django.core.mail.backends.{backend}.EmailBackend" in result.stderr


@pytest.mark.slow
def test_production_mode_takes_a_delivering_backend_chosen_instead_of_smtp() -> None:
    env = production_env(EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend")
    del env["EMAIL_HOST"]

    assert manage("check", env=env).returncode == 0


@pytest.mark.slow
def test_the_deployment_checks_flag_a_mail_backend_that_delivers_nothing() -> None:
    env = production_env(EMAIL_BACKEND="django.core.mail.backends.dummy.EmailBackend")

    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)

    assert result.returncode != 0
    assert "diehard.W001" in result.stderr


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
    monkeypatch.setattr("os.execvpe", lambda file, argv, env: execs.append((file, argv, env)))
    # The start-up check of its rights asks the servers (tests/integration/relay/test_least_privilege.py).
    monkeypatch.setattr("webapp.core.management.commands.serve.privileges_warn", lambda **_: [])

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


def test_x_forwarded_proto_is_ignored_unless_a_proxy_is_trusted() -> None:
    assert production_setting("SECURE_PROXY_SSL_HEADER") == "None"
    assert production_setting("SECURE_PROXY_SSL_HEADER", TRUSTED_PROXIES="10.0.0.0/8") == (
        "('HTTP_X_FORWARDED_PROTO', 'https')"
    )


@pytest.mark.slow
def test_the_old_proxy_count_is_refused_with_the_setting_that_replaces_it() -> None:
    result = manage("check", env=production_env(TRUSTED_PROXY_COUNT="1"))

    assert result.returncode != 0
    assert "TRUSTED_PROXIES" in result.stderr


def production_setting(name: str, **env: str) -> str:
    """A Django setting as a fresh production-mode process with this environment sees it."""
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import django; django.setup(); from django.conf import settings; print(settings.{name})",
        ],
        cwd=ROOT,
        env=production_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


@pytest.mark.slow
def test_hsts_preload_is_the_operators_choice_and_off_by_default() -> None:
    assert production_setting("SECURE_HSTS_PRELOAD") == "False"
    assert production_setting("SECURE_HSTS_PRELOAD", SECURE_HSTS_PRELOAD="true") == "True"
