"""`GET /metrics`: the web site's Prometheus metrics, for internal callers only."""

from __future__ import annotations

from django.test import Client
from pytest_django import Settings


def test_an_internal_caller_reads_the_throttle_counters() -> None:
    response = Client(REMOTE_ADDR="127.0.0.1").get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert 'web_throttled_requests_total{action="sign_in"}' in response.content.decode()


def test_anyone_else_is_told_there_is_nothing_there() -> None:
    response = Client(REMOTE_ADDR="203.0.113.7").get("/metrics")

    assert response.status_code == 404


def test_a_client_reaching_the_server_directly_cannot_claim_an_internal_forwarded_address(
    settings: Settings,
) -> None:
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]

    response = Client(REMOTE_ADDR="203.0.113.7", HTTP_X_FORWARDED_FOR="127.0.0.1").get("/metrics")

    assert response.status_code == 404


def test_an_internal_caller_behind_a_trusted_proxy_reads_the_metrics(settings: Settings) -> None:
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]

    response = Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="127.0.0.1").get("/metrics")

    assert response.status_code == 200


def test_only_a_trusted_proxy_may_say_the_client_spoke_https(settings: Settings) -> None:
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_SSL_REDIRECT = True

    direct = Client(REMOTE_ADDR="203.0.113.7", HTTP_X_FORWARDED_PROTO="https").get("/")
    proxied = Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_PROTO="https").get("/")

    assert (direct.status_code, proxied.status_code) == (301, 200)
