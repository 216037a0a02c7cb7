"""gunicorn's configuration: its own log lines in the same JSON shape as everything else."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prometheus_client import multiprocess

from shared.logging import logging_config
from shared.settings import load
from webapp.config.env import WebSettings

_settings = load(WebSettings)

logconfig_dict = logging_config(level=_settings.log_level, log_format=_settings.log_format)
# django-structlog writes one line per request, with its request id.
accesslog = None

# gunicorn's control socket (for gunicornc), in the private directory `serve`
# makes for each start: the default, under $HOME or $XDG_RUNTIME_DIR, is
# read-only or absent in the image, under systemd and on Kubernetes.
if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
    control_socket = str(Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]) / "gunicorn.ctl")


def child_exit(server: object, worker: Any) -> None:
    """A worker's metric files are merged into the dead-worker totals when it exits."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]  # untyped in prometheus-client
