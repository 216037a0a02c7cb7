"""Receivers for Django's auth signals: each sign-in, sign-out and refused sign-in is audited."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from webapp.core.clients import client_ip
from webapp.users.models import User
from webapp.users.services import user_login_audit, user_login_failure_audit, user_logout_audit
from webapp.users.throttling import was_throttled


@receiver(user_logged_in, dispatch_uid="users.audit_login")
def _audit_login(*, request: HttpRequest | None, user: User, **_: Any) -> None:
    user_login_audit(user=user, ip_address=client_ip(request))


@receiver(user_logged_out, dispatch_uid="users.audit_logout")
def _audit_logout(*, request: HttpRequest | None, user: User | None, **_: Any) -> None:
    # Signing out without having signed in ends no session: nothing to audit.
    if user is None:
        return
    user_logout_audit(user=user, ip_address=client_ip(request))


@receiver(user_login_failed, dispatch_uid="users.audit_login_failure")
def _audit_login_failure(
    *, credentials: dict[str, Any], request: HttpRequest | None = None, **_: Any
) -> None:
    # A try the throttle refused checked no password: it is counted in
    # web_throttled_requests_total, not written as one event per try.
    if was_throttled(request):
        return
    # Only the login name is read: the credentials also carry the password
    # (masked by Django, but never kept or logged here either way).
    email = credentials.get(User.USERNAME_FIELD) or credentials.get("username") or ""
    user_login_failure_audit(email=str(email), ip_address=client_ip(request))
