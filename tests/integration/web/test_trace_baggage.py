"""A request's Sentry baggage travels with the events it writes, bounded whatever the client sends."""

from __future__ import annotations

import json
import urllib.request

import pytest
from pytest_django.live_server_helper import LiveServer

from tests.support.sentry import SentrySink
from webapp.outbox.client import MAX_BAGGAGE
from webapp.outbox.models import OutboxEvent

TRACE_ID = "771a43a4192642f0b136d5159a501700"
SIGN_UP = {
    "email": "karl@example.com",
    "password": "c0rrect-horse-battery",
    "first_name": "Karl",
    "last_name": "V",
}


@pytest.mark.django_db(transaction=True)
def test_a_client_flooding_its_baggage_header_gets_a_bounded_share_stored_with_its_events(
    live_server: LiveServer, sentry_events: SentrySink
) -> None:
    flood = ",".join(f"sentry-junk{n}={'x' * 200}" for n in range(40))  # some 8 KB

    request = urllib.request.Request(
        f"{live_server.url}/api/users/",
        data=json.dumps(SIGN_UP).encode(),
        headers={
            "Content-Type": "application/json",
            "sentry-trace": f"{TRACE_ID}-b0e6f15b45c36b12-1",
            "baggage": f"sentry-trace_id={TRACE_ID},sentry-sampled=true,vendor=abc,{flood}",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201

    [event] = OutboxEvent.objects.all()
    assert event.sentry_trace.startswith(f"{TRACE_ID}-")  # the client's trace is continued
    assert f"sentry-trace_id={TRACE_ID}" in event.baggage
    assert "sentry-sample_rand=" in event.baggage  # the SDK's own item, added after the flood
    assert "vendor=" not in event.baggage
    assert 0 < len(event.baggage) <= MAX_BAGGAGE
