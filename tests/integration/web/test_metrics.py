"""`GET /metrics`: the web site's Prometheus metrics, for internal callers only."""

from __future__ import annotations

from django.test import Client


def test_an_internal_caller_reads_the_throttle_counters() -> None:
    response = Client(REMOTE_ADDR="127.0.0.1").get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert 'web_throttled_requests_total{action="sign_in"}' in response.content.decode()


def test_anyone_else_is_told_there_is_nothing_there() -> None:
    response = Client(REMOTE_ADDR="203.0.113.7").get("/metrics")

    assert response.status_code == 404
