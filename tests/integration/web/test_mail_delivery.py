"""E-mail reaches a real mail server through the worker's send path (no console, no memory)."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests.integration.web.factories import UserFactory
from tests.support.smtp import Inbox
from webapp.mail.models import OutgoingEmail
from webapp.mail.tasks import email_dispatch_pending
from webapp.users.services import RESET_EMAIL_SUBJECT

pytestmark = pytest.mark.django_db


def test_a_password_reset_email_arrives_at_the_smtp_server_with_a_working_link(
    smtp_server: Inbox, client: Client
) -> None:
    user = UserFactory.create(email="holly@example.com")

    client.post("/accounts/password/reset/", {"email": "holly@example.com"})
    # What Celery beat's sweep runs in the worker.
    email_dispatch_pending()

    assert smtp_server.recipients == [["holly@example.com"]]
    [message] = smtp_server.messages
    assert message["Subject"] == RESET_EMAIL_SUBJECT
    assert message["To"] == "holly@example.com"
    [body] = smtp_server.bodies()
    match = re.search(r"http://testserver(/accounts/password/reset/[^/\s]+/[^/\s]+/)", body)
    assert match is not None, body
    form_page = Client().get(match.group(1), follow=True)
    assert form_page.redirect_chain[-1][0].endswith("/set-password/")
    assert not OutgoingEmail.objects.filter(user=user).exists()
