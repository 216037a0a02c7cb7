"""The web site's settings (Django and the Celery worker): what every process shares, and its own."""

from __future__ import annotations

import ipaddress
import re
from functools import cached_property
from typing import Annotated, Any, Self
from urllib.parse import urlsplit, urlunsplit

import dj_database_url
from pydantic import Field, SecretStr, model_validator
from pydantic_settings import NoDecode

from shared.settings import CommonSettings, ConfigurationError

SMTP_EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
CONSOLE_EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
# Backends that keep each message where others can read it instead of delivering it.
LEAKING_EMAIL_BACKENDS = frozenset(
    {
        CONSOLE_EMAIL_BACKEND,
        "django.core.mail.backends.filebased.EmailBackend",
        "django.core.mail.backends.locmem.EmailBackend",
    }
)

_HOST_PORT = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[^:\[\]]*)(?::(?P<port>\d{1,5}))?")
_DEFAULT_PORT = "5432"


def database_config(url: str, **options: Any) -> dj_database_url.DBConfig:
    """Django's `DATABASES` entry for `url`: dj-database-url's, plus URLs naming several hosts.

    `postgres://user@h1:5432,h2:5433/db?target_session_attrs=read-write`
    becomes `HOST` "h1,h2" and `PORT` "5432,5433", which libpq (through
    psycopg) tries in turn, keeping the first server that takes writes.
    dj-database-url refuses such URLs, so the hosts are taken out first.
    """
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if "," not in hosts:
        return dj_database_url.parse(url, **options)
    names: list[str] = []
    ports: list[str] = []
    for entry in hosts.split(","):
        match = _HOST_PORT.fullmatch(entry.strip())
        if match is None or not match["host"]:
            raise ValueError(f"DATABASE_URL: {entry!r} is not host or host:port")
        names.append(match["host"].strip("[]"))
        ports.append(match["port"] or _DEFAULT_PORT)
    config = dj_database_url.parse(urlunsplit(parts._replace(netloc=f"{userinfo}{at}{names[0]}")), **options)
    config["HOST"] = ",".join(names)
    config["PORT"] = ",".join(ports)
    return config


class WebSettings(CommonSettings):
    """Settings of the Django site and the Celery worker."""

    secret_key: SecretStr = SecretStr("")
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["127.0.0.1", "localhost"])
    csrf_trusted_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    secure_ssl_redirect: bool = True
    secure_hsts_seconds: int = 31_536_000
    secure_hsts_include_subdomains: bool = True
    secure_hsts_preload: bool = False

    default_from_email: str = "Die Hard <no-reply@example.com>"
    # Production mode needs a transport that delivers: EMAIL_HOST (SMTP), or an
    # EMAIL_BACKEND chosen on purpose. Unset in development: the console backend.
    email_backend: str = ""
    email_host: str = ""
    email_port: int = 587
    email_host_user: str = ""
    email_host_password: SecretStr = SecretStr("")
    email_use_tls: bool = True
    mail_dispatch_interval: float = Field(default=10.0, gt=0)

    # The site reads ClickHouse (health probe, activity page) as a read-only
    # user; unset: CLICKHOUSE_USER / CLICKHOUSE_PASSWORD.
    clickhouse_reader_user: str | None = None
    clickhouse_reader_password: SecretStr | None = None

    # The worker erases deleted accounts' events from ClickHouse as this user
    # (it needs ALTER DELETE on event_log); unset: CLICKHOUSE_USER / CLICKHOUSE_PASSWORD.
    clickhouse_eraser_user: str | None = None
    clickhouse_eraser_password: SecretStr | None = None

    health_lag_threshold_seconds: float = 60.0
    health_pending_threshold: int = 100_000
    health_cache_seconds: float = Field(default=5.0, ge=0)

    # Networks of the reverse proxies in front of the site: only a peer in one
    # of them has its X-Forwarded-For and X-Forwarded-Proto read. Empty: none is
    # trusted, REMOTE_ADDR is the client.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Replaced by TRUSTED_PROXIES: a count trusted the headers of any peer.
    trusted_proxy_count: int = 0
    # Callers from these networks (by client address) see /health/ in detail and /metrics.
    internal_networks: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.0/8", "::1/128"]
    )

    # Sign-in: this many failures for one account, or from one address, lock
    # it out for the cool-off (every further try during it restarts the cool-off).
    throttle_sign_in_failures: int = Field(default=10, ge=1)
    # Failures for one account from one client address: that pair is locked
    # sooner, so one guesser is stopped before the account is locked for everyone.
    throttle_sign_in_pair_failures: int = Field(default=5, ge=1)
    # Failures from one client address, whatever the accounts: far higher, since
    # a NAT, a campus or a proxy puts many people behind one address.
    throttle_sign_in_address_failures: int = Field(default=100, ge=1)
    # IPv6 clients are counted by their network of this size (a subscriber's /64).
    throttle_ipv6_prefix: int = Field(default=64, ge=32, le=128)
    throttle_sign_in_cooloff_minutes: float = Field(default=15.0, gt=0)
    # Sign-ups per client address, as django-ratelimit's "<count>/<period>" (s, m, h, d).
    throttle_sign_up_rate: str = Field(default="20/h", pattern=r"^\d+/\d*[smhd]$")
    # Password-reset requests per client address, and per address a link is
    # asked for (whoever asks, account or not), in the same format.
    throttle_password_reset_rate: str = Field(default="20/h", pattern=r"^\d+/\d*[smhd]$")
    throttle_password_reset_address_rate: str = Field(default="3/h", pattern=r"^\d+/\d*[smhd]$")
    # Verification links an account may ask to be sent again, in the same format.
    throttle_email_verification_rate: str = Field(default="3/h", pattern=r"^\d+/\d*[smhd]$")

    # Activity page views per signed-in account (each one queries ClickHouse), same format.
    throttle_activity_rate: str = Field(default="30/m", pattern=r"^\d+/\d*[smhd]$")

    # The activity page: how long it waits for ClickHouse, and events per page.
    activity_query_timeout: float = Field(default=3.0, gt=0)
    activity_page_size: int = Field(default=20, ge=1, le=200)

    @model_validator(mode="before")
    @classmethod
    def _split_lists(cls, data: object) -> object:
        if isinstance(data, dict):
            for key in ("allowed_hosts", "csrf_trusted_origins", "internal_networks", "trusted_proxies"):
                for candidate in (key, key.upper()):
                    value = data.get(candidate)
                    if isinstance(value, str):
                        data[candidate] = [item.strip() for item in value.split(",") if item.strip()]
        return data

    @model_validator(mode="after")
    def _proxies_by_network(self) -> Self:
        if self.trusted_proxy_count:
            raise ConfigurationError(
                "TRUSTED_PROXY_COUNT is replaced by TRUSTED_PROXIES: list the networks of the proxies"
                " in front of the site (e.g. TRUSTED_PROXIES=10.0.0.0/8); only they may set X-Forwarded-For"
            )
        for network in (*self.trusted_proxies, *self.internal_networks):
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError as error:
                raise ConfigurationError(f"not a network: {network!r} ({error})") from error
        return self

    @model_validator(mode="after")
    def _production_needs_secrets(self) -> Self:
        if not self.debug:
            self.require("secret_key", "database_url", "allowed_hosts")
            self._require_mail_transport()
        return self

    def _require_mail_transport(self) -> None:
        # The console, file and in-memory backends keep every message (password
        # reset links included) where whoever reads the logs or the disk can
        # read it: in production they would hand out every account.
        if self.email_backend in LEAKING_EMAIL_BACKENDS:
            raise ConfigurationError(
                f"EMAIL_BACKEND={self.email_backend} keeps e-mail (password-reset links included) in logs,"
                " files or memory; production mode needs EMAIL_HOST (SMTP) or a delivering EMAIL_BACKEND"
            )
        if not self.email_host and not self.email_backend:
            raise ConfigurationError(
                "missing required environment variable(s) in production mode: EMAIL_HOST"
                " (the SMTP server; or EMAIL_BACKEND naming another delivering backend)"
            )

    @property
    def email_backend_path(self) -> str:
        """The Django e-mail backend: the chosen one, SMTP when a host is set, else the console."""
        if self.email_backend:
            return self.email_backend
        return SMTP_EMAIL_BACKEND if self.email_host else CONSOLE_EMAIL_BACKEND

    @property
    def clickhouse_reader(self) -> tuple[str, SecretStr]:
        """The user and password the site reads ClickHouse with."""
        if self.clickhouse_reader_user is None:
            return self.clickhouse_user, self.clickhouse_password
        return self.clickhouse_reader_user, self.clickhouse_reader_password or SecretStr("")

    @property
    def clickhouse_eraser(self) -> tuple[str, SecretStr]:
        """The user and password the worker erases events from ClickHouse with."""
        if self.clickhouse_eraser_user is None:
            return self.clickhouse_user, self.clickhouse_password
        return self.clickhouse_eraser_user, self.clickhouse_eraser_password or SecretStr("")

    @property
    def database(self) -> dj_database_url.DBConfig:
        """Django's default database, from `DATABASE_URL` (one host, or several: see `database_config`)."""
        return database_config(self.database_url, conn_max_age=60, conn_health_checks=True)

    @cached_property
    def development_secret_key(self) -> str:
        """A fixed, clearly insecure key for development when none is set."""
        return self.secret_key.get_secret_value() or "insecure-development-key-do-not-use-in-production"
