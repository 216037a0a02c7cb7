"""The backing services `make services` brings up on 127.0.0.1: PostgreSQL, Redis and ClickHouse.

A service that already answers is used as it is and is never stopped by
`down`; whatever is started here keeps its logs under `.services/<service>/`.
"""

from __future__ import annotations

from collections.abc import Sequence

from devservices.clickhouse import Installation, Instance, version
from devservices.postgres import Postgres
from devservices.process import HOST, ServiceError, say
from devservices.redis import Redis
from devservices.settings import ServicesSettings

SERVICE_NAMES = ("postgres", "redis", "clickhouse")


class Backing:
    """The three services the settings describe."""

    def __init__(self, settings: ServicesSettings) -> None:
        self.settings = settings
        self.postgres = Postgres(settings.postgres_port, settings.postgres_user, settings.postgres_db)
        self.redis = Redis(settings.redis_port)
        self.clickhouse = Instance(
            settings.clickhouse_name,
            settings.clickhouse_port,
            settings.clickhouse_tcp_port,
            Installation(settings.clickhouse_home),
            log_level=settings.clickhouse_log_level,
        )

    def up(self) -> None:
        """Start whatever does not answer yet (idempotent)."""
        self.postgres.up()
        self.redis.up()
        if self.clickhouse.answers():
            say(
                f"clickhouse: already running on {HOST}:{self.clickhouse.http_port} (http),"
                f" {version(self.clickhouse.http_port)}"
            )
        else:
            self.clickhouse.start()
        postgres, redis = self.postgres, self.redis
        say(
            f"services: up (postgres://{postgres.user}@{HOST}:{postgres.port}/{postgres.database},"
            f" redis://{HOST}:{redis.port}/0, http://{HOST}:{self.clickhouse.http_port})"
        )

    def answering(self) -> dict[str, tuple[bool, int]]:
        """Whether each service answers, and on which port."""
        return {
            "postgres": (self.postgres.answers(), self.postgres.port),
            "redis": (self.redis.answers(), self.redis.port),
            "clickhouse": (self.clickhouse.answers(), self.clickhouse.http_port),
        }

    def status(self) -> bool:
        """Say what answers (`<service>: not answering on …` for what does not); whether all do."""
        answering = self.answering()
        for service, (answers, port) in answering.items():
            say(f"{service}: {'running' if answers else 'not answering'} on {HOST}:{port}")
        return all(answers for answers, _ in answering.values())

    def down(self, services: Sequence[str] = ()) -> None:
        """Stop the services named (all by default), each only if it was started here.

        `make run` names just the ones it started, so a service an earlier
        `make services` started keeps running. The clients go first, the
        database last, whatever order they were named in.
        """
        for service in services:
            if service not in SERVICE_NAMES:
                raise ServiceError(f"unknown service: {service} (postgres, redis or clickhouse)")
        wanted = services or SERVICE_NAMES
        if "clickhouse" in wanted:
            # Only the instance whose pid file this checkout holds.
            self.clickhouse.stop()
        if "redis" in wanted:
            self.redis.down()
        if "postgres" in wanted:
            self.postgres.down()
