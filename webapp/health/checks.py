"""Readiness probes of the site's dependencies, as django-health-check checks.

django-health-check runs the checks concurrently, each within its own timeout,
and turns any unexpected exception into a generic error (logged, never shown).
Every probe only reads: `SELECT 1`, `PING`, and one query on the outbox. Every
PostgreSQL statement carries a `statement_timeout` shorter than the probe's, so
the server cancels a slow query itself instead of running it on after the
probe gave up.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import redis.asyncio
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db import Error as DatabaseError
from health_check.base import HealthCheck, HealthCheckResult
from health_check.contrib.redis import Redis as RedisCheck
from health_check.exceptions import ServiceUnavailable, ServiceWarning
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from shared.outbox import Backlog
from webapp.core.clickhouse import ClickHouseClient, ClickHouseError
from webapp.outbox.selectors import outbox_backlog

# Short enough for a load balancer's probe to get an answer before it gives
# up on us; a dependency slower than this is as good as down for a request.
PROBE_TIMEOUT = timedelta(seconds=2)
# The server gives up on a probe's statement before the probe gives up on the server.
STATEMENT_TIMEOUT_MS = int(PROBE_TIMEOUT.total_seconds() * 1000 * 3 / 4)


@contextlib.contextmanager
def _bounded_connection(alias: str) -> Iterator[None]:
    """A connection of the probe's own, in a transaction whose statements time out on the server."""
    connection = connections[alias]
    with connection.temporary_connection() as cursor, transaction.atomic(using=alias):
        cursor.execute(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}")
        yield


@dataclasses.dataclass
class Postgres(HealthCheck):
    """`SELECT 1` on a connection of its own, opened and closed for the probe."""

    alias: str = DEFAULT_DB_ALIAS
    timeout = PROBE_TIMEOUT

    def run(self) -> None:
        try:
            with _bounded_connection(self.alias), connections[self.alias].cursor() as cursor:
                cursor.execute("SELECT 1")
                answer = cursor.fetchone()
        except DatabaseError as error:
            raise ServiceUnavailable("no answer") from error
        if answer != (1,):
            raise ServiceUnavailable("unexpected answer")


class Redis(RedisCheck):
    """`PING` with a fresh client."""

    timeout = PROBE_TIMEOUT

    @classmethod
    def from_url(cls, url: str) -> Redis:
        """A check of the server at `url`."""
        seconds = PROBE_TIMEOUT.total_seconds()

        def client() -> redis.asyncio.Redis:
            # No retries: redis-py retries a refused connection with backoff by
            # default, which would turn a quick "unavailable" into a timeout.
            return redis.asyncio.Redis.from_url(
                url, socket_connect_timeout=seconds, socket_timeout=seconds, retry=Retry(NoBackoff(), 0)
            )

        return cls(client_factory=client)


@dataclasses.dataclass
class ClickHouse(HealthCheck):
    """`SELECT 1` over ClickHouse's HTTP interface, as the site's read-only user."""

    url: str
    user: str = dataclasses.field(default="default", repr=False)
    password: str = dataclasses.field(default="", repr=False)
    timeout = PROBE_TIMEOUT

    def run(self) -> None:
        client = ClickHouseClient(
            url=self.url, user=self.user, password=self.password, timeout=self.timeout.total_seconds()
        )
        try:
            answer = client.value("SELECT 1")
        except ClickHouseError as error:
            raise ServiceUnavailable("no answer") from error
        if answer != "1":
            raise ServiceUnavailable("unexpected answer")


@dataclasses.dataclass
class RelayBacklog(HealthCheck):
    """How far behind the relay is, from the outbox; a warning past the thresholds."""

    lag_threshold_seconds: float
    pending_threshold: int
    alias: str = DEFAULT_DB_ALIAS
    backlog: Backlog | None = dataclasses.field(default=None, init=False, repr=False)
    timeout = PROBE_TIMEOUT

    def run(self) -> None:
        try:
            with _bounded_connection(self.alias):
                # Counted just past the threshold: enough to tell "behind", never a full scan.
                self.backlog = outbox_backlog(cap=self.pending_threshold + 1, using=self.alias)
        except DatabaseError as error:
            raise ServiceUnavailable("outbox unreadable") from error
        if (
            self.backlog.oldest_pending_age_seconds > self.lag_threshold_seconds
            or self.backlog.pending_events > self.pending_threshold
        ):
            raise ServiceWarning("behind")


@dataclasses.dataclass(frozen=True, slots=True)
class Probes:
    """The site's checks by the name the report gives them."""

    postgres: Postgres
    redis: Redis
    clickhouse: ClickHouse
    relay: RelayBacklog

    @classmethod
    def from_settings(cls) -> Probes:
        """Probes of the configured services, with the configured relay thresholds."""
        return cls(
            postgres=Postgres(),
            redis=Redis.from_url(settings.REDIS_URL),
            clickhouse=ClickHouse(
                url=settings.CLICKHOUSE_URL,
                user=settings.CLICKHOUSE_USER,
                password=settings.CLICKHOUSE_PASSWORD,
            ),
            relay=RelayBacklog(
                lag_threshold_seconds=settings.HEALTH_LAG_THRESHOLD_SECONDS,
                pending_threshold=settings.HEALTH_PENDING_THRESHOLD,
            ),
        )

    async def run(self) -> dict[str, HealthCheckResult]:
        """Run every probe at once; return their results by name."""
        checks = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        # Threads of our own for the blocking probes (each opens and closes its
        # own connection), released without waiting: a probe past its timeout
        # keeps its thread until its client gives up, but not the response.
        executor = ThreadPoolExecutor(max_workers=len(checks), thread_name_prefix="health")
        try:
            results = await asyncio.gather(*(check.get_result(executor) for check in checks.values()))
        finally:
            executor.shutdown(wait=False, cancel_futures=True)
        return dict(zip(checks, results, strict=True))


def status_of(result: HealthCheckResult) -> str:
    """The one word the report shows for a result; the error's text stays in the logs."""
    if result.error is None:
        return "ok"
    if isinstance(result.error, ServiceWarning):
        return "degraded"
    # A probe that failed only once its whole budget was spent timed out (its
    # client's own timeout, or django-health-check's cut-off just after it).
    if result.time_taken >= result.check.timeout.total_seconds():
        return "timeout"
    return "unavailable"
