"""Configuration read from the environment (and `.env`) once, in one place.

Every process builds one of these objects at start-up: the web site a
`WebSettings`, the relay a `RelaySettings`, the Celery worker a `WebSettings`.
A missing or malformed variable fails start-up with a message naming it.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from functools import cached_property
from typing import Annotated, Literal, Self
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_FILE = os.environ.get("DIE_HARD_ENV_FILE", ".env")


class ConfigurationError(RuntimeError):
    """The environment does not describe a runnable configuration."""


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


class CommonSettings(BaseSettings):
    """Settings every process shares: where the databases are, how to log, Sentry."""

    model_config = SettingsConfigDict(
        env_file=ENV_FILE,
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
    )

    debug: bool = False
    environment: str = "Local"

    database_url: str = "postgres://postgres@127.0.0.1:5432/diehard"
    redis_url: str = "redis://127.0.0.1:6379/0"

    clickhouse_host: str = "127.0.0.1"
    clickhouse_port: int = 8123
    clickhouse_user: str = "default"
    clickhouse_password: SecretStr = SecretStr("")
    clickhouse_database: str = "default"
    clickhouse_secure: bool = False

    sentry_config_dsn: str | None = None
    sentry_config_environment: str | None = None
    sentry_traces_sample_rate: float = Field(default=1.0, ge=0.0, le=1.0)

    log_level: str = "INFO"
    log_format: Literal["auto", "console", "json"] = "auto"

    @property
    def clickhouse_url(self) -> str:
        """HTTP(S) endpoint of the ClickHouse server."""
        scheme = "https" if self.clickhouse_secure else "http"
        return f"{scheme}://{self.clickhouse_host}:{self.clickhouse_port}/"

    @property
    def database_name(self) -> str:
        """Name of the PostgreSQL database in `DATABASE_URL`."""
        return urlsplit(self.database_url).path.lstrip("/")

    def require(self, *names: str) -> None:
        """Fail unless each named variable was given in the environment or `.env`."""
        missing = [name.upper() for name in names if name not in self.model_fields_set]
        if missing:
            raise ConfigurationError(
                f"missing required environment variable(s) in production mode: {', '.join(missing)}"
            )


class WebSettings(CommonSettings):
    """Settings of the Django site and the Celery worker."""

    secret_key: SecretStr = SecretStr("")
    allowed_hosts: Annotated[list[str], NoDecode] = ["127.0.0.1", "localhost"]
    csrf_trusted_origins: Annotated[list[str], NoDecode] = []
    secure_ssl_redirect: bool = True
    secure_hsts_seconds: int = 31_536_000

    default_from_email: str = "Die Hard <no-reply@example.com>"
    email_host: str = ""
    email_port: int = 587
    email_host_user: str = ""
    email_host_password: SecretStr = SecretStr("")
    email_use_tls: bool = True

    health_lag_threshold_seconds: float = 60.0
    health_pending_threshold: int = 100_000

    @model_validator(mode="before")
    @classmethod
    def _split_lists(cls, data: object) -> object:
        if isinstance(data, dict):
            for key in ("allowed_hosts", "csrf_trusted_origins"):
                for candidate in (key, key.upper()):
                    value = data.get(candidate)
                    if isinstance(value, str):
                        data[candidate] = [item.strip() for item in value.split(",") if item.strip()]
        return data

    @model_validator(mode="after")
    def _production_needs_secrets(self) -> Self:
        if not self.debug:
            self.require("secret_key", "database_url", "allowed_hosts")
        return self

    @cached_property
    def development_secret_key(self) -> str:
        """A fixed, clearly insecure key for development when none is set."""
        return self.secret_key.get_secret_value() or "insecure-development-key-do-not-use-in-production"


class RelaySettings(CommonSettings):
    """Settings of the relay daemon; its own knobs are named `RELAY_*`."""

    relay_batch_size: int = Field(default=20_000, ge=1, le=100_000)
    # Most bytes of TSV one insert carries; a single event larger than this is dead-lettered.
    relay_batch_max_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    relay_concurrency: int = Field(default=2, ge=1, le=32)
    relay_poll_interval: float = Field(default=1.0, gt=0)
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
    relay_archive_retention: Duration = timedelta(hours=24)
    # How often the relays compare the archive with ClickHouse; 0: never (by themselves).
    relay_reconcile_interval: Duration = timedelta(minutes=10)
    # Test-only fault injection between ClickHouse's acknowledgement and the
    # PostgreSQL commit: "kill_after_ack" kills the process with SIGKILL,
    # "pause_after_ack" holds the batch open for RELAY_FAULT_PAUSE seconds.
    relay_fault_point: Literal["", "kill_after_ack", "pause_after_ack"] = ""
    relay_fault_pause: float = Field(default=3.0, ge=0)


def load[T: CommonSettings](kind: type[T]) -> T:
    """Read settings of the given kind, turning validation errors into one clear message."""
    try:
        return kind()
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']).upper() or 'settings'}: {item['msg']}"
            for item in error.errors()
        )
        raise ConfigurationError(f"invalid configuration: {problems}") from error
