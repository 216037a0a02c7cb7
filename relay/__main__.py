"""`python -m relay` / `relay`: command line, settings, then logging, then the event loop.

relay [run]      run the daemon
relay migrate    create the ClickHouse table and view (idempotent)
relay check      check the ClickHouse table and exit
relay reconcile [--since DURATION]
                 compare the archive of delivered events with ClickHouse, send
                 again what ClickHouse lost; the last line printed is JSON
relay expire     delete events older than EVENT_LOG_RETENTION_DAYS (servers without TTL)
relay --version, relay COMMAND --help (options and their environment variables: `relay.cli`)
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import UTC, datetime

import aiohttp
import structlog
import uvloop

from relay import app, cli
from relay.core import schema
from relay.core.clickhouse import DeliveryError
from relay.core.observer import Observer
from relay.settings import RelaySettings
from shared.logging import configure_logging
from shared.sentry import init_sentry
from shared.settings import ConfigurationError, load


def main(argv: list[str] | None = None, *, observers: Sequence[Observer] = ()) -> int:
    """Entry point of the relay's command line; `observers` also hear what the relay does."""
    command, overrides = cli.parse(sys.argv[1:] if argv is None else argv)
    since = overrides.pop("since", None)
    try:
        settings = load(RelaySettings, **overrides)
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
        start = datetime.now(UTC) - since if since is not None else None
        return uvloop.run(app.reconcile(settings, since=start))
    return uvloop.run(app.run(settings, observers=observers))


async def _check(settings: RelaySettings) -> int:
    async with aiohttp.ClientSession() as session:
        sink = app.clickhouse_sink(session, settings)
        try:
            shape = await schema.inspect(sink, settings.clickhouse_database)
            if settings.clickhouse_cluster:
                await schema.inspect_cluster(sink, settings.clickhouse_database, settings.clickhouse_cluster)
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
