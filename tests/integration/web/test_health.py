"""`/health/` says whether the site can serve and how far behind the relay is, against real services."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from django.db import connections, transaction
from django.test import Client
from django.utils import timezone
from pytest_django import Settings

from shared.events import UserCreated
from shared.outbox import OUTBOX_TABLE
from tests.integration.web.factories import UserFactory
from tests.support.waiting import free_port
from webapp.outbox.client import EventLogClient
from webapp.outbox.models import OutboxEvent

HEALTH_URL = "/health/"


def sign_up_events(count: int) -> None:
    """Publish `count` sign-up events and commit them, as the site does."""
    with transaction.atomic():
        EventLogClient.from_settings().publish_all(
            UserCreated(user_id=n, email=f"person{n}@example.com", first_name="Ada", last_name="Lovelace")
            for n in range(count)
        )


def health(client: Client) -> dict[str, Any]:
    """The body of `/health/`, which must answer 200."""
    response = client.get(HEALTH_URL)
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.django_db
def test_health_is_ok_with_every_dependency_ok_when_all_services_answer(client: Client) -> None:
    response = client.get(HEALTH_URL)

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["dependencies"] == {
        "postgres": {"status": "ok"},
        "redis": {"status": "ok"},
        "clickhouse": {"status": "ok"},
    }
    assert body["relay"] == {
        "status": "ok",
        "pending_events": 0,
        "oldest_pending_age_seconds": 0.0,
        "dead_letters": 0,
    }


@pytest.mark.django_db
def test_health_names_no_address_or_credential(client: Client, settings: Settings) -> None:
    settings.CLICKHOUSE_PASSWORD = "clickhouse-secret-marker"  # a wrong password: ClickHouse refuses it

    text = client.get(HEALTH_URL).content.decode()

    for secret in (
        settings.SECRET_KEY,
        settings.REDIS_URL,
        settings.CLICKHOUSE_URL,
        "clickhouse-secret-marker",
        "127.0.0.1",
        connections["default"].settings_dict["NAME"],
    ):
        assert secret not in text


@pytest.mark.django_db
def test_health_is_never_cached(client: Client) -> None:
    response = client.get(HEALTH_URL)

    assert "no-store" in response["Cache-Control"]


@pytest.mark.django_db(transaction=True)
def test_pending_events_show_with_an_age_that_grows_while_no_relay_runs(
    client: Client, settings: Settings
) -> None:
    settings.HEALTH_CACHE_SECONDS = 0
    sign_up_events(3)

    first = health(client)["relay"]
    time.sleep(0.3)
    second = health(client)["relay"]

    assert first["pending_events"] == second["pending_events"] == 3
    assert second["oldest_pending_age_seconds"] >= first["oldest_pending_age_seconds"] + 0.2


@pytest.mark.django_db(transaction=True)
def test_the_relay_is_degraded_when_the_oldest_event_waited_past_the_lag_threshold(
    client: Client, settings: Settings
) -> None:
    settings.HEALTH_LAG_THRESHOLD_SECONDS = 60
    OutboxEvent.objects.create(
        event_type="user_created",
        event_date_time=timezone.now() - timedelta(minutes=5),
        environment="Local",
        event_context='{"email":"late@example.com","first_name":"Ada","last_name":"Lovelace"}',
    )

    body = health(client)

    assert body["relay"]["status"] == "degraded"
    assert body["relay"]["oldest_pending_age_seconds"] > 300
    assert body["status"] == "degraded"


@pytest.mark.django_db(transaction=True)
def test_the_relay_is_degraded_when_more_events_wait_than_the_pending_threshold(
    client: Client, settings: Settings
) -> None:
    settings.HEALTH_PENDING_THRESHOLD = 2
    sign_up_events(3)

    body = health(client)

    assert body["relay"]["status"] == "degraded"
    assert body["status"] == "degraded"


@pytest.mark.django_db
def test_a_silent_clickhouse_is_reported_unavailable_and_the_site_degraded_not_down(
    client: Client, settings: Settings
) -> None:
    settings.CLICKHOUSE_URL = f"http://127.0.0.1:{free_port()}/"

    response = client.get(HEALTH_URL)

    assert response.status_code == 200
    body = response.json()
    assert body["dependencies"]["clickhouse"] == {"status": "unavailable"}
    assert body["dependencies"]["postgres"] == body["dependencies"]["redis"] == {"status": "ok"}
    assert body["status"] == "degraded"


@pytest.mark.django_db
def test_a_silent_postgres_makes_the_site_down_with_503(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The probes open connections of their own, from these settings; the
    # test's own connection (and its transaction) stays as it is.
    monkeypatch.setitem(connections.settings["default"], "PORT", free_port())

    response = client.get(HEALTH_URL)

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "down"
    assert body["dependencies"]["postgres"] == {"status": "unavailable"}
    assert body["relay"] == {"status": "unavailable"}


@pytest.mark.django_db
def test_a_public_caller_gets_the_status_word_only(client: Client) -> None:
    response = Client(REMOTE_ADDR="203.0.113.7").get(HEALTH_URL)

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_staff_get_the_detail_from_anywhere() -> None:
    staff = UserFactory.create(is_staff=True)
    client = Client(REMOTE_ADDR="203.0.113.7")
    client.force_login(staff)

    body = client.get(HEALTH_URL).json()

    assert body["dependencies"]["postgres"] == {"status": "ok"}
    assert body["relay"]["pending_events"] == 0


@pytest.mark.django_db(transaction=True)
def test_callers_within_the_cache_window_share_one_round_of_probes(
    client: Client, settings: Settings
) -> None:
    settings.HEALTH_CACHE_SECONDS = 0.5
    first = health(client)
    sign_up_events(3)

    cached = health(client)
    time.sleep(0.6)
    fresh = health(client)

    assert first["relay"]["pending_events"] == cached["relay"]["pending_events"] == 0
    assert cached["checked_at"] == first["checked_at"]
    assert fresh["relay"]["pending_events"] == 3


@pytest.mark.django_db(transaction=True)
def test_the_backlog_is_counted_only_just_past_the_threshold(client: Client, settings: Settings) -> None:
    settings.HEALTH_PENDING_THRESHOLD = 4
    sign_up_events(20)

    assert health(client)["relay"]["pending_events"] == 5


@pytest.mark.django_db(transaction=True)
def test_a_blocked_outbox_query_is_cancelled_by_the_server_not_left_running(client: Client) -> None:
    # Another session holds the outbox exclusively, as a long migration would.
    with psycopg.connect(**connection_kwargs()) as locker:
        locker.execute(f"LOCK TABLE {OUTBOX_TABLE} IN ACCESS EXCLUSIVE MODE")

        body = health(client)

        with psycopg.connect(**connection_kwargs(), autocommit=True) as observer:
            waiting = observer.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE %s AND state = 'active'"
                " AND pid <> pg_backend_pid()",
                (f"%FROM {OUTBOX_TABLE} LIMIT%",),
            ).fetchone()
    assert body["relay"]["status"] in ("timeout", "unavailable")
    assert body["dependencies"]["postgres"] == {"status": "ok"}
    assert waiting == (0,)


def connection_kwargs() -> dict[str, Any]:
    """How to open a session of our own on the test database."""
    settings = connections["default"].settings_dict
    return {
        "host": settings["HOST"],
        "port": settings["PORT"] or 5432,
        "user": settings["USER"],
        "password": settings["PASSWORD"] or None,
        "dbname": settings["NAME"],
    }
