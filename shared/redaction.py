"""Secrets that travel in URLs (one-time links, signed tokens), cut out of logs and Sentry reports.

A password-reset link is a key to an account until it is spent: a request log
line or a Sentry transaction that records its path hands the account to
whoever reads it. `redact` replaces, in any text, the token of such a path,
Django-style one-time tokens and signed values wherever they appear, and the
values of query parameters whose names say they are secret; `redact_data`
does the same through nested dicts and lists (an event dict, a Sentry event).
"""

from __future__ import annotations

import re
from typing import Any, Final

FILTERED: Final = "[Filtered]"

# Paths whose last segments are secrets: `<prefix>/<public part>/<secret>/`. The
# reset link is `/accounts/password/reset/<uidb64>/<token>/`, the address
# verification link `/accounts/email/verify/<uidb64>/<token>/`; the uidb64 is
# only the account's id, and `set-password` and `confirm` are the pages the
# tokens were swapped for (`{token}` or `<token>` is the route's pattern, as
# Sentry names transactions).
_SECRET_PATH = re.compile(
    r"(?P<prefix>/(?:password/reset|email/verify)/[^/\s?#\"']+/)(?!set-password/|confirm/|[<{])"
    r"(?P<secret>[^/\s?#\"']+)"
)
# One-time tokens of Django's PasswordResetTokenGenerator and its kind:
# `<base36 timestamp>-<hex HMAC>`, wherever they are quoted.
_ONE_TIME_TOKEN = re.compile(r"\b[0-9a-z]{1,13}-[0-9a-f]{20,}\b")
# Values signed with django.core.signing (`<payload>:<timestamp>:<signature>`,
# or without the timestamp): the signature is 43 URL-safe base64 characters.
_SIGNED_VALUE = re.compile(r"[A-Za-z0-9_\-.=]+(?::[0-9A-Za-z]+)?:[A-Za-z0-9_\-]{43}\b")
# Query parameters (and form-encoded fields) whose names say what they carry.
_SECRET_PARAMETER = re.compile(
    r"(?P<name>[?&;](?:[A-Za-z0-9_\-]*?)(?:token|key|code|secret|signature|sig|password|passwd|auth|session)"
    r"[A-Za-z0-9_\-]*=)(?P<value>[^&#\s\"']*)",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """`text` with every secret carried in a URL, or shaped like a one-time token, replaced."""
    if not text:
        return text
    text = _SECRET_PATH.sub(lambda match: f"{match['prefix']}{FILTERED}", text)
    text = _SECRET_PARAMETER.sub(lambda match: f"{match['name']}{FILTERED}", text)
    text = _SIGNED_VALUE.sub(FILTERED, text)
    return _ONE_TIME_TOKEN.sub(FILTERED, text)


def redact_data[T](value: T) -> T:
    """`value` with `redact` applied to every string in it, through dicts, lists and tuples (in place)."""
    return _redact_any(value)  # type: ignore[no-any-return]


def _redact_any(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        for key, item in value.items():
            value[key] = _redact_any(item)
        return value
    if isinstance(value, list):
        value[:] = [_redact_any(item) for item in value]
        return value
    if isinstance(value, tuple):
        return tuple(_redact_any(item) for item in value)
    return value
