"""The welcome e-mail: recorded with the sign-up, sent after commit, even across a Redis outage."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery
from celery.contrib.testing.app import TestApp, setup_default_app
from celery.contrib.testing.worker import start_worker
from django.conf import settings
from django.core import mail
from django.test import Client
from pytest_django import DjangoCaptureOnCommitCallbacks

from tests.integration.web.factories import SignUpFactory, verify_link
from tests.support.waiting import RedisServer, running_redis, wait_until
from webapp.core.broker import broker_gate
from webapp.mail.models import OutgoingEmail
from webapp.mail.tasks import email_dispatch_pending
from webapp.outbox.wakeup import _ring
from webapp.users import services
from webapp.users.models import User
from webapp.users.services import EmailTaken, user_create


@pytest.mark.django_db
def test_the_welcome_email_is_recorded_in_the_sign_up_transaction_with_a_verification_link() -> None:
    user = user_create(**SignUpFactory.build(), verify_link=verify_link)

    [email] = OutgoingEmail.objects.all()
    assert (email.user_id, email.to, email.subject) == (user.pk, user.email, services.WELCOME_SUBJECT)
    assert "http://testserver/accounts/email/verify/" in email.body


@pytest.mark.django_db
def test_the_welcome_email_quotes_nothing_the_person_typed() -> None:
    # The address is not verified yet: whoever signed up may not own it.
    user_create(
        **SignUpFactory.build(first_name="Urgent", last_name="Visit-evil-example"), verify_link=verify_link
    )

    [email] = OutgoingEmail.objects.all()
    assert email.body.startswith("Hello,\n")
    assert "Urgent" not in email.body
    assert "Visit-evil-example" not in email.body


@pytest.mark.django_db
def test_a_refused_sign_up_records_no_welcome_email(
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    user_create(**SignUpFactory.build(email="taken@example.com"), verify_link=verify_link)
    OutgoingEmail.objects.all().delete()

    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(EmailTaken):
        user_create(**SignUpFactory.build(email="taken@example.com"), verify_link=verify_link)

    assert callbacks == []
    assert not OutgoingEmail.objects.exists()


@pytest.mark.django_db
def test_a_worker_is_asked_to_send_it_only_after_the_sign_up_commits(
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        user_create(**SignUpFactory.build(), verify_link=verify_link)

    # Besides the relay's wake-up, which follows every commit that wrote events.
    assert len([callback for callback in callbacks if getattr(callback, "func", None) is not _ring]) == 1


def test_celery_beat_sweeps_the_recorded_emails_every_few_seconds() -> None:
    [entry] = [
        entry
        for entry in settings.CELERY_BEAT_SCHEDULE.values()
        if entry["task"] == email_dispatch_pending.name
    ]
    schedule = entry["schedule"]
    assert isinstance(schedule, float)
    assert 0 < schedule <= 60


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private Redis that the test may stop; stopped in any case at the end."""
    with running_redis(tmp_path) as server:
        yield server


@pytest.fixture
def celery_app(redis_server: RedisServer) -> Iterator[Celery]:
    """The site's tasks bound to a Celery app whose broker is the private Redis."""
    app = TestApp(
        name="die-hard-tests",
        broker=redis_server.url,
        config={
            "task_default_queue": f"tests-web-{uuid.uuid4().hex}",
            "task_ignore_result": True,
            "broker_connection_retry_on_startup": True,
            "worker_enable_remote_control": False,
        },
    )
    broker_gate.reset()
    try:
        with setup_default_app(app):
            yield app
    finally:
        broker_gate.reset()


def sent_to(mailoutbox: list[mail.EmailMessage], address: str) -> list[mail.EmailMessage]:
    return [message for message in mailoutbox if message.to == [address]]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_sends_the_welcome_email_right_after_sign_up(
    celery_app: Celery, mailoutbox: list[mail.EmailMessage]
) -> None:
    data = SignUpFactory.build()

    with start_worker(celery_app, pool="solo", perform_ping_check=False):
        user_create(**data, verify_link=verify_link)
        wait_until(lambda: sent_to(mailoutbox, data["email"]), timeout=30)

    [message] = mailoutbox
    assert message.subject == services.WELCOME_SUBJECT
    assert not OutgoingEmail.objects.exists()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_with_redis_down_sign_up_succeeds_and_the_email_is_sent_once_redis_is_back(
    redis_server: RedisServer, celery_app: Celery, mailoutbox: list[mail.EmailMessage]
) -> None:
    api_sign_up, form_sign_up = SignUpFactory.build(), SignUpFactory.build()
    redis_server.stop()

    started = time.monotonic()
    api_response = Client().post("/api/users/", json.dumps(api_sign_up), content_type="application/json")
    form_response = Client().post("/accounts/register/", form_sign_up)
    elapsed = time.monotonic() - started

    assert api_response.status_code == 201
    assert form_response.status_code == 302
    assert form_response["Location"] == "/"
    assert User.objects.count() == 2
    assert OutgoingEmail.objects.count() == 2
    assert mailoutbox == []
    # One bounded attempt at the broker, then the site stops asking for a while.
    assert elapsed < 10

    redis_server.start()
    with start_worker(celery_app, pool="solo", perform_ping_check=False):
        # What Celery beat sends every MAIL_DISPATCH_INTERVAL seconds, twice.
        email_dispatch_pending.delay()
        wait_until(lambda: not OutgoingEmail.objects.exists(), timeout=30)
        email_dispatch_pending.delay()
        wait_until(lambda: len(mailoutbox) >= 2, timeout=30)
        time.sleep(0.5)

    assert len(sent_to(mailoutbox, api_sign_up["email"])) == 1
    assert len(sent_to(mailoutbox, form_sign_up["email"])) == 1
    assert len(mailoutbox) == 2
