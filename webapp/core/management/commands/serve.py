"""`manage.py serve`: Django's development server when DEBUG is on, gunicorn otherwise."""

from __future__ import annotations

import os
import sys
import tempfile
from argparse import ArgumentParser
from typing import Any

import structlog
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from webapp.core.privileges import privileges_warn

logger = structlog.get_logger(__name__)

DEFAULT_BIND = "127.0.0.1:8000"
WSGI_APP = "webapp.config.wsgi:application"


def default_workers() -> int:
    """Gunicorn's rule of thumb, two workers per usable CPU plus one."""
    # process_cpu_count honours CPU affinity (a container's cpuset); cpu_count would not.
    return 2 * (os.process_cpu_count() or 1) + 1


def gunicorn_argv(*, bind: str, workers: int, threads: int) -> list[str]:
    """The command line that runs the site under gunicorn."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        WSGI_APP,
        "--bind",
        bind,
        "--workers",
        str(workers),
        # Threads let a worker overlap requests that wait on PostgreSQL.
        "--worker-class",
        "gthread",
        "--threads",
        str(threads),
        # Logging (JSON through structlog, no access log: django-structlog
        # already writes one line per request) lives in the config module.
        "--config",
        "python:webapp.config.gunicorn",
    ]


class Command(BaseCommand):
    """Serve the site on one address, the way the DEBUG setting asks for."""

    help = "Serve the site: runserver when DEBUG is true, gunicorn when it is false."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--bind", default=DEFAULT_BIND, help=f"host:port to listen on (default {DEFAULT_BIND})"
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=None,
            help="gunicorn worker processes (default: 2 per CPU + 1); production mode only",
        )
        parser.add_argument(
            "--threads", type=int, default=4, help="threads per gunicorn worker; production mode only"
        )

    def handle(self, *args: Any, bind: str, workers: int | None, threads: int, **options: Any) -> None:
        if workers is not None and workers < 1:
            raise CommandError("--workers must be at least 1")
        if threads < 1:
            raise CommandError("--threads must be at least 1")
        if settings.DEBUG:
            call_command("runserver", bind)
            return
        workers = workers or default_workers()
        privileges_warn(component="web")
        connection.close()
        logger.info("web_serving", server="gunicorn", bind=bind, workers=workers, threads=threads)
        argv = gunicorn_argv(bind=bind, workers=workers, threads=threads)
        # Each worker keeps its metrics in files here; /metrics adds them up.
        # A fresh directory per start, so counters of an earlier run do not linger.
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="die-hard-web-metrics-")}
        sys.stdout.flush()
        sys.stderr.flush()
        # Replace this process, so signals from the supervisor reach gunicorn's master directly.
        os.execvpe(argv[0], argv, env)  # noqa: S606  (a fixed command line, no shell)
