"""The relay's settings: what every process shares, and the relay's own `RELAY_*` knobs."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, Field, SecretStr, field_validator

from shared.settings import CommonSettings

_HOST_PORT = re.compile(r"(?P<host>[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:]+\])(:(?P<port>\d{1,5}))?")
_DURATION = re.compile(r"(?P<amount>\d+(?:\.\d+)?)\s*(?P<unit>s|m|h|d)?")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """`90s`, `15m`, `24h`, `7d` or plain seconds (`0` switches the feature off)."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        raise ValueError(f"not a duration: {text!r} (examples: 90s, 15m, 24h, 7d, 0)")
    return timedelta(seconds=float(match["amount"]) * _UNIT_SECONDS[match["unit"] or "s"])


def _duration(value: object) -> object:
    return parse_duration(value) if isinstance(value, str) else value


Duration = Annotated[timedelta, BeforeValidator(_duration)]


class RelaySettings(CommonSettings):
    """Settings of the relay daemon; its own knobs are named `RELAY_*`."""

    # A replicated cluster: its name (as in the servers' `remote_servers`), and
    # the replicas the relay may send to, in order of preference.
    clickhouse_cluster: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    clickhouse_hosts: str = ""
    relay_insert_quorum: int | None = Field(default=None, ge=0, le=16)

    relay_batch_size: int = Field(default=20_000, ge=1, le=100_000)
    # Most bytes of TSV one insert carries; a single event larger than this is dead-lettered.
    relay_batch_max_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    relay_concurrency: int = Field(default=2, ge=1, le=32)
    relay_poll_interval: float = Field(default=1.0, gt=0)
    # Looks at the outbox while events are flowing, between notifications: the
    # longest an event waits to be claimed. Shorter costs more empty claims.
    relay_recheck_interval: float = Field(default=0.01, gt=0, le=1.0)
    # Whether the relay's commits (deleting delivered events) wait for the WAL
    # flush. Off: a crash of PostgreSQL may re-deliver, never lose, events.
    relay_synchronous_commit: bool = False
    relay_backoff_initial: float = Field(default=0.2, gt=0)
    relay_backoff_max: float = Field(default=30.0, gt=0)
    relay_clickhouse_timeout: float = Field(default=10.0, gt=0)
    relay_postgres_timeout: float = Field(default=30.0, gt=0)
    relay_shutdown_grace: float = Field(default=15.0, ge=0)
    relay_http_host: str = "127.0.0.1"
    relay_http_port: int = Field(default=8001, ge=0, le=65535)
    relay_stats_interval: float = Field(default=5.0, gt=0)
    relay_readiness_timeout: float = Field(default=2.0, gt=0)
    relay_liveness_timeout: float = Field(default=30.0, gt=0)
    # How long delivered events are kept in PostgreSQL for reconciliation; 0: not kept.
    # Duration defaults are written as an operator writes them, so `--help` shows them so.
    relay_archive_retention: Duration = Field(default="24h", validate_default=True)
    # How often the relays compare the archive with ClickHouse; 0: never (by themselves).
    relay_reconcile_interval: Duration = Field(default="10m", validate_default=True)
    # Reconciliation checks events dated and delivered longer ago than this (a
    # ClickHouse replica or a batch in flight may lack the newer ones for a moment).
    relay_reconcile_settle: Duration = Field(default="1m", validate_default=True)

    # Events older than this many days leave `event_log` (ClickHouse TTL, or
    # `relay expire` on servers without TTL); 0 keeps them forever.
    event_log_retention_days: int = Field(default=395, ge=0)

    # The relay's own PostgreSQL role (read and delete the outbox, write dead
    # letters); unset: DATABASE_URL.
    relay_database_url: str | None = None
    # `relay migrate` runs DDL as this ClickHouse user; unset: CLICKHOUSE_USER.
    clickhouse_admin_user: str | None = None
    clickhouse_admin_password: SecretStr | None = None

    @property
    def postgres_dsn(self) -> str:
        """Where the relay's PostgreSQL connections go, as its own role when it has one."""
        return self.relay_database_url or self.database_url

    @property
    def clickhouse_admin(self) -> tuple[str, SecretStr]:
        """The user and password `relay migrate` creates the schema with."""
        if self.clickhouse_admin_user is None:
            return self.clickhouse_user, self.clickhouse_password
        return self.clickhouse_admin_user, self.clickhouse_admin_password or SecretStr("")

    @field_validator("clickhouse_cluster", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("relay_insert_quorum", mode="before")
    @classmethod
    def _blank_quorum_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("clickhouse_hosts")
    @classmethod
    def _hosts_are_host_port_pairs(cls, value: str) -> str:
        for entry in _split(value):
            if not _HOST_PORT.fullmatch(entry):
                raise ValueError(f"{entry!r} is not host or host:port")
        return value

    @property
    def clickhouse_urls(self) -> list[str]:
        """HTTP(S) endpoints of every replica the relay may use: `CLICKHOUSE_HOSTS`, else the one server."""
        entries = _split(self.clickhouse_hosts)
        if not entries:
            return [self.clickhouse_url]
        scheme = "https" if self.clickhouse_secure else "http"
        urls = []
        for entry in entries:
            match = _HOST_PORT.fullmatch(entry)
            assert match is not None  # checked by the validator
            urls.append(f"{scheme}://{match['host']}:{match['port'] or self.clickhouse_port}/")
        return urls


def _split(hosts: str) -> list[str]:
    return [entry.strip() for entry in hosts.split(",") if entry.strip()]
