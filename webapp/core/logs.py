"""Log levels for what clients cause: a request the site refuses is the client's fault, not an error."""

from __future__ import annotations

import logging
from typing import Final

# Django logs these refusals (each answered 400) at ERROR with a traceback. Anyone
# can send an oversized body or too many fields at will: at ERROR, each would
# page someone and become a Sentry error event.
CLIENT_FAULT_LOGGERS: Final = (
    "django.security.RequestDataTooBig",
    "django.security.TooManyFieldsSent",
    "django.security.TooManyFilesSent",
)


class ClientFaultFilter(logging.Filter):
    """Lower a record to WARNING, without its traceback, before any handler (or Sentry) sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.WARNING:
            record.levelno = logging.WARNING
            record.levelname = logging.getLevelName(logging.WARNING)
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_client_faults() -> None:
    """Log the refusals of oversized or overlong requests at WARNING (once per process)."""
    for name in CLIENT_FAULT_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, ClientFaultFilter) for existing in logger.filters):
            logger.addFilter(ClientFaultFilter())
