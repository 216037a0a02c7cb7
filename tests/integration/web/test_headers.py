"""Browser protections on every page: Content-Security-Policy, Permissions-Policy; no signed-in oracle."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests.integration.web.factories import UserFactory

pytestmark = pytest.mark.django_db

PAGES = ["/", "/accounts/login/", "/accounts/register/", "/accounts/password/reset/", "/api/schema/"]


def directives(policy: str) -> dict[str, str]:
    return dict(part.strip().split(" ", 1) for part in policy.split(";"))


@pytest.mark.parametrize("path", PAGES)
def test_every_page_loads_only_the_sites_own_resources_and_cannot_be_framed(
    client: Client, path: str
) -> None:
    policy = directives(client.get(path)["Content-Security-Policy"])

    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["object-src"] == "'none'"
    assert policy["form-action"] == "'self'"


def test_the_one_inline_style_block_is_allowed_by_a_nonce_new_on_every_response(client: Client) -> None:
    nonces = []
    for _ in range(2):
        response = client.get("/")
        [nonce] = re.findall(r"'nonce-([^']+)'", directives(response["Content-Security-Policy"])["style-src"])
        assert f'<style nonce="{nonce}">' in response.content.decode()
        nonces.append(nonce)

    assert nonces[0] != nonces[1]


def test_every_page_switches_off_the_browser_features_the_site_never_uses(client: Client) -> None:
    policy = client.get("/")["Permissions-Policy"]

    for feature in ("camera", "microphone", "geolocation", "payment", "usb"):
        assert f"{feature}=()" in policy


def test_a_signed_in_person_gets_the_sign_in_page_not_a_redirect_another_site_could_observe(
    client: Client,
) -> None:
    client.force_login(UserFactory.create())

    assert client.get("/accounts/login/").status_code == 200
