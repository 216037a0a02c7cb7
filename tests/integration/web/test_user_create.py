"""`user_create`: the user and its event commit together, or not at all."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError

from shared.events import Event, UserCreated
from tests.integration.web import written
from tests.integration.web.factories import SignUpFactory, UserFactory, verify_link
from webapp.mail.models import OutgoingEmail
from webapp.outbox.client import EventLogClient, TransactionRequired
from webapp.outbox.models import OutboxEvent
from webapp.users import services
from webapp.users.models import User
from webapp.users.services import EmailTaken, user_create


class Boom(Exception):
    """Raised by a test after the event is written."""


@pytest.mark.django_db
def test_the_password_is_hashed_with_argon2() -> None:
    data = SignUpFactory.build()

    user = user_create(**data, verify_link=verify_link)

    assert user.password.startswith("argon2$")
    assert user.check_password(data["password"])


@pytest.mark.django_db
def test_the_email_domain_is_lowercased_and_the_local_part_kept() -> None:
    user = user_create(**SignUpFactory.build(email="Jane.Doe@Example.COM"), verify_link=verify_link)

    assert user.email == "Jane.Doe@example.com"


@pytest.mark.django_db
def test_a_taken_email_raises_email_taken() -> None:
    UserFactory.create(email="taken@example.com")

    with pytest.raises(EmailTaken):
        user_create(**SignUpFactory.build(email="TAKEN@example.com"), verify_link=verify_link)


@pytest.mark.django_db
def test_a_sign_up_racing_another_for_the_same_email_is_refused_by_the_constraint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    UserFactory.create(email="raced@example.com")
    # As if the other sign-up committed between our check and our INSERT.
    monkeypatch.setattr(services, "user_email_taken", lambda *, email: False)

    with pytest.raises(EmailTaken):
        user_create(**SignUpFactory.build(email="Raced@example.com"), verify_link=verify_link)

    assert User.objects.count() == 1
    assert not OutboxEvent.objects.exists()


@pytest.mark.django_db
def test_a_weak_password_raises_a_validation_error_and_writes_nothing() -> None:
    with pytest.raises(ValidationError):
        user_create(**SignUpFactory.build(password="abc"), verify_link=verify_link)

    assert not User.objects.exists()
    assert not OutboxEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_failure_after_the_event_is_written_rolls_back_the_user_and_the_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    publish = EventLogClient.publish

    def publish_then_fail(self: EventLogClient, *events: Event) -> Any:
        publish(self, *events)
        assert OutboxEvent.objects.count() == 1  # the event row was really written
        raise Boom

    monkeypatch.setattr(EventLogClient, "publish", publish_then_fail)

    with pytest.raises(Boom):
        user_create(**SignUpFactory.build(), verify_link=verify_link)

    assert not User.objects.exists()
    assert not OutboxEvent.objects.exists()
    assert not OutgoingEmail.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_committed_sign_up_keeps_the_user_and_the_event() -> None:
    user = user_create(**SignUpFactory.build(), verify_link=verify_link)

    assert User.objects.filter(pk=user.pk).exists()
    assert written.event_types() == ["user_created"]


@pytest.mark.django_db(transaction=True)
def test_publishing_outside_a_transaction_is_refused() -> None:
    client = EventLogClient.from_settings()

    with pytest.raises(TransactionRequired):
        client.publish(UserCreated(user_id=1, email="a@example.com", first_name="A", last_name="B"))

    assert not OutboxEvent.objects.exists()
