"""`/accounts/activity/`: a person's own security events, from ClickHouse and the outbox."""

from __future__ import annotations

import json
import socket
import tempfile
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connections
from django.test import Client
from django.test.utils import CaptureQueriesContext
from pytest_django import Settings

from relay.core.clickhouse import insert_query
from relay.core.schema import CURRENT, create_statements
from shared.events import Envelope, Event, UserLoggedIn, UserLoginFailed, UserUpdated
from shared.outbox import OUTBOX_TABLE
from tests.integration.web.factories import UserFactory
from tests.support.clickhouse import ClickHouse
from tests.support.waiting import free_port
from webapp.activity.selectors import delivered_entries, delivered_query, user_activity
from webapp.core.clickhouse import ClickHouseClient
from webapp.outbox.models import OutboxEvent
from webapp.users.services import user_login_audit

pytestmark = pytest.mark.django_db

ACTIVITY_URL = "/accounts/activity/"
NOON = datetime(2026, 11, 26, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def history(clickhouse: ClickHouse, settings: Settings) -> ClickHouse:
    """The test run's ClickHouse database, read by the activity page with the reader settings."""
    settings.CLICKHOUSE_DATABASE = clickhouse.database
    settings.CLICKHOUSE_USER = clickhouse.user
    settings.CLICKHOUSE_PASSWORD = clickhouse.password
    return clickhouse


def deliver(
    clickhouse: ClickHouse,
    event: Event,
    *,
    at: datetime,
    event_id: uuid.UUID | None = None,
    environment: str = "Local",
) -> str:
    """Put an event into `event_log` as the relay would have; return its id."""
    envelope = Envelope.wrap(event, environment=environment)
    event_id = event_id or envelope.event_id
    row = "\t".join(
        [
            str(event_id),
            envelope.event_type,
            at.strftime("%Y-%m-%d %H:%M:%S"),
            environment,
            envelope.event_context,
            str(envelope.metadata_version),
        ]
    )
    clickhouse.query("INSERT INTO event_log FORMAT TSV", data=f"{row}\n".encode())
    return str(event_id)


def test_the_activity_page_needs_a_signed_in_user(client: Client) -> None:
    response = client.get(ACTIVITY_URL)

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/accounts/activity/"


def test_delivered_events_of_the_user_are_listed_newest_first_with_time_and_address(
    client: Client, history: ClickHouse
) -> None:
    user = UserFactory.create()
    stranger = UserFactory.create()
    deliver(history, UserLoggedIn(user_id=user.pk, ip_address="192.0.2.1"), at=NOON)
    deliver(
        history,
        UserLoginFailed(email=user.email, user_id=user.pk, ip_address="198.51.100.7"),
        at=NOON + timedelta(minutes=5),
    )
    deliver(
        history, UserLoggedIn(user_id=stranger.pk, ip_address="203.0.113.9"), at=NOON + timedelta(minutes=9)
    )
    client.force_login(user)

    response = client.get(ACTIVITY_URL)

    assert response.status_code == 200
    entries = response.context["page"].entries
    assert [(e.event_type, e.ip_address, e.processing) for e in entries[-2:]] == [
        ("user_login_failed", "198.51.100.7", False),
        ("user_logged_in", "192.0.2.1", False),
    ]
    assert entries[-1].occurred_at == NOON
    page = response.content.decode()
    assert "Failed sign-in attempt" in page
    assert "26 Nov 2026, 12:05:00" in page
    assert "When (UTC)" in page
    assert "203.0.113.9" not in page


def test_events_still_in_the_outbox_are_shown_as_processing(client: Client, history: ClickHouse) -> None:
    user = UserFactory.create()
    client.force_login(user)  # writes user_logged_in into the outbox; no relay runs here

    page = client.get(ACTIVITY_URL)

    [entry] = page.context["page"].entries
    assert (entry.event_type, entry.processing) == ("user_logged_in", True)
    assert "processing" in page.content.decode()


def test_an_event_both_delivered_and_still_in_the_outbox_is_shown_once_as_delivered(
    history: ClickHouse,
) -> None:
    user = UserFactory.create()
    user_login_audit(user=user, ip_address="192.0.2.1")
    pending = OutboxEvent.objects.get()
    deliver(
        history, UserLoggedIn(user_id=user.pk, ip_address="192.0.2.1"), at=NOON, event_id=pending.event_id
    )

    [entry] = user_activity(user_id=user.pk, page=1, page_size=10).entries

    assert entry.event_id == str(pending.event_id)
    assert not entry.processing


def test_an_event_delivered_twice_is_listed_once(history: ClickHouse) -> None:
    user = UserFactory.create()
    event_id = uuid.uuid4()
    for _ in range(2):
        deliver(history, UserLoggedIn(user_id=user.pk), at=NOON, event_id=event_id)
    assert history.value("SELECT count() FROM event_log") == "2"

    assert len(user_activity(user_id=user.pk, page=1, page_size=10).entries) == 1


def test_a_profile_change_names_the_changed_fields(history: ClickHouse) -> None:
    user = UserFactory.create()
    deliver(history, UserUpdated(user_id=user.pk, changed_fields=("first_name", "last_name")), at=NOON)

    [entry] = user_activity(user_id=user.pk, page=1, page_size=10).entries

    assert (entry.description, entry.details) == ("Profile changed", "first name, last name")


def test_the_activity_is_paged_newest_first(client: Client, history: ClickHouse, settings: Settings) -> None:
    settings.ACTIVITY_PAGE_SIZE = 2
    user = UserFactory.create()
    ids = [deliver(history, UserLoggedIn(user_id=user.pk), at=NOON + timedelta(minutes=n)) for n in range(5)]
    client.force_login(user)  # one more, pending, the newest

    pages = [client.get(ACTIVITY_URL, {"page": n}).context["page"] for n in (1, 2, 3, 4)]

    assert [[e.event_id for e in page.entries] for page in pages[1:]] == [
        [ids[3], ids[2]],
        [ids[1], ids[0]],
        [],
    ]
    assert pages[0].entries[0].processing
    assert [page.has_next for page in pages] == [True, True, False, False]
    assert 'rel="next"' in client.get(ACTIVITY_URL).content.decode()


def test_a_malformed_page_number_shows_the_first_page(client: Client, history: ClickHouse) -> None:
    client.force_login(UserFactory.create())

    response = client.get(ACTIVITY_URL, {"page": "last"})

    assert response.status_code == 200
    assert response.context["page"].number == 1


def test_the_page_still_renders_and_says_so_when_clickhouse_does_not_answer(
    client: Client, settings: Settings
) -> None:
    settings.CLICKHOUSE_URL = f"http://127.0.0.1:{free_port()}/"
    client.force_login(UserFactory.create())

    response = client.get(ACTIVITY_URL)

    assert response.status_code == 200
    assert not response.context["page"].history_available
    assert "cannot be shown right now" in response.content.decode()
    [entry] = response.context["page"].entries
    assert entry.processing


@pytest.fixture
def silent_server() -> Iterator[str]:
    """An HTTP address that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
    stop.set()
    thread.join()
    for connection in accepted:
        connection.close()
    listener.close()


def test_a_clickhouse_that_does_not_answer_in_time_is_given_up_on(
    client: Client, settings: Settings, silent_server: str
) -> None:
    settings.CLICKHOUSE_URL = silent_server
    settings.ACTIVITY_QUERY_TIMEOUT = 0.3
    client.force_login(UserFactory.create())

    response = client.get(ACTIVITY_URL)

    assert response.status_code == 200
    assert not response.context["page"].history_available


def test_the_page_reads_with_the_reader_credentials(
    client: Client, history: ClickHouse, settings: Settings
) -> None:
    settings.CLICKHOUSE_USER = "nobody_at_all"
    user = UserFactory.create()
    deliver(history, UserLoggedIn(user_id=user.pk), at=NOON)
    client.force_login(user)

    response = client.get(ACTIVITY_URL)

    assert not response.context["page"].history_available


def test_the_history_query_reads_current_clickhouse_with_microsecond_times_too() -> None:
    chdb_session = pytest.importorskip("chdb.session")
    user_id = 42
    with tempfile.TemporaryDirectory() as path:
        session = chdb_session.Session(path)
        try:
            for statement in create_statements(CURRENT, "analytics"):
                session.query(statement)
            session.query("USE analytics")
            for n, event in enumerate(
                [UserLoggedIn(user_id=user_id, ip_address="192.0.2.1"), UserLoggedIn(user_id=7)]
            ):
                envelope = Envelope.wrap(event, environment="Local")
                row = [str(envelope.event_id), envelope.event_type, f"2026-11-26 12:00:0{n}.123456"]
                row += ["Local", envelope.event_context, "1"]
                session.query(f"{insert_query()}\n" + "\t".join(row))

            answer = str(
                session.query(
                    f"{delivered_query(environment='Local', user_id=user_id, limit=10)}\nFORMAT JSONEachRow"
                )
            )
        finally:
            session.close()

    [entry] = delivered_entries([json.loads(line) for line in answer.splitlines() if line.strip()])
    assert entry.occurred_at == datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=UTC)
    assert (entry.event_type, entry.ip_address) == ("user_logged_in", "192.0.2.1")


def test_an_account_that_views_its_activity_too_often_is_told_when_to_come_back(
    client: Client, history: ClickHouse, settings: Settings
) -> None:
    settings.THROTTLE_ACTIVITY_RATE = "3/m"
    client.force_login(UserFactory.create())

    statuses = [client.get(ACTIVITY_URL).status_code for _ in range(4)]

    assert statuses == [200, 200, 200, 429]
    refused = client.get(ACTIVITY_URL)
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert "Try again in 1 minute" in refused.content.decode()


def test_the_activity_limit_counts_each_account_on_its_own(
    client: Client, history: ClickHouse, settings: Settings
) -> None:
    settings.THROTTLE_ACTIVITY_RATE = "2/m"
    client.force_login(UserFactory.create())
    for _ in range(3):
        client.get(ACTIVITY_URL)

    client.force_login(UserFactory.create())

    assert client.get(ACTIVITY_URL).status_code == 200


def test_events_another_source_wrote_for_the_same_user_id_are_not_shown(
    client: Client, history: ClickHouse
) -> None:
    user = UserFactory.create()
    mine = deliver(history, UserLoggedIn(user_id=user.pk, ip_address="192.0.2.1"), at=NOON)
    deliver(
        history,
        UserLoggedIn(user_id=user.pk, ip_address="203.0.113.66"),
        at=NOON + timedelta(minutes=1),
        environment="OtherSite",
    )
    client.force_login(user)

    page = client.get(ACTIVITY_URL).context["page"]

    assert [entry.event_id for entry in page.entries if not entry.processing] == [mine]


def test_the_pending_part_of_the_page_is_read_through_the_user_id_index() -> None:
    user = UserFactory.create()
    with CaptureQueriesContext(connections["default"]) as queries:
        user_activity(user_id=user.pk, page=1, page_size=20, reader=unreachable_reader())
    [pending] = [query["sql"] for query in queries.captured_queries if OUTBOX_TABLE in query["sql"]]

    with connections["default"].cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {pending}")
        plan = "\n".join(row[0] for row in cursor.fetchall())

    assert f"{OUTBOX_TABLE}_user_id" in plan


def unreachable_reader() -> ClickHouseClient:
    return ClickHouseClient(url=f"http://127.0.0.1:{free_port()}/", user="default", password="", timeout=1)
