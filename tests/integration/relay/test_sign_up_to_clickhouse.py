"""A person signs up on the site; analysts see exactly one `user_created` row in ClickHouse."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from datetime import UTC, datetime

import pytest
import sentry_sdk
from django.test import Client
from pytest_django.live_server_helper import LiveServer
from sentry_sdk.integrations.django import DjangoIntegration

from shared.outbox import OUTBOX_TABLE, WakeUpDebounce
from tests.support.clickhouse import ClickHouse
from tests.support.outbox_tables import Outbox
from tests.support.relays import RelayFactory, deliver_one_batch, visible
from tests.support.sentry import capturing_sentry
from tests.support.waiting import wait_until
from webapp.outbox import wakeup

pytestmark = pytest.mark.slow

SIGN_UP = {
    "email": "ada@example.com",
    "password": "c0rrect-horse-battery",
    "first_name": "Ada",
    "last_name": "Lovelace",
}


def sign_up(client: Client, **fields: str) -> None:
    response = client.post("/api/users/", {**SIGN_UP, **fields}, content_type="application/json")
    assert response.status_code == 201, response.content


def test_a_sign_up_is_in_event_log_within_a_second_woken_by_notify(
    outbox: Outbox, clickhouse: ClickHouse, start_relay: RelayFactory, client: Client
) -> None:
    relay = start_relay(poll_interval=60)  # only a notification can wake it in time
    wait_until(lambda: relay.status()["listener_connected"], timeout=10)

    sign_up(client)
    started = time.monotonic()
    wait_until(lambda: visible(clickhouse) == 1, timeout=1.0, interval=0.02)

    assert time.monotonic() - started < 1.0


def test_a_sign_up_arrives_within_the_poll_interval_when_the_wake_up_is_lost(
    outbox: Outbox,
    clickhouse: ClickHouse,
    start_relay: RelayFactory,
    client: Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    start_relay(poll_interval=0.5)
    # A debounce window that has just begun and lasts an hour: the site stays silent.
    silent = WakeUpDebounce(window=3600)
    assert silent.due()
    monkeypatch.setattr(wakeup, "_debounce", silent)

    sign_up(client)

    wait_until(lambda: visible(clickhouse) == 1, timeout=5)  # a few poll intervals


def test_a_sign_up_appears_as_one_user_created_row_in_the_deduplicated_view(
    outbox: Outbox, clickhouse: ClickHouse, start_relay: RelayFactory, client: Client
) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    sign_up(client, email="grace@example.com", first_name="Grace", last_name="Hopper")
    start_relay()

    wait_until(lambda: visible(clickhouse) == 1, timeout=10)
    [(event_type, event_date_time, environment, event_context, metadata_version)] = clickhouse.rows(
        "SELECT event_type, toString(event_date_time), environment, event_context, metadata_version"
        " FROM event_log_dedup WHERE event_type = 'user_created'"
    )
    assert (event_type, environment, metadata_version) == ("user_created", "Local", "1")
    payload = json.loads(event_context)
    assert payload == {
        "user_id": payload["user_id"],
        "email": "grace@example.com",
        "first_name": "Grace",
        "last_name": "Hopper",
    }
    happened = datetime.fromisoformat(event_date_time).replace(tzinfo=UTC)
    assert before <= happened <= datetime.now(UTC)


def test_a_sign_up_can_be_followed_from_the_http_request_to_the_clickhouse_insert(
    outbox: Outbox, clickhouse: ClickHouse, live_server: LiveServer
) -> None:
    with capturing_sentry(DjangoIntegration()) as sink:
        request = urllib.request.Request(
            f"{live_server.url}/api/users/",
            data=json.dumps(SIGN_UP).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 201
        sentry_sdk.flush()
        [http_request] = sink.transactions()
        trace_id = http_request["contexts"]["trace"]["trace_id"]
        stored = outbox.value(f"SELECT sentry_trace FROM {OUTBOX_TABLE}")
        assert stored.startswith(f"{trace_id}-")

        assert asyncio.run(deliver_one_batch(outbox, clickhouse)) == 1
        sentry_sdk.flush()

    batch = sink.transactions()[-1]
    assert batch["contexts"]["trace"]["op"] == "relay.batch"
    assert batch["contexts"]["trace"]["trace_id"] == trace_id
