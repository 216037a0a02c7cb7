"""`relay --version`, and each sub-command's `--help` listing its options with their environment variables."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import version

import pytest

from relay import cli
from relay.app import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, EXIT_SCHEMA, EXIT_USAGE
from relay.settings import RelaySettings
from shared.settings import load
from tests.support.project import ROOT

# Settings every process shares that the relay never reads: they are the site's.
# The owner's URL is for migrations, tests and benchmarks: the relay never connects as it.
NOT_READ_BY_THE_RELAY = {"debug", "redis_url", "database_admin_url"}


@dataclass(frozen=True)
class Outcome:
    """How the command line ended: exit code and what it printed."""

    code: int | str | None
    stdout: str
    stderr: str


def relay_cli(capsys: pytest.CaptureFixture[str], *arguments: str) -> Outcome:
    """Parse a command line that ends the program (help, version, usage error) and capture its output."""
    with pytest.raises(SystemExit) as exit_:
        cli.parse(arguments)
    captured = capsys.readouterr()
    return Outcome(exit_.value.code, captured.out, captured.err)


def test_version_names_the_program_and_the_package_version() -> None:
    # The one check through the real entry point: `python -m relay`.
    result = subprocess.run(
        [sys.executable, "-m", "relay", "--version"],
        cwd=ROOT,
        env={**os.environ, "DIE_HARD_ENV_FILE": os.devnull},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0
    assert result.stdout.strip() == f"relay {version('die-hard')}"


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    result = relay_cli(capsys, "--help")

    assert result.code == 0
    for command in cli.COMMANDS:
        assert command.name in result.stdout


@pytest.mark.parametrize("command", cli.COMMANDS, ids=lambda command: command.name)
def test_command_help_lists_each_option_with_its_environment_variable(
    capsys: pytest.CaptureFixture[str], command: cli.Command
) -> None:
    result = relay_cli(capsys, command.name, "--help")

    assert result.code == 0
    text = " ".join(result.stdout.split())  # argparse wraps lines
    for option in command.options:
        assert option.flag in text
        assert f"env {cli.environment_variable(option.setting)}" in text
    for setting in command.environment_only:
        assert cli.environment_variable(setting) in text


def test_every_setting_the_relay_reads_is_an_option_or_named_as_environment_only() -> None:
    covered = {
        setting
        for command in cli.COMMANDS
        for setting in [*(option.setting for option in command.options), *command.environment_only]
    }

    assert covered == set(RelaySettings.model_fields) - NOT_READ_BY_THE_RELAY


def test_secrets_are_never_options() -> None:
    secrets = {
        "database_url",
        "relay_database_url",
        "clickhouse_password",
        "clickhouse_admin_password",
        "sentry_config_dsn",
    }

    for command in cli.COMMANDS:
        assert secrets.isdisjoint(option.setting for option in command.options)


def test_without_a_command_the_relay_runs_with_the_options_given() -> None:
    assert cli.parse([]) == ("run", {})
    assert cli.parse(["--batch-size", "500"]) == ("run", {"relay_batch_size": 500})


def test_options_are_typed_like_their_settings() -> None:
    command, overrides = cli.parse(
        ["run", "--poll-interval", "0.5", "--no-clickhouse-secure", "--log-format", "json"]
    )

    assert command == "run"
    assert overrides == {"relay_poll_interval": 0.5, "clickhouse_secure": False, "log_format": "json"}


def test_an_option_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_BATCH_SIZE", "300")

    _, overrides = cli.parse(["run", "--batch-size", "700"])

    assert load(RelaySettings, **overrides).relay_batch_size == 700
    assert load(RelaySettings).relay_batch_size == 300


@pytest.mark.parametrize(
    "arguments",
    [
        ["migrate", "--batch-size", "5"],
        ["run", "--batch-size", "many"],
        ["run", "--log-format", "xml"],
        ["serve"],
    ],
    ids=["option-of-another-command", "not-a-number", "not-a-choice", "unknown-command"],
)
def test_a_usage_error_exits_2_saying_what_is_wrong(
    capsys: pytest.CaptureFixture[str], arguments: list[str]
) -> None:
    result = relay_cli(capsys, *arguments)

    assert result.code == 2
    assert result.stderr.startswith("usage: relay")
    assert "error:" in result.stderr


def test_durations_are_shown_as_an_operator_writes_them(capsys: pytest.CaptureFixture[str]) -> None:
    result = relay_cli(capsys, "run", "--help")

    assert "[env RELAY_ARCHIVE_RETENTION, default 24h]" in result.stdout
    assert "[env RELAY_RECONCILE_INTERVAL, default 10m]" in result.stdout
    assert "day," not in result.stdout
    assert "0:10:00" not in result.stdout


def test_a_duration_option_reaches_the_settings_as_written_and_is_parsed_there() -> None:
    _, overrides = cli.parse(["run", "--reconcile-interval", "90s"])

    assert overrides == {"relay_reconcile_interval": "90s"}
    assert load(RelaySettings, **overrides).relay_reconcile_interval.total_seconds() == 90


@pytest.mark.parametrize("columns", [60, 80, 120])
@pytest.mark.parametrize("command", ["", *(command.name for command in cli.COMMANDS)])
def test_help_fits_the_terminal_and_never_breaks_an_environment_variable_from_its_option(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, columns: int, command: str
) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))

    result = relay_cli(capsys, *filter(None, [command]), "--help")

    lines = result.stdout.splitlines()
    # argparse wraps at COLUMNS - 2, the epilogs' tables (exit codes, secrets) too; only what
    # cannot be broken may stand out: a usage group (`[--x | --no-x]`) or an option's env note.
    too_wide = [line.strip() for line in lines if len(line) > columns - 2]
    assert all(re.fullmatch(r"\[[^\[\]]+\]", line) for line in too_wide), too_wide
    for option in next((c.options for c in cli.COMMANDS if c.name == command), ()):
        env = cli.environment_variable(option.setting)
        assert any(line.strip().startswith(f"[env {env}") for line in lines), env


@pytest.mark.parametrize("command", cli.COMMANDS, ids=lambda command: command.name)
def test_the_secrets_column_leaves_room_after_the_longest_name(
    capsys: pytest.CaptureFixture[str], command: cli.Command
) -> None:
    result = relay_cli(capsys, command.name, "--help")

    for setting in command.environment_only:
        name = cli.environment_variable(setting)
        assert re.search(rf"^  {name}  +\S", result.stdout, flags=re.MULTILINE), name


@pytest.mark.parametrize("command", ["", *(command.name for command in cli.COMMANDS)])
def test_every_help_page_lists_the_exit_codes(capsys: pytest.CaptureFixture[str], command: str) -> None:
    result = relay_cli(capsys, *filter(None, [command]), "--help")

    for code in (EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_SCHEMA, EXIT_CONFIG):
        assert re.search(rf"^  {code} +\w", result.stdout, flags=re.MULTILINE), code
