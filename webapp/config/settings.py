"""Django settings, derived from `webapp.config.env.WebSettings` (the environment).

`DEBUG=true` is development mode. `DEBUG=false` is production mode: the security
settings are on and a missing required variable stops start-up with its name.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import django_stubs_ext
from sentry_sdk.integrations.celery import CeleryIntegration
from sentry_sdk.integrations.django import DjangoIntegration

from shared.logging import configure_logging
from shared.sentry import init_sentry
from shared.settings import load
from webapp.config.env import WebSettings, database_config
from webapp.core.logs import quiet_client_faults

# ModelAdmin[Model], Field[Set, Get] and the like, for the type checker, must work at run time.
django_stubs_ext.monkeypatch()

ENV = load(WebSettings)
BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = ENV.debug
SECRET_KEY = ENV.development_secret_key if DEBUG else ENV.secret_key.get_secret_value()
ALLOWED_HOSTS = ENV.allowed_hosts
CSRF_TRUSTED_ORIGINS = ENV.csrf_trusted_origins
ENVIRONMENT = ENV.environment

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_structlog",
    "axes",
    "webapp.core",
    "webapp.health",
    "webapp.mail",
    "webapp.outbox",
    "webapp.privacy",
    "webapp.users",
    "webapp.activity",
]

MIDDLEWARE = [
    # First: forwarding headers from anyone but a trusted proxy are dropped before they are read.
    "webapp.core.clients.TrustedProxyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "webapp.core.headers.SecurityHeadersMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_structlog.middlewares.RequestMiddleware",
    # Last, as django-axes asks: turns a locked-out sign-in into its 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "webapp.config.urls"
WSGI_APPLICATION = "webapp.config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES: dict[str, dict[str, Any]] = {
    "default": {**ENV.database},
    # The tables' owner (DATABASE_ADMIN_URL), used only where the site's role
    # may not go: `manage.py migrate --database owner` and `database_grants`
    # (`make migrate`); the test suite connects as it too (tests/conftest.py).
    # Never opened by the site or the worker themselves.
    "owner": {**database_config(ENV.postgres_admin_dsn), "TEST": {"MIRROR": "default"}},
}
# A PostgreSQL that stops answering must fail requests and probes, not hang them.
for _database in DATABASES.values():
    _database.setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "users.User"
# Uniqueness of the e-mail is a case-insensitive constraint (users_user_email_ci_unique),
# which this check cannot see.
SILENCED_SYSTEM_CHECKS = ["auth.W004"]
# The throttle first: a locked-out account or address is refused before any password is checked.
AUTHENTICATION_BACKENDS = ["webapp.users.throttling.SignInThrottle", "webapp.users.backends.EmailBackend"]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "users:login"
LOGIN_REDIRECT_URL = "users:home"
LOGOUT_REDIRECT_URL = "users:login"
# How long a password-reset link stays valid (Django's default is three days).
PASSWORD_RESET_TIMEOUT = 60 * 60
# How long the link that verifies an address works (it stops once used).
EMAIL_VERIFICATION_TIMEOUT = 3 * 24 * 60 * 60

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR.parent / ".static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

# --- Celery (other asynchronous work; events never go through it) -------------
CELERY_BROKER_URL = ENV.redis_url
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Celery beat (`celery -A webapp.config beat`) sends the e-mails recorded in
# PostgreSQL that no worker has sent yet: those of a broker outage, and retries.
CELERY_BEAT_SCHEDULE = {
    "mail-dispatch-pending": {
        "task": "webapp.mail.tasks.email_dispatch_pending",
        "schedule": ENV.mail_dispatch_interval,
        # A tick nobody ran before the next one is worth nothing: the next sweeps anyway.
        "options": {"expires": ENV.mail_dispatch_interval},
    },
    # Erasures of deleted accounts' events that no worker carried out yet.
    "privacy-erasure-pending": {
        "task": "webapp.privacy.tasks.erasure_run_pending",
        "schedule": 60.0,
        "options": {"expires": 60.0},
    },
    # Expired sessions (Django's `clearsessions`): nothing else deletes their rows.
    "sessions-clear-expired": {
        "task": "webapp.users.tasks.sessions_clear_expired",
        "schedule": 24 * 60 * 60.0,
        "options": {"expires": 60 * 60.0},
    },
}

# --- Cache (Redis): the abuse throttles' counters ------------------------------
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": ENV.redis_url,
        "KEY_PREFIX": "diehard",
        # An unanswering Redis must cost a request little: the throttles then
        # fail open (webapp/users/throttling.py) rather than refuse everyone.
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
    }
}

# --- Abuse throttles (webapp/users/throttling.py) -----------------------------
TRUSTED_PROXIES = ENV.trusted_proxies
INTERNAL_NETWORKS = ENV.internal_networks
THROTTLE_IPV6_PREFIX = ENV.throttle_ipv6_prefix
AXES_HANDLER = "webapp.users.throttling.SignInLockoutHandler"
# Per account; the handler keeps its own limits for pairs and addresses.
AXES_FAILURE_LIMIT = ENV.throttle_sign_in_failures
THROTTLE_SIGN_IN_PAIR_FAILURES = ENV.throttle_sign_in_pair_failures
THROTTLE_SIGN_IN_ADDRESS_FAILURES = ENV.throttle_sign_in_address_failures
AXES_COOLOFF_TIME = timedelta(minutes=ENV.throttle_sign_in_cooloff_minutes)
# What is counted (SignInLockoutHandler keys and limits them itself): the
# account, the (account, address) pair, the address.
AXES_LOCKOUT_PARAMETERS = ["username", ["username", "ip_address"], "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "webapp.users.throttling.axes_client_ip"
AXES_USERNAME_CALLABLE = "webapp.users.throttling.axes_username"
AXES_CLIENT_STR_CALLABLE = "webapp.users.throttling.axes_client_str"
AXES_LOCKOUT_CALLABLE = "webapp.users.throttling.locked_out_response"
AXES_VERBOSE = False
RATELIMIT_USE_CACHE = "default"
THROTTLE_SIGN_UP_RATE = ENV.throttle_sign_up_rate
THROTTLE_ACTIVITY_RATE = ENV.throttle_activity_rate
THROTTLE_PASSWORD_RESET_RATE = ENV.throttle_password_reset_rate
THROTTLE_PASSWORD_RESET_ADDRESS_RATE = ENV.throttle_password_reset_address_rate
THROTTLE_EMAIL_VERIFICATION_RATE = ENV.throttle_email_verification_rate

# --- E-mail -------------------------------------------------------------------
DEFAULT_FROM_EMAIL = ENV.default_from_email
# A mail server that stops answering must not hold a dispatcher (and the row it locked) for long.
EMAIL_TIMEOUT = 10
# Production mode refuses to start without a delivering transport (webapp.config.env);
# development without EMAIL_HOST prints e-mail to the console.
EMAIL_BACKEND = ENV.email_backend_path
EMAIL_HOST = ENV.email_host or "localhost"
EMAIL_PORT = ENV.email_port
EMAIL_HOST_USER = ENV.email_host_user
EMAIL_HOST_PASSWORD = ENV.email_host_password.get_secret_value()
EMAIL_USE_TLS = ENV.email_use_tls

# --- Security: on in production mode -----------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # the HTML form reads the token from the page, not the cookie
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if TRUSTED_PROXIES:
    # Only a proxy known to be in front says whether the client spoke HTTPS:
    # TrustedProxyMiddleware drops the header from every other peer.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
if not DEBUG:
    SECURE_SSL_REDIRECT = ENV.secure_ssl_redirect
    # Probes from inside the cluster speak plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^health/$"]
    SECURE_HSTS_SECONDS = ENV.secure_hsts_seconds
    SECURE_HSTS_INCLUDE_SUBDOMAINS = ENV.secure_hsts_include_subdomains
    # Joining the browsers' preload list is hard to undo: the operator opts in.
    SECURE_HSTS_PRELOAD = ENV.secure_hsts_preload
    if not SECURE_HSTS_PRELOAD:
        SILENCED_SYSTEM_CHECKS.append("security.W021")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# --- Logging and errors -------------------------------------------------------
LOGGING_CONFIG = None  # shared.logging owns the configuration
configure_logging(level=ENV.log_level, log_format=ENV.log_format)
quiet_client_faults()
DJANGO_STRUCTLOG_CELERY_ENABLED = True
# No personal data in logs: a client's address is one, and the one django-structlog
# would bind comes from X-Forwarded-For, which any client can set.
DJANGO_STRUCTLOG_IP_LOGGING_ENABLED = False
init_sentry(ENV, component="web", integrations=[DjangoIntegration(), CeleryIntegration()])

# --- Health -------------------------------------------------------------------
HEALTH_LAG_THRESHOLD_SECONDS = ENV.health_lag_threshold_seconds
HEALTH_PENDING_THRESHOLD = ENV.health_pending_threshold
HEALTH_CACHE_SECONDS = ENV.health_cache_seconds
CLICKHOUSE_URL = ENV.clickhouse_url
# The site's ClickHouse user is the read-only one (CLICKHOUSE_READER_*).
CLICKHOUSE_USER = ENV.clickhouse_reader[0]
CLICKHOUSE_PASSWORD = ENV.clickhouse_reader[1].get_secret_value()
CLICKHOUSE_DATABASE = ENV.clickhouse_database
CLICKHOUSE_ERASER_USER = ENV.clickhouse_eraser[0]
CLICKHOUSE_ERASER_PASSWORD = ENV.clickhouse_eraser[1].get_secret_value()

# --- Activity page: the user's own security events, read back from ClickHouse --
ACTIVITY_QUERY_TIMEOUT = ENV.activity_query_timeout
ACTIVITY_PAGE_SIZE = ENV.activity_page_size
REDIS_URL = ENV.redis_url
