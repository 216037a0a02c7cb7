"""`python -m relay` / `relay`: command line, settings, then logging, then the event loop.

relay [run]      run the daemon
relay migrate    create the ClickHouse table and view (idempotent)
relay check      check the ClickHouse table and exit
relay reconcile [--since DURATION]
                 compare the archive of delivered events with ClickHouse, send
                 again what ClickHouse lost; the last line printed is JSON
relay replay --since TIME [--until TIME] [--event-type TYPES]
                 send archived events of a time window to ClickHouse again;
                 the last line printed is JSON
relay expire     delete events older than EVENT_LOG_RETENTION_DAYS (servers without TTL)
relay --version, relay COMMAND --help (options and their environment variables: `relay.cli`)

Each command is one function: `relay.app.run`, the others in `relay.commands`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import uvloop

from relay import app, cli, commands
from relay.core.observer import Observer
from relay.settings import RelaySettings
from shared.logging import configure_logging
from shared.sentry import init_sentry
from shared.settings import ConfigurationError, load


def main(argv: list[str] | None = None, *, observers: Sequence[Observer] = ()) -> int:
    """Entry point of the relay's command line; `observers` also hear what the relay does."""
    command, overrides = cli.parse(sys.argv[1:] if argv is None else argv)
    since = overrides.pop("since", None)
    until = overrides.pop("until", None)
    event_types = overrides.pop("event_types", ())
    try:
        settings = load(RelaySettings, **overrides)
    except ConfigurationError as error:
        print(f"relay: {error}", file=sys.stderr)
        return app.EXIT_CONFIG
    configure_logging(level=settings.log_level, log_format=settings.log_format)
    init_sentry(settings, component="relay")
    start = datetime.now(UTC) - since if isinstance(since, timedelta) else since
    run: dict[str, Callable[[], Coroutine[Any, Any, int]]] = {
        "run": lambda: app.run(settings, observers=observers),
        "migrate": lambda: commands.migrate(settings),
        "check": lambda: commands.check(settings),
        "reconcile": lambda: commands.reconcile(settings, since=start),
        "replay": lambda: commands.replay(settings, since=start, until=until, event_types=event_types),
        "expire": lambda: commands.expire(settings),
    }
    return uvloop.run(run[command]())


if __name__ == "__main__":
    sys.exit(main())
