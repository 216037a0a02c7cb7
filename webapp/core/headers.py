"""Browser protections Django does not set itself: Content-Security-Policy and Permissions-Policy."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Final

from django.http import HttpRequest, HttpResponse

# What pages may load and where they may be framed: only this site's own
# resources, no plug-ins, no framing (clickjacking), forms posting only here.
# Styles: the site's files, and the one inline block that carries this
# response's nonce (base.html); no inline script at all.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; "
    "script-src 'self'; "
    "style-src 'self' 'nonce-{nonce}'; "
    "img-src 'self' data:; "
    "object-src 'none'; "
    "base-uri 'none'; "
    "form-action 'self'; "
    "frame-ancestors 'none'"
)
# Powerful browser features the site never uses, switched off for it and anything it could embed.
PERMISSIONS_POLICY: Final = ", ".join(
    f"{feature}=()"
    for feature in (
        "accelerometer",
        "camera",
        "display-capture",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "payment",
        "usb",
    )
)


class SecurityHeadersMiddleware:
    """Give each request a CSP nonce (`request.csp_nonce`) and each response the two headers."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        nonce = secrets.token_urlsafe(16)
        request.csp_nonce = nonce  # type: ignore[attr-defined]
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY.format(nonce=nonce))
        response.headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        return response
