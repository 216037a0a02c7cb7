"""The relay's settings: what every process shares, and the relay's own `RELAY_*` knobs."""

from __future__ import annotations

from pydantic import Field

from shared.settings import CommonSettings


class RelaySettings(CommonSettings):
    """Settings of the relay daemon; its own knobs are named `RELAY_*`."""

    relay_batch_size: int = Field(default=20_000, ge=1, le=100_000)
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
