"""The welcome e-mail: sent by a Celery task, enqueued once the sign-up has committed."""

from __future__ import annotations

import smtplib
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from celery import Celery
from celery.contrib.testing.app import TestApp, setup_default_app
from celery.contrib.testing.worker import start_worker
from django.conf import settings
from django.core import mail

from tests.integration.web.factories import SignUpFactory, UserFactory
from webapp.users import tasks
from webapp.users.services import user_create
from webapp.users.tasks import send_welcome_email

# A Redis database the developer's worker never reads, and a queue of our own in it.
TEST_REDIS_DB = 15


def private_broker_url() -> str:
    """The configured Redis, with the test-only database number."""
    parts = urlsplit(settings.REDIS_URL)
    return urlunsplit(parts._replace(path=f"/{TEST_REDIS_DB}"))


@pytest.mark.django_db
def test_the_welcome_email_goes_to_the_user_in_plain_text(mailoutbox: list[mail.EmailMessage]) -> None:
    user = UserFactory.create(first_name="Holly")

    send_welcome_email(user.pk)

    [message] = mailoutbox
    assert message.to == [user.email]
    assert message.subject == tasks.WELCOME_SUBJECT
    assert "Hello Holly," in message.body
    assert message.content_subtype == "plain"
    assert not getattr(message, "alternatives", [])  # no HTML part


@pytest.mark.django_db
def test_the_welcome_email_is_skipped_for_a_deleted_user(mailoutbox: list[mail.EmailMessage]) -> None:
    user = UserFactory.create()
    user_id = user.pk
    user.delete()

    send_welcome_email(user_id)

    assert mailoutbox == []


@pytest.mark.django_db
def test_the_welcome_email_is_retried_after_an_smtp_error(
    monkeypatch: pytest.MonkeyPatch, mailoutbox: list[mail.EmailMessage]
) -> None:
    user = UserFactory.create()
    real_send_mail = mail.send_mail
    attempts: list[int] = []

    def flaky_send_mail(**kwargs: Any) -> int:
        attempts.append(1)
        if len(attempts) == 1:
            raise smtplib.SMTPServerDisconnected("connection unexpectedly closed")
        return real_send_mail(**kwargs)

    monkeypatch.setattr(tasks, "send_mail", flaky_send_mail)

    # Run in this process; Celery then retries at once instead of after the backoff.
    result = send_welcome_email.apply(args=(user.pk,))

    assert result.successful()
    assert len(attempts) == 2
    assert len(mailoutbox) == 1


@pytest.mark.django_db
def test_an_address_the_mail_server_refuses_is_not_retried(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    user = UserFactory.create()
    attempts: list[int] = []

    def refusing_send_mail(**kwargs: Any) -> int:
        attempts.append(1)
        raise smtplib.SMTPRecipientsRefused({user.email: (550, b"no such mailbox")})

    monkeypatch.setattr(tasks, "send_mail", refusing_send_mail)

    result = send_welcome_email.apply(args=(user.pk,))

    assert result.successful()
    assert attempts == [1]
    assert user.email not in caplog.text


@pytest.fixture
def celery_worker() -> Iterator[Celery]:
    """A real Celery worker, in a thread of this process, on a private queue in Redis."""
    queue = f"tests-web-{uuid.uuid4().hex}"
    app = TestApp(
        name="die-hard-tests",
        broker=private_broker_url(),
        config={
            "task_default_queue": queue,
            "task_ignore_result": True,
            "broker_connection_retry_on_startup": True,
            # No broadcast (pidbox) queue: nothing left behind in Redis but our own queue.
            "worker_enable_remote_control": False,
        },
    )
    try:
        with setup_default_app(app), start_worker(app, pool="solo", perform_ping_check=False):
            yield app
    finally:
        with redis.Redis.from_url(private_broker_url()) as client:
            for key in client.scan_iter(f"*{queue}*"):
                client.delete(key)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_sends_the_welcome_email_after_sign_up(
    celery_worker: Celery, mailoutbox: list[mail.EmailMessage]
) -> None:
    data = SignUpFactory.build()

    user_create(**data)

    deadline = time.monotonic() + 30
    while not mailoutbox and time.monotonic() < deadline:
        time.sleep(0.05)
    [message] = mailoutbox
    assert message.to == [data["email"]]
    assert message.subject == tasks.WELCOME_SUBJECT
