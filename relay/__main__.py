"""`python -m relay` / `relay`: settings, then logging, then the event loop.

relay            run the daemon
relay migrate    create the ClickHouse table and view (idempotent)
relay check      check the ClickHouse table and exit
relay reconcile [--since DURATION]
                 compare the archive of delivered events with ClickHouse, send
                 again what ClickHouse lost; the last line printed is JSON
relay expire     delete events older than EVENT_LOG_RETENTION_DAYS (servers without TTL)
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

import aiohttp
import structlog
import uvloop

from relay import app, schema
from relay.clickhouse import DeliveryError
from relay.observer import Observer
from relay.settings import RelaySettings, parse_duration
from shared.logging import configure_logging
from shared.sentry import init_sentry
from shared.settings import ConfigurationError, load


def main(argv: list[str] | None = None, *, observers: Sequence[Observer] = ()) -> int:
    """Entry point of the relay's command line; `observers` also hear what the relay does."""
    parser = argparse.ArgumentParser(prog="relay", description="Outbox relay: PostgreSQL to ClickHouse.")
    parser.add_argument(
        "command", nargs="?", default="run", choices=("run", "migrate", "check", "expire", "reconcile")
    )
    parser.add_argument(
        "--since",
        type=parse_duration,
        metavar="DURATION",
        help="reconcile: check the hours from this long ago (e.g. 6h, 2d); default: all the archive keeps",
    )
    arguments = parser.parse_args(argv)
    command = arguments.command
    try:
        settings = load(RelaySettings)
    except ConfigurationError as error:
        print(f"relay: {error}", file=sys.stderr)
        return app.EXIT_MISCONFIGURED
    configure_logging(level=settings.log_level, log_format=settings.log_format)
    init_sentry(settings, component="relay")
    if command == "migrate":
        return uvloop.run(app.migrate(settings))
    if command == "expire":
        return uvloop.run(app.expire(settings))
    if command == "check":
        return uvloop.run(_check(settings))
    if command == "reconcile":
        since = datetime.now(UTC) - arguments.since if arguments.since is not None else None
        return uvloop.run(app.reconcile(settings, since=since))
    return uvloop.run(app.run(settings, observers=observers))


async def _check(settings: RelaySettings) -> int:
    async with aiohttp.ClientSession() as session:
        sink = app.clickhouse_sink(session, settings)
        try:
            shape = await schema.inspect(sink, settings.clickhouse_database)
        except schema.SchemaError as error:
            structlog.get_logger("relay").error("clickhouse_schema_invalid", problem=str(error))
            return app.EXIT_MISCONFIGURED
        except DeliveryError as error:
            structlog.get_logger("relay").error("clickhouse_unavailable", error_kind=error.kind)
            return app.EXIT_FAILED
    structlog.get_logger("relay").info("clickhouse_schema_ok", timestamp_precision=shape.timestamp_precision)
    return app.EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
