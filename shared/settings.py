"""Settings both sides read from the environment (and `.env`), and how to load them.

Each side extends `CommonSettings` with its own knobs where it lives: the web
site and the Celery worker in `webapp.config.env.WebSettings`, the relay in
`relay.settings.RelaySettings`. Every process builds one of them once, at
start-up, with `load`; a missing or malformed variable fails start-up with a
message naming it.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_FILE = os.environ.get("DIE_HARD_ENV_FILE", ".env")


class ConfigurationError(RuntimeError):
    """The environment does not describe a runnable configuration."""


class CommonSettings(BaseSettings):
    """Settings every process shares: where the databases are, how to log, Sentry."""

    model_config = SettingsConfigDict(
        env_file=ENV_FILE,
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        # Fields with a second name (SENTRY_DSN) still take their own, in code and tests.
        validate_by_name=True,
    )

    debug: bool = False
    environment: str = "Local"

    database_url: str = "postgres://postgres@127.0.0.1:5432/diehard"
    # The owner of the site's tables: migrations and grants (`make migrate`),
    # and the databases the tests and benchmarks create; unset: DATABASE_URL.
    database_admin_url: str | None = None
    redis_url: str = "redis://127.0.0.1:6379/0"

    clickhouse_host: str = "127.0.0.1"
    clickhouse_port: int = 8123
    clickhouse_user: str = "default"
    clickhouse_password: SecretStr = SecretStr("")
    clickhouse_database: str = "default"
    clickhouse_secure: bool = False

    # SENTRY_CONFIG_DSN, or the name the Sentry SDK itself reads; the first wins when both are set.
    sentry_config_dsn: str | None = Field(
        default=None, validation_alias=AliasChoices("sentry_config_dsn", "sentry_dsn")
    )
    sentry_config_environment: str | None = None
    # What Sentry groups errors and regressions by; unset: `die-hard@<package version>`.
    sentry_release: str | None = None
    # A tenth of requests and batches: enough for latency percentiles on a busy
    # site, without a trace (and its quota) for every request; raise it on a quiet one.
    sentry_traces_sample_rate: float = Field(default=0.1, ge=0.0, le=1.0)

    log_level: str = "INFO"
    log_format: Literal["auto", "console", "json"] = "auto"

    @property
    def clickhouse_url(self) -> str:
        """HTTP(S) endpoint of the ClickHouse server."""
        scheme = "https" if self.clickhouse_secure else "http"
        return f"{scheme}://{self.clickhouse_host}:{self.clickhouse_port}/"

    @property
    def postgres_admin_dsn(self) -> str:
        """Where schema changes and database creation connect: the owner's URL when there is one."""
        return self.database_admin_url or self.database_url

    def require(self, *names: str) -> None:
        """Fail unless each named variable was given in the environment or `.env`."""
        missing = [name.upper() for name in names if name not in self.model_fields_set]
        if missing:
            raise ConfigurationError(
                f"missing required environment variable(s) in production mode: {', '.join(missing)}"
            )


def load[T: CommonSettings](kind: type[T], **overrides: Any) -> T:
    """Read settings of the given kind (`overrides` win over the environment), with one clear error."""
    try:
        return kind(**overrides)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']).upper() or 'settings'}: {item['msg']}"
            for item in error.errors()
        )
        raise ConfigurationError(f"invalid configuration: {problems}") from error
