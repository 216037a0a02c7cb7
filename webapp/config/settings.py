"""Django settings, derived from `webapp.config.env.WebSettings` (the environment).

`DEBUG=true` is development mode. `DEBUG=false` is production mode: the security
settings are on and a missing required variable stops start-up with its name.
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url
import django_stubs_ext
from sentry_sdk.integrations.celery import CeleryIntegration
from sentry_sdk.integrations.django import DjangoIntegration

from shared.logging import configure_logging
from shared.sentry import init_sentry
from shared.settings import load
from webapp.config.env import WebSettings

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
    "webapp.core",
    "webapp.health",
    "webapp.outbox",
    "webapp.users",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_structlog.middlewares.RequestMiddleware",
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

DATABASES = {
    "default": dj_database_url.parse(ENV.database_url, conn_max_age=60, conn_health_checks=True),
}
# A PostgreSQL that stops answering must fail requests and probes, not hang them.
DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "users.User"
# Uniqueness of the e-mail is a case-insensitive constraint (users_user_email_ci_unique),
# which this check cannot see.
SILENCED_SYSTEM_CHECKS = ["auth.W004"]
AUTHENTICATION_BACKENDS = ["webapp.users.backends.EmailBackend"]
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

# --- E-mail -------------------------------------------------------------------
DEFAULT_FROM_EMAIL = ENV.default_from_email
if ENV.email_host:
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = ENV.email_host
    EMAIL_PORT = ENV.email_port
    EMAIL_HOST_USER = ENV.email_host_user
    EMAIL_HOST_PASSWORD = ENV.email_host_password.get_secret_value()
    EMAIL_USE_TLS = ENV.email_use_tls
else:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"

# --- Security: on in production mode -----------------------------------------
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # the HTML form reads the token from the page, not the cookie
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = ENV.secure_ssl_redirect
    # Probes from inside the cluster speak plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^health/$"]
    SECURE_HSTS_SECONDS = ENV.secure_hsts_seconds
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# --- Logging and errors -------------------------------------------------------
LOGGING_CONFIG = None  # shared.logging owns the configuration
configure_logging(level=ENV.log_level, log_format=ENV.log_format)
DJANGO_STRUCTLOG_CELERY_ENABLED = True
# No personal data in logs: a client's address is one, and the one django-structlog
# would bind comes from X-Forwarded-For, which any client can set.
DJANGO_STRUCTLOG_IP_LOGGING_ENABLED = False
init_sentry(ENV, component="web", integrations=[DjangoIntegration(), CeleryIntegration()])

# --- Health -------------------------------------------------------------------
HEALTH_LAG_THRESHOLD_SECONDS = ENV.health_lag_threshold_seconds
HEALTH_PENDING_THRESHOLD = ENV.health_pending_threshold
CLICKHOUSE_URL = ENV.clickhouse_url
CLICKHOUSE_USER = ENV.clickhouse_user
CLICKHOUSE_PASSWORD = ENV.clickhouse_password.get_secret_value()
REDIS_URL = ENV.redis_url
