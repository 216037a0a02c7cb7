"""Receivers for Django's auth signals: each sign-in, sign-out and refused sign-in is audited."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from webapp.users.models import User
from webapp.users.services import user_login_audit, user_login_failure_audit, user_logout_audit


def client_ip(request: HttpRequest | None) -> str | None:
    """The address the request came from, as the server saw it."""
    if request is None:
        return None
    # REMOTE_ADDR is set by the server, not by the client. X-Forwarded-For can
    # be written by anyone, so it is only worth reading once a trusted proxy in
    # front of the site is known to overwrite it; none is assumed here.
    return request.META.get("REMOTE_ADDR") or None


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
    # Only the login name is read: the credentials also carry the password
    # (masked by Django, but never kept or logged here either way).
    email = credentials.get(User.USERNAME_FIELD) or credentials.get("username") or ""
    user_login_failure_audit(email=str(email), ip_address=client_ip(request))
