"""The absolute links e-mails carry, spelled for the site the request came to."""

from __future__ import annotations

from django.http import HttpRequest
from django.urls import reverse

from webapp.users.services import LinkBuilder


def verify_link_builder(request: HttpRequest) -> LinkBuilder:
    """How this request's site spells the one-time link that verifies an address."""

    def verify_link(uidb64: str, token: str) -> str:
        return request.build_absolute_uri(
            reverse("users:email-verify", kwargs={"uidb64": uidb64, "token": token})
        )

    return verify_link
