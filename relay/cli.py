"""The relay's command line: sub-commands, their options, and the environment variable behind each.

Every option overrides one setting for this run; each setting keeps its
environment variable (shown in `--help`), which stays the usual way to
configure a deployment. Secrets are read from the environment only, so they
never appear in a process list.
"""

from __future__ import annotations

import argparse
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

from relay.settings import RelaySettings, parse_duration

PROG = "relay"
DEFAULT_COMMAND = "run"


@dataclass(frozen=True, slots=True)
class Option:
    """A command-line option that sets one field of `RelaySettings`."""

    setting: str
    flag: str
    help: str
    metavar: str | None = None


_CLICKHOUSE = (
    Option("clickhouse_host", "--clickhouse-host", "ClickHouse server", "HOST"),
    Option("clickhouse_port", "--clickhouse-port", "ClickHouse HTTP(S) port", "PORT"),
    Option("clickhouse_user", "--clickhouse-user", "ClickHouse user", "USER"),
    Option("clickhouse_database", "--clickhouse-database", "database that holds event_log", "NAME"),
    Option("clickhouse_secure", "--clickhouse-secure", "talk to ClickHouse over HTTPS"),
    Option("relay_clickhouse_timeout", "--clickhouse-timeout", "bound on every ClickHouse call", "SECONDS"),
    Option(
        "clickhouse_cluster",
        "--clickhouse-cluster",
        "replicated cluster: the schema ON CLUSTER, inserts with a quorum",
        "NAME",
    ),
    Option(
        "clickhouse_hosts",
        "--clickhouse-hosts",
        "replicas to use in order, host[:port],... (--clickhouse-host:port if unset)",
        "HOSTS",
    ),
)
_OBSERVABILITY = (
    Option(
        "environment",
        "--environment",
        "deployment name; Sentry's environment without --sentry-environment",
        "NAME",
    ),
    Option("log_level", "--log-level", "DEBUG, INFO, WARNING, ERROR", "LEVEL"),
    Option("log_format", "--log-format", "console on a terminal with auto, JSON lines otherwise"),
    Option(
        "sentry_config_environment",
        "--sentry-environment",
        "Sentry environment (ENVIRONMENT if unset)",
        "NAME",
    ),
    Option("sentry_traces_sample_rate", "--sentry-traces-sample-rate", "share of batches traced", "RATE"),
)
_SCHEMA = (
    Option(
        "clickhouse_admin_user",
        "--clickhouse-admin-user",
        "ClickHouse user for DDL (CLICKHOUSE_USER if unset)",
        "USER",
    ),
    Option(
        "event_log_retention_days",
        "--retention-days",
        "days events stay in event_log; 0 keeps them forever",
        "DAYS",
    ),
)
_ARCHIVE = (
    Option(
        "relay_archive_retention",
        "--archive-retention",
        "how long delivered events are kept for reconciliation (e.g. 24h); 0 keeps none",
        "DURATION",
    ),
)
_DAEMON = (
    Option("relay_batch_size", "--batch-size", "most events per ClickHouse insert", "EVENTS"),
    Option("relay_batch_max_bytes", "--batch-max-bytes", "most bytes per ClickHouse insert", "BYTES"),
    Option(
        "relay_reconcile_interval",
        "--reconcile-interval",
        "time between reconciliations with ClickHouse (e.g. 10m)",
        "DURATION",
    ),
    Option("relay_concurrency", "--concurrency", "forwarding loops in this process", "LOOPS"),
    Option(
        "relay_poll_interval", "--poll-interval", "seconds between polls without a notification", "SECONDS"
    ),
    Option(
        "relay_recheck_interval", "--recheck-interval", "seconds between looks while events flow", "SECONDS"
    ),
    Option(
        "relay_synchronous_commit",
        "--synchronous-commit",
        "wait for PostgreSQL's WAL flush when deleting delivered events",
    ),
    Option(
        "relay_insert_quorum",
        "--insert-quorum",
        "replicas that must hold a batch before ClickHouse acknowledges it (the shard on a cluster)",
        "REPLICAS",
    ),
    Option("relay_backoff_initial", "--backoff-initial", "first retry delay after a failure", "SECONDS"),
    Option("relay_backoff_max", "--backoff-max", "longest retry delay", "SECONDS"),
    Option("relay_postgres_timeout", "--postgres-timeout", "bound on every PostgreSQL statement", "SECONDS"),
    Option(
        "relay_shutdown_grace", "--shutdown-grace", "time to finish the batch in hand on SIGTERM", "SECONDS"
    ),
    Option("relay_http_host", "--http-host", "address of /livez, /readyz, /metrics, /status", "HOST"),
    Option("relay_http_port", "--http-port", "port of the HTTP endpoint", "PORT"),
    Option(
        "relay_stats_interval", "--stats-interval", "seconds between outbox statistics refreshes", "SECONDS"
    ),
    Option("relay_readiness_timeout", "--readiness-timeout", "per-dependency timeout of /readyz", "SECONDS"),
    Option("relay_liveness_timeout", "--liveness-timeout", "stall after which /livez fails", "SECONDS"),
)


@dataclass(frozen=True, slots=True)
class Argument:
    """An option of one command that no setting stands behind (it lands in the overrides under `dest`)."""

    flag: str
    dest: str
    help: str
    metavar: str
    type: Callable[[str], Any]


@dataclass(frozen=True, slots=True)
class Command:
    """A sub-command: what it does, the options it takes, the settings only the environment gives."""

    name: str
    help: str
    options: tuple[Option, ...]
    environment_only: tuple[str, ...]
    arguments: tuple[Argument, ...] = ()


COMMANDS = (
    Command(
        "run",
        "carry events from the outbox to ClickHouse until SIGTERM or SIGINT (the default)",
        _DAEMON + _ARCHIVE + _CLICKHOUSE + _OBSERVABILITY,
        ("database_url", "relay_database_url", "clickhouse_password", "sentry_config_dsn"),
    ),
    Command(
        "reconcile",
        "compare the archive of delivered events with ClickHouse, hour by hour and type by type, and send "
        "again what ClickHouse lost; the last line printed is JSON; exit 0 when ClickHouse is complete",
        _ARCHIVE + _CLICKHOUSE + _OBSERVABILITY,
        ("database_url", "relay_database_url", "clickhouse_password", "sentry_config_dsn"),
        (
            Argument(
                "--since",
                "since",
                "check the hours from this long ago (e.g. 6h, 2d); default: all the archive keeps",
                "DURATION",
                parse_duration,
            ),
        ),
    ),
    Command(
        "migrate",
        "create the ClickHouse database, event_log and event_log_dedup, with the retention TTL where the "
        "server has TTL (idempotent)",
        _CLICKHOUSE + _SCHEMA + _OBSERVABILITY,
        ("clickhouse_password", "clickhouse_admin_password", "sentry_config_dsn"),
    ),
    Command(
        "check",
        "check event_log against what the relay sends; exit 2 if missing or incompatible",
        _CLICKHOUSE + _OBSERVABILITY,
        ("clickhouse_password", "sentry_config_dsn"),
    ),
    Command(
        "expire",
        "delete events older than the retention period from event_log (for servers without TTL)",
        _CLICKHOUSE + _SCHEMA + _OBSERVABILITY,
        ("clickhouse_password", "clickhouse_admin_password", "sentry_config_dsn"),
    ),
)

_ENVIRONMENT_ONLY_HELP = {
    "database_url": "PostgreSQL holding the outbox (its URL may carry a password)",
    "relay_database_url": "the relay's own PostgreSQL role (DATABASE_URL if unset)",
    "clickhouse_password": "ClickHouse password",
    "clickhouse_admin_password": "password of CLICKHOUSE_ADMIN_USER",
    "sentry_config_dsn": "Sentry is on when set (SENTRY_DSN is read too)",
}


def parser() -> argparse.ArgumentParser:
    """The whole command line."""
    root = argparse.ArgumentParser(
        prog=PROG,
        description="Outbox relay: carries events from PostgreSQL to ClickHouse.",
        epilog=f"Without a command, `{PROG}` runs the daemon. `{PROG} COMMAND --help` lists its options.",
    )
    root.add_argument("--version", action="version", version=f"{PROG} {version('die-hard')}")
    commands = root.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        sub = commands.add_parser(
            command.name,
            help=command.help,
            description=command.help[0].upper() + command.help[1:] + ".",
            epilog=_environment_only_epilog(command),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        for option in command.options:
            _add(sub, option)
        for argument in command.arguments:
            sub.add_argument(
                argument.flag,
                dest=argument.dest,
                type=argument.type,
                metavar=argument.metavar,
                default=argparse.SUPPRESS,
                help=argument.help,
            )
    return root


def parse(argv: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """The command to run and the settings the options override (plus the command's own arguments,
    under their `dest`); exits 2 on a usage error."""
    arguments = list(argv)
    if not arguments or (arguments[0].startswith("-") and arguments[0] not in {"-h", "--help", "--version"}):
        arguments.insert(0, DEFAULT_COMMAND)
    namespace = vars(parser().parse_args(arguments))
    command = namespace.pop("command")
    return command, namespace


def environment_variable(setting: str) -> str:
    """The environment variable a setting is read from."""
    return setting.upper()


def _add(sub: argparse.ArgumentParser, option: Option) -> None:
    field = RelaySettings.model_fields[option.setting]
    env = environment_variable(option.setting)
    default = str(field.default).lower() if isinstance(field.default, bool) else field.default
    shown_default = "" if default in (None, "") else f", default {default}"
    kwargs: dict[str, Any] = {
        "dest": option.setting,
        # Unset options stay out of the namespace, so the environment decides.
        "default": argparse.SUPPRESS,
        "help": f"{option.help} [env {env}{shown_default}]",
    }
    annotation = field.annotation
    choices = typing.get_args(annotation) if typing.get_origin(annotation) is typing.Literal else ()
    if annotation is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif choices:
        kwargs["choices"] = choices
    else:
        kwargs["metavar"] = option.metavar
        kwargs["type"] = annotation if annotation in (int, float) else str
    sub.add_argument(option.flag, **kwargs)


def _environment_only_epilog(command: Command) -> str:
    lines = ["from the environment only:"]
    lines += [
        f"  {environment_variable(setting):<24}{_ENVIRONMENT_ONLY_HELP[setting]}"
        for setting in command.environment_only
    ]
    return (
        "\n".join(lines) + "\n\nEvery setting can also come from .env (DIE_HARD_ENV_FILE names another file)."
    )
