"""Abuse throttles: sign-in lock-out (django-axes) and sign-up rate (django-ratelimit), on Redis.

Sign-in: django-axes counts failures per account, per (account, client
address) pair and per client address in the cache, each against its own limit
(`THROTTLE_SIGN_IN_FAILURES`, `THROTTLE_SIGN_IN_PAIR_FAILURES`, and the far
higher `THROTTLE_SIGN_IN_ADDRESS_FAILURES`, so people sharing an address do not
lock each other out); past one, it locks that out for
`THROTTLE_SIGN_IN_COOLOFF_MINUTES`, on the site's form and the admin's alike,
and answers 429 with `Retry-After`. The current password asked for by password
change and account deletion is checked through the same gate
(`password_recheck`). Every client is counted by `client_key`: its address,
or an IPv6 client's /64. A refused attempt during a lock-out
is counted in `web_throttled_requests_total`, not written as an event.

Sign-up: django-ratelimit counts sign-ups per client address in a fixed window
(`THROTTLE_SIGN_UP_RATE`); past it, the form and the API answer 429 with
`Retry-After`.

Password reset: django-ratelimit counts requests per client address
(`THROTTLE_PASSWORD_RESET_RATE`) and per address a link is asked for
(`THROTTLE_PASSWORD_RESET_ADDRESS_RATE`), whoever asks and whether or not the
address has an account, so the answer tells nothing about accounts. The second
is counted under a keyed hash of the folded address, never the address itself.

Verification link sent again: django-ratelimit counts requests per account
(`THROTTLE_EMAIL_VERIFICATION_RATE`), so a signed-in session cannot flood the
address with links (the sign-up sends the first one).

Activity page: django-ratelimit counts page views per signed-in account
(`THROTTLE_ACTIVITY_RATE`): each view queries ClickHouse, so one account
cannot keep it busy.

Refused requests are counted in `web_throttled_requests_total`, never written
as events. All fail open: while Redis does not answer, nothing is throttled (and
`throttle_unavailable` is logged), rather than every request refused.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import structlog
from axes.backends import AxesStandaloneBackend
from axes.exceptions import AxesBackendPermissionDenied
from axes.handlers.cache import AxesCacheHandler
from axes.helpers import get_cache_timeout, get_client_username, get_credentials, get_failure_limit
from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth import authenticate
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django_ratelimit.core import get_usage
from redis.exceptions import RedisError

from webapp.core.clients import client_key, throttle_key
from webapp.core.metrics import THROTTLED
from webapp.users.models import InvalidEmail, User, canonical_email
from webapp.users.selectors import email_pseudonym

logger = structlog.get_logger(__name__)

LOCKED_OUT_TEMPLATE = "users/locked_out.html"


class SignInLockoutHandler(AxesCacheHandler):
    """django-axes' cache handler with a limit per counter, failing open while Redis does not answer.

    Each failed sign-in is counted three times: for the account (from anywhere),
    for the pair (account, client address) and for the client address alone.
    Each counter has its own limit (`THROTTLE_SIGN_IN_FAILURES`,
    `THROTTLE_SIGN_IN_PAIR_FAILURES`, `THROTTLE_SIGN_IN_ADDRESS_FAILURES`), and
    reaching any of them locks what it counts. The address limit is far higher
    than the others: one person's failures lock their own pair (and in the end
    the account), never another account's sign-in from the same address.
    """

    def get_failures(self, request: HttpRequest, credentials: dict[str, Any] | None = None) -> int:
        """The failures, scaled: reaching `AXES_FAILURE_LIMIT` means a counter reached its own limit."""
        try:
            counters = _counters(request, credentials)
            if not counters:
                return 0
            counts = self.cache.get_many([key for key, _ in counters])
        except RedisError as error:
            _throttle_unavailable("sign_in", error)
            return 0
        scale = int(get_failure_limit(request, credentials))
        return max(int(counts.get(key, 0)) * scale // limit for key, limit in counters)

    def user_login_failed(
        self, sender: object, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
    ) -> None:
        """Count the failure in every counter; mark the request locked out when one reaches its limit."""
        if request is None:
            return
        try:
            counters = _counters(request, credentials)
            timeout = get_cache_timeout(request)
            if was_throttled(request):
                # Refused unchecked: the lock-out's cool-off starts again, but
                # nothing else is counted, so a locked pair cannot go on to
                # lock the account for everyone.
                counts = self.cache.get_many([key for key, _ in counters])
                for key, limit in counters:
                    if int(counts.get(key, 0)) >= limit:
                        self.cache.touch(key, timeout=timeout)
            else:
                for key, _ in counters:
                    if not self.cache.add(key, 1, timeout=timeout):
                        self.cache.incr(key)
                        self.cache.touch(key, timeout=timeout)
        except RedisError as error:
            _throttle_unavailable("sign_in", error)
            return
        if was_throttled(request) or self.get_failures(request, credentials) >= get_failure_limit(
            request, credentials
        ):
            request.axes_locked_out = True  # type: ignore[attr-defined]
            request.axes_credentials = credentials  # type: ignore[attr-defined]
            user_locked_out.send(
                "axes",
                request=request,
                username=get_client_username(request, credentials),
                ip_address=getattr(request, "axes_ip_address", None),
            )

    def user_logged_in(self, sender: object, request: HttpRequest, user: Any, **kwargs: Any) -> None:
        """A sign-in clears its account's failures and its pair's, not the address's (others share it)."""
        credentials = get_credentials(user.get_username())
        try:
            self.cache.delete_many(
                [key for key, limit in _counters(request, credentials) if not key.startswith(_ADDRESS)]
            )
        except RedisError as error:
            _throttle_unavailable("sign_in", error)

    def reset_attempts(
        self,
        *,
        ip_address: str | None = None,
        username: str | None = None,
        ip_or_username: bool = False,
    ) -> int:
        """Forget the failures of an account and/or an address, and of every pair either is in."""
        patterns = []
        if username is not None:
            patterns += [f"{_ACCOUNT}{_digest(username)}", f"{_PAIR}{_digest(username)}-*"]
        if ip_address is not None:
            key = throttle_key(ip_address)
            patterns += [f"{_ADDRESS}{_digest(key)}", f"{_PAIR}*-{_digest(key)}"]
        return sum(int(self.cache.delete_pattern(pattern) or 0) for pattern in patterns)


_ACCOUNT = "sign-in-account-"
_PAIR = "sign-in-pair-"
_ADDRESS = "sign-in-address-"


def _digest(value: str) -> str:
    # Counters are kept under hashes: no address, of a mailbox or a client, in Redis.
    return hashlib.sha256(value.encode()).hexdigest()


def _counters(request: HttpRequest, credentials: dict[str, Any] | None) -> list[tuple[str, int]]:
    """The cache keys this sign-in counts under, each with its limit."""
    username = get_client_username(request, credentials)
    address = axes_client_ip(request)
    counters = []
    if username:
        counters.append((f"{_ACCOUNT}{_digest(username)}", settings.AXES_FAILURE_LIMIT))
    if address:
        counters.append((f"{_ADDRESS}{_digest(address)}", settings.THROTTLE_SIGN_IN_ADDRESS_FAILURES))
    if username and address:
        counters.append(
            (f"{_PAIR}{_digest(username)}-{_digest(address)}", settings.THROTTLE_SIGN_IN_PAIR_FAILURES)
        )
    return counters


def _throttle_unavailable(action: str, error: Exception) -> None:
    logger.warning("throttle_unavailable", action=action, error_kind=type(error).__name__)


class SignInThrottle(AxesStandaloneBackend):
    """django-axes' gate in front of the site's authentication backend, marking what it refuses.

    A refused try still makes Django send `user_login_failed` (django-axes
    counts it there); the mark tells the audit receiver that nothing was
    checked, so the try is counted in a metric instead of written as an event.
    """

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            super().authenticate(request, username=username, password=password, **kwargs)
        except AxesBackendPermissionDenied:
            assert request is not None  # django-axes refuses to work without one
            request.sign_in_throttled = True  # type: ignore[attr-defined]
            THROTTLED.labels(action="sign_in").inc()
            raise


def password_recheck(request: HttpRequest, user: Any, password: str) -> bool:
    """Whether `password` is the signed-in user's, checked through the sign-in gate and counted alike.

    Password change and account deletion ask for the current password: a
    wrong one is a failed sign-in for the account (and its pair and address),
    locked out alike, so a stolen session cannot guess without limit nor make
    the site compute Argon2 hashes without limit. See `recheck_locked_out`.
    """
    checked = authenticate(request, username=user.get_username(), password=password)
    return checked is not None and checked.pk == user.pk


def recheck_locked_out(request: HttpRequest) -> bool:
    """Whether this request's password check was refused, or reached a lock-out: the session should end."""
    return was_throttled(request) or bool(getattr(request, "axes_locked_out", False))


def was_throttled(request: HttpRequest | None) -> bool:
    """Whether the sign-in throttle refused this request without checking the password."""
    return bool(getattr(request, "sign_in_throttled", False))


def cool_off_seconds() -> int:
    """How long a lock-out lasts after the last refused try."""
    return math.ceil(settings.AXES_COOLOFF_TIME.total_seconds())


def axes_client_ip(request: HttpRequest) -> str | None:
    """The address django-axes counts failures by: the client's (`client_key`: an IPv6 client's /64)."""
    return client_key(request) or None


def account_key(address: str) -> str:
    """An address folded as accounts are compared: every spelling of one account gives one key."""
    try:
        return canonical_email(address).lower()
    except InvalidEmail:
        return address.strip().lower()


def axes_username(request: HttpRequest, credentials: dict[str, Any] | None) -> str | None:
    """The account django-axes counts failures for, folded as accounts are compared."""
    username = (credentials or {}).get("username")
    if username is None:
        username = request.POST.get("username")
    return account_key(str(username)) if username else None


def axes_client_str(
    username: str | None, ip_address: str | None, user_agent: str | None, path_info: str, request: HttpRequest
) -> str:
    """What django-axes writes in its log lines about a client: the path only, no personal data."""
    return f"{{path_info: {path_info!r}}}"


def locked_out_response(
    request: HttpRequest,
    original_response: HttpResponse | None = None,
    credentials: dict[str, Any] | None = None,
) -> HttpResponse:
    """429 with `Retry-After` and a page that says what happened and for how long."""
    seconds = cool_off_seconds()
    response = TemplateResponse(
        request,
        LOCKED_OUT_TEMPLATE,
        {"minutes": math.ceil(seconds / 60)},
        status=429,
        headers={"Retry-After": str(seconds)},
    )
    return response.render()


def too_many_sign_ups_message(retry_after: int) -> str:
    """What a throttled sign-up is told."""
    return f"Too many sign-ups from your network. Try again in {_wait_in_minutes(retry_after)}."


def _wait_in_minutes(seconds: int) -> str:
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def too_many_password_resets_message(retry_after: int) -> str:
    """What a throttled password-reset request is told: the same whichever limit it hit.

    One message for both limits, so nobody learns which one refused them: the
    page for an address is the page for any other, account or not.
    """
    return (
        "Too many password-reset requests. If a link was sent, it still works: check your e-mail, "
        f"or try again in {_wait_in_minutes(retry_after)}."
    )


def _retry_after(
    request: HttpRequest, *, action: str, group: str, key: str, rate: str, method: str = "POST"
) -> int | None:
    """Count this request in `group` under `key`; the seconds to wait if it is over `rate`, else None."""
    try:
        usage = get_usage(
            request,
            group=group,
            key=lambda _group, _request: key,
            rate=rate,
            method=method,
            increment=True,
        )
    except RedisError as error:
        _throttle_unavailable(action, error)
        return None
    if usage is None or not usage["should_limit"]:
        return None
    THROTTLED.labels(action=action).inc()
    return max(int(usage["time_left"]), 1)


def sign_up_retry_after(request: HttpRequest) -> int | None:
    """Count this sign-up against its address; the seconds to wait if it is over the rate, else None."""
    return _retry_after(
        request,
        action="sign_up",
        group="sign_up",
        key=client_key(request),
        rate=settings.THROTTLE_SIGN_UP_RATE,
    )


def password_reset_client_retry_after(request: HttpRequest) -> int | None:
    """Count this reset request against the client's address; the seconds to wait if over the rate."""
    return _retry_after(
        request,
        action="password_reset",
        group="password_reset_client",
        key=client_key(request),
        rate=settings.THROTTLE_PASSWORD_RESET_RATE,
    )


def password_reset_address_retry_after(request: HttpRequest, email: str) -> int | None:
    """Count this reset request against the address it is for; the seconds to wait if over the rate.

    Counted for every address alike, with an account or without, under a keyed
    hash of the folded address (every spelling of one address is one count).
    """
    return _retry_after(
        request,
        action="password_reset",
        group="password_reset_address",
        key=email_pseudonym(email),
        rate=settings.THROTTLE_PASSWORD_RESET_ADDRESS_RATE,
    )


def too_many_verification_emails_message(retry_after: int) -> str:
    """What a throttled request for another verification link is told."""
    return (
        "A link was sent a short while ago: check your e-mail (and its spam folder), "
        f"or ask again in {_wait_in_minutes(retry_after)}."
    )


def email_verification_retry_after(request: HttpRequest, user: User) -> int | None:
    """Count this request for another verification link against the account; the seconds to wait if over."""
    return _retry_after(
        request,
        action="email_verification",
        group="email_verification",
        key=f"user:{user.pk}",
        rate=settings.THROTTLE_EMAIL_VERIFICATION_RATE,
    )


def activity_retry_after(request: HttpRequest, *, user_id: int) -> int | None:
    """Count this activity page view against the account; the seconds to wait if over the rate, else None."""
    return _retry_after(
        request,
        action="activity",
        group="activity",
        key=str(user_id),
        rate=settings.THROTTLE_ACTIVITY_RATE,
        method="GET",
    )


def too_many_activity_views_message(retry_after: int) -> str:
    """What a throttled activity page view is told."""
    return f"You have looked at your activity very often. Try again in {_wait_in_minutes(retry_after)}."
