"""The relay's command line: sub-commands, their options, and the environment variable behind each.

Every option overrides one setting for this run; each setting keeps its
environment variable (shown in `--help`), which stays the usual way to
configure a deployment. Secrets are read from the environment only, so they
never appear in a process list.
"""

from __future__ import annotations

import argparse
import re
import textwrap
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from typing import Any

from relay.settings import RelaySettings, parse_duration
from shared.events import published_schemas

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
    Option(
        "sentry_release",
        "--sentry-release",
        "the release Sentry reports name (die-hard@VERSION if unset)",
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
    Option(
        "relay_reconcile_settle",
        "--reconcile-settle",
        "reconciliation checks events dated and delivered longer ago than this (e.g. 1m)",
        "DURATION",
    ),
)
_BATCHES = (
    Option("relay_batch_size", "--batch-size", "most events per ClickHouse insert", "EVENTS"),
    Option("relay_batch_max_bytes", "--batch-max-bytes", "most bytes per ClickHouse insert", "BYTES"),
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


def parse_moment(text: str) -> datetime:
    """An ISO 8601 time (UTC unless it names its zone), or a duration before now (`6h`, `2d`)."""
    try:
        return datetime.now(UTC) - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a time: {text!r} (examples: 2026-12-01T09:00Z, 2026-12-01, 6h, 2d)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_event_types(text: str) -> tuple[str, ...]:
    """Comma-separated event types, each one the contract has published."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = sorted(set(names) - set(published_schemas()))
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown event type {', '.join(unknown) or repr(text)}; known: {', '.join(published_schemas())}"
        )
    return names


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
    required: tuple[str, ...] = ()


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
        "replay",
        "send the archived events of a time window to ClickHouse again (to fill a new, rebuilt or "
        "additional cluster), in batches through the relay's own insert; idempotent: the deduplicated view "
        "hides copies; the last line printed is JSON; exit 0 when the archive still held the whole window",
        _BATCHES + _CLICKHOUSE + _OBSERVABILITY,
        ("database_url", "relay_database_url", "clickhouse_password", "sentry_config_dsn"),
        (
            Argument(
                "--since",
                "since",
                "events from this time on: an ISO 8601 time (UTC unless it says), or how long ago (e.g. 6h)",
                "TIME",
                parse_moment,
            ),
            Argument(
                "--until",
                "until",
                "events before this time (same forms); default: now",
                "TIME",
                parse_moment,
            ),
            Argument(
                "--event-type",
                "event_types",
                "only these event types, comma-separated (e.g. user_created,user_logged_in); default: all",
                "TYPES",
                parse_event_types,
            ),
        ),
        required=("--since",),
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
        "check event_log against what the relay sends; exit 65 if missing or incompatible",
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
    "database_url": "PostgreSQL with the outbox (a URL; may hold a password)",
    "relay_database_url": "the relay's own PostgreSQL role (DATABASE_URL if unset)",
    "clickhouse_password": "ClickHouse password",
    "clickhouse_admin_password": "password of CLICKHOUSE_ADMIN_USER",
    "sentry_config_dsn": "Sentry is on when set (SENTRY_DSN is read too)",
}


# One line per entry: the help formatter wraps each to the terminal, under its own text.
EXIT_CODES = (
    "exit codes:\n"
    "  0   done (run: stopped cleanly; reconcile: ClickHouse is complete; replay: the archive held"
    " the whole window)\n"
    "  1   failed, may work later (a database down, a part died, events missing)\n"
    "  2   usage: the command line is wrong\n"
    "  65  schema: event_log missing, incompatible or not replicated, or a quorum larger than the"
    " shard: run `relay migrate` or fix the cluster\n"
    "  78  configuration: a setting is missing or malformed"
)
# A table row: an indented term, then its text after two spaces or more.
_TABLE_ROW = re.compile(r"^(\s*\S+\s{2,})\S")


class _HelpFormatter(argparse.HelpFormatter):
    """Wraps each line of an option's help on its own, so `[env NAME, default D]` stays whole on its
    line, and each line of a multi-line epilog on its own, a table row's continuation under its
    text rather than under its term."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return [line for paragraph in text.splitlines() for line in super()._split_lines(paragraph, width)]

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" not in text:
            return super()._fill_text(text, width, indent)
        return "\n".join(_fill_line(line, width, indent) for line in text.splitlines())


def _fill_line(line: str, width: int, indent: str) -> str:
    if not line.strip():
        return ""
    row = _TABLE_ROW.match(line)
    hanging = len(row.group(1)) if row else len(line) - len(line.lstrip())
    return textwrap.fill(
        line,
        width,
        initial_indent=indent,
        subsequent_indent=indent + " " * hanging,
        drop_whitespace=True,
        break_on_hyphens=False,
        break_long_words=False,
    )


def parser() -> argparse.ArgumentParser:
    """The whole command line."""
    root = argparse.ArgumentParser(
        prog=PROG,
        description="Outbox relay: carries events from PostgreSQL to ClickHouse.",
        epilog=f"Without a command, `{PROG}` runs the daemon; `{PROG} COMMAND --help` lists its"
        f" options.\n\n{EXIT_CODES}",
        formatter_class=_HelpFormatter,
    )
    root.add_argument("--version", action="version", version=f"{PROG} {version('die-hard')}")
    commands = root.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        sub = commands.add_parser(
            command.name,
            help=command.help,
            description=command.help[0].upper() + command.help[1:] + ".",
            epilog=_environment_only_epilog(command),
            formatter_class=_HelpFormatter,
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
                required=argument.flag in command.required,
                help=argument.help,
            )
    return root


def parse(argv: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """The command to run and the settings the options override (plus the command's own arguments,
    under their `dest`); exits 2 (usage) on a usage error."""
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
        # A line of its own, never broken (_HelpFormatter).
        "help": f"{option.help}\n[env {env}{shown_default}]",
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
        if annotation is timedelta:
            # Kept as written (`24h`): the settings parse it, and name the setting when it is wrong.
            kwargs["type"] = str
    sub.add_argument(option.flag, **kwargs)


def _environment_only_epilog(command: Command) -> str:
    names = [environment_variable(setting) for setting in command.environment_only]
    width = max(map(len, names)) + 2
    lines = ["from the environment only:"]
    lines += [
        f"  {name:<{width}}{_ENVIRONMENT_ONLY_HELP[setting]}"
        for name, setting in zip(names, command.environment_only, strict=True)
    ]
    lines += ["", "Every setting can also come from .env (DIE_HARD_ENV_FILE names another file)."]
    lines += ["", EXIT_CODES]
    return "\n".join(lines)
