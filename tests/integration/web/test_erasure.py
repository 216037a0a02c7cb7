"""Deleting an account erases its events from the outbox, the dead letters and ClickHouse."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection, transaction
from django.utils import timezone
from pytest_django import DjangoCaptureOnCommitCallbacks, Settings

from shared.events import UserCreated, UserLoggedIn
from shared.outbox import ARCHIVE_TABLE, DEAD_LETTER_TABLE, OUTBOX_TABLE
from tests.integration.web import written
from tests.integration.web.factories import SignUpFactory, verify_link
from tests.support.clickhouse import ClickHouse
from tests.support.waiting import free_port, wait_until
from webapp.mail.models import OutgoingEmail
from webapp.outbox.client import EventLogClient
from webapp.outbox.models import DeadLetter, DeliveredEvent
from webapp.outbox.wakeup import _ring
from webapp.privacy.models import ErasureRequest
from webapp.privacy.services import ERASE, erasure_process, erasure_process_due
from webapp.privacy.tasks import erasure_run_pending
from webapp.users.models import User
from webapp.users.services import user_create, user_delete


@pytest.fixture
def erasing_into(settings: Settings, clickhouse: ClickHouse) -> ClickHouse:
    """The site erases from the test run's ClickHouse database."""
    settings.CLICKHOUSE_URL = clickhouse.url
    settings.CLICKHOUSE_DATABASE = clickhouse.database
    settings.CLICKHOUSE_ERASER_USER = clickhouse.user
    settings.CLICKHOUSE_ERASER_PASSWORD = clickhouse.password
    return clickhouse


def delivered(clickhouse: ClickHouse, *events: object) -> None:
    """Put events into `event_log` as the relay would have delivered them."""
    rows = "".join(
        f"{uuid.uuid4()}\t{event.event_type}\t2026-11-26 10:00:00\tLocal\t{event.context_json()}\t1\n"  # type: ignore[attr-defined]
        for event in events
    )
    clickhouse.query("INSERT INTO event_log FORMAT TSV", data=rows.encode())


def user_ids_in_clickhouse(clickhouse: ClickHouse) -> list[str]:
    return sorted(
        row[0]
        for row in clickhouse.rows(
            "SELECT toString(visitParamExtractUInt(event_context, 'user_id')) FROM event_log"
        )
    )


@pytest.mark.django_db
def test_deleting_an_account_deletes_the_user_and_records_an_anonymous_event_and_an_erasure() -> None:
    user = user_create(**SignUpFactory.build(), verify_link=verify_link)
    user_id = user.pk

    request = user_delete(user=user)

    assert not User.objects.filter(pk=user_id).exists()
    assert not OutgoingEmail.objects.exists()  # the welcome e-mail was still waiting
    [deleted] = written.events("user_deleted")
    assert written.context(deleted) == {}
    assert (request.user_id, request.completed_at) == (user_id, None)


@pytest.mark.django_db
def test_the_erasure_is_carried_out_only_after_the_deletion_commits(
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    user = user_create(**SignUpFactory.build(), verify_link=verify_link)

    with django_capture_on_commit_callbacks() as callbacks:
        user_delete(user=user)

    # Besides the relay's wake-up, which follows every commit that wrote events.
    assert len([callback for callback in callbacks if getattr(callback, "func", None) is not _ring]) == 1


@pytest.mark.django_db(transaction=True)
def test_an_erasure_removes_the_accounts_events_everywhere_and_nobody_elses(erasing_into: ClickHouse) -> None:
    leaving = user_create(**SignUpFactory.build(), verify_link=verify_link)
    leaving_id, leaving_email = leaving.pk, leaving.email
    staying = user_create(**SignUpFactory.build(), verify_link=verify_link)
    with transaction.atomic():
        EventLogClient.from_settings().publish(UserLoggedIn(user_id=leaving.pk, ip_address="198.51.100.1"))
    DeadLetter.objects.create(
        event_type="user_logged_in",
        environment="Local",
        event_context=f'{{"user_id":{leaving.pk},"ip_address":"198.51.100.1"}}',
        error="refused",
    )
    delivered(
        erasing_into,
        UserCreated(user_id=leaving.pk, email=leaving.email, first_name="A", last_name="B"),
        UserLoggedIn(user_id=leaving.pk, ip_address="198.51.100.1"),
        UserCreated(user_id=staying.pk, email=staying.email, first_name="C", last_name="D"),
    )

    request = user_delete(user=leaving)
    assert erasure_process(request_id=request.pk)

    request.refresh_from_db()
    assert request.completed_at is not None
    assert request.user_id is None  # nothing links the record to the person any more
    assert (request.outbox_events, request.dead_letters) == (2, 1)
    remaining = [written.context(event).get("user_id") for event in written.events()]
    assert leaving_id not in remaining
    assert staying.pk in remaining
    assert not DeadLetter.objects.exists()
    wait_until(lambda: user_ids_in_clickhouse(erasing_into) == [str(staying.pk)], timeout=30)
    # The per-account copy the activity page reads is erased too.
    wait_until(
        lambda: erasing_into.rows("SELECT toString(user_id) FROM event_log_by_user") == [[str(staying.pk)]],
        timeout=30,
    )
    [erased] = written.events("user_erased")
    assert written.context(erased) == {"erasure_id": request.pk, "outbox_events": 2, "dead_letters": 1}
    assert leaving_email not in written.context_text(erased)


@pytest.mark.django_db(transaction=True)
def test_with_clickhouse_down_the_erasure_waits_and_is_retried_whole(
    erasing_into: ClickHouse, settings: Settings
) -> None:
    user = user_create(**SignUpFactory.build(), verify_link=verify_link)
    request = user_delete(user=user)
    settings.CLICKHOUSE_URL = f"http://127.0.0.1:{free_port()}/"

    assert not erasure_process(request_id=request.pk)

    request.refresh_from_db()
    assert (request.completed_at, request.attempts, request.last_error) == (None, 1, "ClickHouseUnavailable")
    assert request.next_attempt_at > timezone.now()
    # Rolled back with the failed step: the account's events still wait to be erased together.
    assert written.events("user_created")
    settings.CLICKHOUSE_URL = erasing_into.url
    ErasureRequest.objects.filter(pk=request.pk).update(next_attempt_at=timezone.now())

    assert erasure_process_due() == 1
    assert not written.events("user_created")


@pytest.mark.django_db(transaction=True)
def test_the_periodic_sweep_carries_out_pending_erasures(erasing_into: ClickHouse) -> None:
    requests = [
        user_delete(user=user_create(**SignUpFactory.build(), verify_link=verify_link)) for _ in range(2)
    ]

    erasure_run_pending()

    assert all(ErasureRequest.objects.get(pk=request.pk).completed_at is not None for request in requests)
    assert len(written.events("user_erased")) == 2


@pytest.mark.django_db(transaction=True)
def test_an_erasure_removes_the_accounts_events_from_the_relays_archive_too(
    erasing_into: ClickHouse,
) -> None:
    # Reconciliation re-sends what the archive holds and ClickHouse lacks: an
    # erased account's events must leave the archive with the rest.
    leaving = user_create(**SignUpFactory.build(), verify_link=verify_link)
    staying = user_create(**SignUpFactory.build(), verify_link=verify_link)
    for user in (leaving, staying):
        DeliveredEvent.objects.create(
            event_id=uuid.uuid4(),
            event_type="user_logged_in",
            event_date_time=timezone.now(),
            environment="Local",
            event_context=f'{{"user_id":{user.pk},"ip_address":"198.51.100.1"}}',
            metadata_version=1,
        )

    request = user_delete(user=leaving)
    assert erasure_process(request_id=request.pk)

    assert [event.event_context for event in DeliveredEvent.objects.all()] == [
        f'{{"user_id":{staying.pk},"ip_address":"198.51.100.1"}}'
    ]


@pytest.mark.django_db
def test_an_erasure_leaves_another_sources_user_with_the_same_id_alone(erasing_into: ClickHouse) -> None:
    leaving = user_create(**SignUpFactory.build(), verify_link=verify_link)
    rows = "".join(
        f"{uuid.uuid4()}\tuser_logged_in\t2026-11-26 10:00:00\t{environment}\t"
        f'{{"user_id":{leaving.pk},"ip_address":"198.51.100.1"}}\t1\n'
        for environment in ("Local", "OtherSite")
    )
    erasing_into.query("INSERT INTO event_log FORMAT TSV", data=rows.encode())

    assert erasure_process(request_id=user_delete(user=leaving).pk)

    wait_until(lambda: erasing_into.rows("SELECT environment FROM event_log") == [["OtherSite"]], timeout=30)


@pytest.mark.django_db
@pytest.mark.parametrize("table", [OUTBOX_TABLE, DEAD_LETTER_TABLE, ARCHIVE_TABLE])
def test_erasure_finds_an_accounts_events_through_the_user_id_index(table: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {ERASE.format(table=table)}", ["42"])
        plan = "\n".join(row[0] for row in cursor.fetchall())

    # On the partitioned archive each partition's own copy of the index answers.
    assert "Index Cond: ((event_context ->> 'user_id'::text) = '42'::text)" in plan
    assert "Seq Scan" not in plan


@pytest.mark.django_db
def test_the_sweep_erases_every_due_account_with_one_mutation_per_table(erasing_into: ClickHouse) -> None:
    leaving = [user_create(**SignUpFactory.build(), verify_link=verify_link) for _ in range(3)]
    staying = user_create(**SignUpFactory.build(), verify_link=verify_link)
    delivered(erasing_into, *(UserLoggedIn(user_id=user.pk, ip_address="198.51.100.1") for user in leaving))
    delivered(erasing_into, UserLoggedIn(user_id=staying.pk, ip_address="198.51.100.2"))
    with transaction.atomic():
        requests = [user_delete(user=user) for user in leaving]
    mutations = (
        "SELECT table, count() FROM system.mutations"
        f" WHERE database = '{erasing_into.database}' GROUP BY table ORDER BY table"
    )
    before = dict(erasing_into.rows(mutations))

    assert erasure_process_due() == 3

    after = {table: int(count) - int(before.get(table, 0)) for table, count in erasing_into.rows(mutations)}
    assert after == {"event_log": 1, "event_log_by_user": 1}
    assert all(ErasureRequest.objects.get(pk=request.pk).completed_at is not None for request in requests)
    assert len(written.events("user_erased")) == 3
    wait_until(lambda: user_ids_in_clickhouse(erasing_into) == [str(staying.pk)], timeout=30)
