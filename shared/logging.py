"""structlog set up once per process; stdlib and Django logs go through it too.

Development (a terminal, or `LOG_FORMAT=console`) gets coloured key=value lines,
everything else one JSON object per line with the same keys: `timestamp`,
`level`, `logger`, `event`, plus whatever context is bound (`request_id` on the
web site, `batch_id` in the relay). Log ids, never personal data.

Secrets that travel in URLs (a password-reset link in a request line) are cut
out of every line before it is rendered (`shared.redaction`).

Tracebacks show code and line numbers but never the frames' local variables:
those hold passwords (sign-up, sign-in), request payloads and whole batches of
events, and a log line is read by far more people than the data it would show.
"""

from __future__ import annotations

import importlib.util
import logging
import logging.config
import sys
from typing import Any, Literal

import structlog
import structlog.tracebacks
from structlog.types import EventDict, Processor, WrappedLogger

from shared.redaction import redact, redact_data

# Processors that run for structlog and stdlib records alike.
_SHARED: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.ExtraAdder(),
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


# Tracebacks as data (JSON) and as text (console), both without local variables.
_EXCEPTION_AS_DICT: Processor = structlog.processors.ExceptionRenderer(
    structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
)


# Keys the renderers need as they are: the stdlib record, and the exception
# the console renderer formats itself (JSON lines have it as data by now).
_NOT_REDACTED = frozenset({"_record", "_from_structlog", "exc_info"})


def redact_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Cut one-time links and tokens out of every value of a log line (request lines carry paths).

    Objects (Django's `request` in `extra`) are rendered by their repr, which
    quotes the path: they are turned into that text, redacted, here.
    """
    for key, value in event_dict.items():
        if key in _NOT_REDACTED or value is None or isinstance(value, bool | int | float):
            continue
        if isinstance(value, str | dict | list | tuple):
            event_dict[key] = redact_data(value)
        else:
            event_dict[key] = redact(repr(value))
    return event_dict


def _console_renderer() -> structlog.dev.ConsoleRenderer:
    exception_formatter: structlog.typing.ExceptionRenderer = structlog.dev.plain_traceback
    if importlib.util.find_spec("rich") is not None:
        # Rich's tracebacks (the development default) show locals unless told not to.
        exception_formatter = structlog.dev.RichTracebackFormatter(show_locals=False)
    return structlog.dev.ConsoleRenderer(exception_formatter=exception_formatter)


def _use_console(log_format: Literal["auto", "console", "json"]) -> bool:
    return log_format == "console" or (log_format == "auto" and sys.stderr.isatty())


def logging_config(
    *, level: str = "INFO", log_format: Literal["auto", "console", "json"] = "auto"
) -> dict[str, Any]:
    """The standard library's logging configuration: everything through one structlog renderer."""
    use_console = _use_console(log_format)
    final: list[Processor] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if not use_console:
        final.append(_EXCEPTION_AS_DICT)
    # Last before rendering, so it sees every key, the rendered exception's too.
    final.append(redact_secrets)
    final.append(_console_renderer() if use_console else structlog.processors.JSONRenderer())
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structlog": {
                "()": structlog.stdlib.ProcessorFormatter,
                "processors": final,
                "foreign_pre_chain": _SHARED,
            }
        },
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "structlog",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["default"], "level": level.upper()},
        "loggers": {
            # Per-request lines come from django-structlog; Django's own
            # access lines would repeat them.
            "django.server": {"level": "WARNING"},
            "django.request": {"level": "ERROR"},
            "asyncio": {"level": "WARNING"},
            "aiohttp.access": {"level": "WARNING"},
            # gunicorn's own loggers propagate to the root handler above.
            "gunicorn.error": {"level": level.upper(), "propagate": True},
            "gunicorn.access": {"level": "WARNING", "propagate": True},
        },
    }


def configure_logging(
    *, level: str = "INFO", log_format: Literal["auto", "console", "json"] = "auto"
) -> None:
    """Route structlog and the standard library through one renderer on stderr."""
    structlog.configure(
        processors=[
            *_SHARED,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    logging.config.dictConfig(logging_config(level=level, log_format=log_format))
