"""The web site's settings (Django and the Celery worker): what every process shares, and its own."""

from __future__ import annotations

from functools import cached_property
from typing import Annotated, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import NoDecode

from shared.settings import CommonSettings


class WebSettings(CommonSettings):
    """Settings of the Django site and the Celery worker."""

    secret_key: SecretStr = SecretStr("")
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["127.0.0.1", "localhost"])
    csrf_trusted_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
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
