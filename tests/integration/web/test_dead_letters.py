"""Dead letters go back to the outbox unchanged, or are purged: by service, admin action or command."""

from __future__ import annotations

import uuid
from datetime import timedelta
from io import StringIO

import factory
import pytest
from django.contrib.admin.models import LogEntry
from django.core.management import CommandError, call_command
from django.db import IntegrityError
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from factory.django import DjangoModelFactory

from tests.support.clickhouse import ClickHouse
from tests.support.outbox_tables import Outbox
from tests.support.relays import RelayFactory
from tests.support.waiting import wait_until
from webapp.outbox.models import DeadLetter, OutboxEvent
from webapp.outbox.services import dead_letter_purge, dead_letter_requeue

CHANGELIST_URL = "/admin/outbox/deadletter/"


class DeadLetterFactory(DjangoModelFactory[DeadLetter]):
    """A sign-up event ClickHouse refused once."""

    class Meta:
        model = DeadLetter

    event_id = factory.LazyFunction(uuid.uuid4)
    event_type = "user_created"
    event_date_time = factory.LazyFunction(lambda: timezone.now() - timedelta(hours=1))
    environment = "Local"
    event_context = factory.Sequence(
        lambda n: f'{{"email":"person{n}@example.com","first_name":"Ada","last_name":"Lovelace"}}'
    )
    attempts = 1
    error = factory.LazyAttribute(lambda letter: clickhouse_refusal(letter.event_context))


def clickhouse_refusal(event_context: str) -> str:
    """The error ClickHouse 18.16 answers for a refused TSV row: it quotes the row, payload and all."""
    row = f"0\\tLocal\\t{event_context}\\n"
    return (
        "Code: 27, e.displayText() = DB::Exception: Cannot parse input: "
        f"expected \\t before: {row}: (at row 1)\n"
        "\n"
        "Row 1:\n"
        f'Column 0,   name: event_date_time, type: DateTime, ERROR: text "{row[:24]}" is not like DateTime\n'
        "\n"
        ", e.what() = DB::Exception"
    )


def requeued(letter: DeadLetter) -> OutboxEvent | None:
    """The outbox row a dead letter went back as, if it did."""
    return OutboxEvent.objects.filter(event_id=letter.event_id).first()


def call(*args: str) -> str:
    """Run `manage.py dead_letters` with these arguments; return what it printed."""
    out = StringIO()
    call_command("dead_letters", *args, stdout=out)
    return out.getvalue()


@pytest.mark.slow
def test_a_requeued_dead_letter_arrives_in_clickhouse_once_with_its_original_id(
    outbox: Outbox,
    clickhouse: ClickHouse,
    start_relay: RelayFactory,
) -> None:
    [event_id] = outbox.produce(1, metadata_version=-1)  # UInt64 cannot hold it: ClickHouse refuses the row
    start_relay()
    wait_until(outbox.dead_letters, timeout=15)
    DeadLetter.objects.filter(event_id=event_id).update(metadata_version=1)  # the cause, fixed

    call("requeue", "--all")

    count = f"SELECT count() FROM event_log_dedup WHERE event_id = '{event_id}'"
    wait_until(lambda: clickhouse.value(count) == "1", timeout=15)
    wait_until(lambda: outbox.pending() == 0, timeout=5)
    assert clickhouse.value(f"SELECT count() FROM event_log WHERE event_id = '{event_id}'") == "1"
    assert not DeadLetter.objects.exists()


@pytest.mark.django_db
def test_a_requeued_dead_letter_keeps_its_id_time_payload_and_attempts() -> None:
    letter = DeadLetterFactory.create(attempts=2, sentry_trace="trace", baggage="baggage")

    assert dead_letter_requeue(ids=[letter.pk]) == 1

    event = requeued(letter)
    assert event is not None
    assert (event.event_type, event.event_date_time, event.environment, event.metadata_version) == (
        letter.event_type,
        letter.event_date_time,
        letter.environment,
        letter.metadata_version,
    )
    assert event.event_context == letter.event_context
    assert (event.sentry_trace, event.baggage, event.attempts) == ("trace", "baggage", 2)
    assert not DeadLetter.objects.filter(pk=letter.pk).exists()


@pytest.mark.django_db
def test_requeueing_by_event_type_leaves_dead_letters_of_other_types() -> None:
    signup = DeadLetterFactory.create(event_type="user_created")
    login = DeadLetterFactory.create(event_type="user_logged_in")

    assert dead_letter_requeue(event_type="user_created") == 1

    assert requeued(signup) is not None
    assert list(DeadLetter.objects.all()) == [login]


@pytest.mark.django_db
def test_requeueing_an_empty_selection_of_ids_moves_nothing() -> None:
    DeadLetterFactory.create()

    assert dead_letter_requeue(ids=[]) == 0

    assert DeadLetter.objects.count() == 1


@pytest.mark.django_db
def test_requeueing_everything_takes_an_explicit_everything() -> None:
    DeadLetterFactory.create_batch(2)

    with pytest.raises(ValueError, match="say which"):
        dead_letter_requeue()
    assert DeadLetter.objects.count() == 2

    assert dead_letter_requeue(everything=True) == 2
    assert not DeadLetter.objects.exists()


@pytest.mark.django_db
def test_requeueing_everything_together_with_a_filter_is_refused() -> None:
    DeadLetterFactory.create()

    with pytest.raises(ValueError, match="without ids or event_type"):
        dead_letter_requeue(everything=True, event_type="user_created")

    assert DeadLetter.objects.count() == 1


@pytest.mark.django_db
def test_purging_without_a_selection_is_refused() -> None:
    DeadLetterFactory.create()

    with pytest.raises(ValueError, match="say which"):
        dead_letter_purge()

    assert DeadLetter.objects.count() == 1


@pytest.mark.django_db
def test_the_admin_requeue_action_moves_the_selected_dead_letters_back_to_the_outbox(
    admin_client: Client,
) -> None:
    chosen, other = DeadLetterFactory.create_batch(2)

    response = admin_client.post(CHANGELIST_URL, {"action": "requeue", "_selected_action": [chosen.pk]})

    assert response.status_code == 302
    assert requeued(chosen) is not None
    assert list(DeadLetter.objects.all()) == [other]
    [entry] = LogEntry.objects.filter(object_id=str(chosen.pk))
    assert entry.change_message == "Re-queued to the outbox."


@pytest.mark.django_db
def test_the_admin_requeue_action_records_nothing_when_the_move_fails(admin_client: Client) -> None:
    letter = DeadLetterFactory.create()
    OutboxEvent.objects.create(event_id=letter.event_id, event_type="user_created", event_context="{}")

    with pytest.raises(IntegrityError):
        admin_client.post(CHANGELIST_URL, {"action": "requeue", "_selected_action": [letter.pk]})

    assert not LogEntry.objects.filter(object_id=str(letter.pk)).exists()
    assert DeadLetter.objects.filter(pk=letter.pk).exists()


@pytest.mark.django_db
def test_the_admin_purge_action_deletes_the_selected_dead_letters(admin_client: Client) -> None:
    chosen, other = DeadLetterFactory.create_batch(2)

    response = admin_client.post(CHANGELIST_URL, {"action": "purge", "_selected_action": [chosen.pk]})

    assert response.status_code == 302
    assert list(DeadLetter.objects.all()) == [other]
    assert requeued(chosen) is None


@pytest.mark.django_db
def test_the_admin_lists_dead_letters_with_only_a_summary_of_their_error(admin_client: Client) -> None:
    letter = DeadLetterFactory.create(event_context='{"email":"secret@example.com","first_name":"Ada"}')
    assert "secret@example.com" in letter.error  # ClickHouse quoted the row

    page = admin_client.get(CHANGELIST_URL).content.decode()

    assert str(letter.event_id) in page
    assert "Code: 27 — Cannot parse input" in page
    assert "secret@example.com" not in page
    assert "Row 1" not in page


@pytest.mark.django_db
def test_the_admin_shows_the_full_error_on_the_dead_letters_page(admin_client: Client) -> None:
    letter = DeadLetterFactory.create(event_context='{"email":"secret@example.com","first_name":"Ada"}')

    page = admin_client.get(reverse("admin:outbox_deadletter_change", args=[letter.pk])).content.decode()

    assert "Row 1:" in page
    assert "secret@example.com" in page


@pytest.mark.django_db
def test_the_admin_finds_a_dead_letter_by_event_id(admin_client: Client) -> None:
    wanted, other = DeadLetterFactory.create_batch(2)

    page = admin_client.get(CHANGELIST_URL, {"q": str(wanted.event_id)}).content.decode()

    assert str(wanted.event_id) in page
    assert str(other.event_id) not in page


@pytest.mark.django_db
def test_dead_letters_can_be_viewed_but_not_added_or_edited_in_the_admin(admin_client: Client) -> None:
    letter = DeadLetterFactory.create()
    change_url = reverse("admin:outbox_deadletter_change", args=[letter.pk])

    assert admin_client.get(change_url).status_code == 200
    assert admin_client.get(reverse("admin:outbox_deadletter_add")).status_code == 403
    assert admin_client.post(change_url, {"event_type": "edited", "error": "edited"}).status_code == 403
    letter.refresh_from_db()
    assert letter.event_type == "user_created"


@pytest.mark.django_db
def test_pending_events_are_view_only_in_the_admin(admin_client: Client) -> None:
    # Signing the admin in wrote a `user_logged_in` event: that one is pending.
    event = OutboxEvent.objects.get()
    change_url = reverse("admin:outbox_outboxevent_change", args=[event.pk])
    delete_url = reverse("admin:outbox_outboxevent_delete", args=[event.pk])

    assert admin_client.get(reverse("admin:outbox_outboxevent_changelist")).status_code == 200
    assert admin_client.get(change_url).status_code == 200
    assert admin_client.get(reverse("admin:outbox_outboxevent_add")).status_code == 403
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert OutboxEvent.objects.filter(pk=event.pk).exists()


@pytest.mark.django_db
def test_the_command_refuses_to_requeue_without_a_selection() -> None:
    DeadLetterFactory.create()

    with pytest.raises(CommandError, match="--all"):
        call("requeue")

    assert DeadLetter.objects.count() == 1


@pytest.mark.django_db
def test_the_command_refuses_all_together_with_a_filter() -> None:
    DeadLetterFactory.create()

    with pytest.raises(CommandError, match="without --id or --event-type"):
        call("requeue", "--all", "--event-type", "user_created")

    assert DeadLetter.objects.count() == 1


@pytest.mark.django_db
def test_the_command_requeues_the_dead_letters_with_the_given_ids() -> None:
    first, second, kept = DeadLetterFactory.create_batch(3)

    output = call("requeue", "--id", str(first.pk), "--id", str(second.pk))

    assert "Re-queued 2 dead letter(s)" in output
    assert list(DeadLetter.objects.all()) == [kept]


@pytest.mark.django_db
def test_the_command_requeues_every_dead_letter_with_all() -> None:
    letters = DeadLetterFactory.create_batch(2)

    output = call("requeue", "--all")

    assert "Re-queued 2 dead letter(s)" in output
    assert all(requeued(letter) is not None for letter in letters)
    assert not DeadLetter.objects.exists()


@pytest.mark.django_db
def test_the_command_lists_dead_letters_without_their_payload() -> None:
    letter = DeadLetterFactory.create(event_context='{"email":"secret@example.com","first_name":"Ada"}')
    assert "secret@example.com" in letter.error  # ClickHouse quoted the row

    output = call("list")

    assert str(letter.event_id) in output
    assert "Code: 27 — Cannot parse input" in output
    assert "@example.com" not in output
    assert "Row 1" not in output


@pytest.mark.django_db
def test_the_command_purges_only_dead_letters_older_than_the_given_days() -> None:
    old = DeadLetterFactory.create()
    DeadLetter.objects.filter(pk=old.pk).update(dead_lettered_at=timezone.now() - timedelta(days=8))
    recent = DeadLetterFactory.create()

    output = call("purge", "--older-than", "7")

    assert "Purged 1 dead letter(s)" in output
    assert list(DeadLetter.objects.all()) == [recent]


@pytest.mark.django_db
def test_the_command_refuses_to_purge_without_a_selection() -> None:
    DeadLetterFactory.create()

    with pytest.raises(CommandError, match="--older-than"):
        call("purge")

    assert DeadLetter.objects.count() == 1


@pytest.mark.django_db
def test_the_command_refuses_a_negative_number_of_days() -> None:
    with pytest.raises(CommandError, match="days"):
        call("purge", "--older-than", "-1")
