"""Passwords, password-reset and address-verification links stay out of the logs and out of Sentry.

PostgreSQL is made to refuse the write each path needs (a trigger that raises),
so the request fails the way a failover or a full disk would make it fail, with
the password still held by the frames of the call stack. A whole password reset
runs with request logging and every transaction traced, and its link's token
must appear in no line and no envelope.
"""

from __future__ import annotations

import http.cookiejar
import io
import json
import logging
import re
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Literal

import pytest
import sentry_sdk
import structlog
from django.core import mail
from django.db import connection
from django.test import Client
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from pytest_django.live_server_helper import LiveServer

from shared.logging import logging_config
from shared.outbox import OUTBOX_TABLE
from tests.integration.web.factories import UserFactory
from tests.integration.web.test_password_reset import NEW_PASSWORD, RESET_URL, reset_link
from tests.support.sentry import SentrySink, error_events, everything_sent
from webapp.mail.services import email_dispatch_due
from webapp.users.tokens import email_verification_token

pytestmark = pytest.mark.django_db

SECRET = "Zebra-crossing-secret-913"
SIGN_UP = {"email": "ada@example.com", "password": SECRET, "first_name": "Ada", "last_name": "Lovelace"}


@pytest.fixture(params=["json", "console"])
def captured_log(request: pytest.FixtureRequest) -> Iterator[io.StringIO]:
    """Everything the root logger writes, rendered exactly as the project renders it."""
    log_format: Literal["json", "console"] = request.param
    formatter_config = logging_config(log_format=log_format)["formatters"]["structlog"]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=formatter_config["processors"],
            foreign_pre_chain=formatter_config["foreign_pre_chain"],
        )
    )
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)


def postgres_refuses_inserts_into(table: str) -> None:
    """From now on (until the test's transaction rolls back) every INSERT into `table` fails."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION pg_temp.refuse() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'disk full (simulated)'; END $$"
        )
        cursor.execute(
            f"CREATE TRIGGER refuse BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION pg_temp.refuse()"
        )


def assert_failed_without_the_password(
    status: int, log: io.StringIO, sentry: SentrySink, *, raised_in: str
) -> None:
    """The request failed, the failure was reported, and the password is in no report."""
    sentry_sdk.flush()
    assert status == 500
    assert raised_in in log.getvalue(), "the traceback should have been logged"
    assert error_events(sentry), "the error should have reached Sentry"
    assert SECRET not in log.getvalue()
    assert SECRET not in everything_sent(sentry)


def test_a_failed_api_sign_up_logs_and_reports_no_password(
    captured_log: io.StringIO, sentry_events: SentrySink
) -> None:
    postgres_refuses_inserts_into("users_user")

    response = Client(raise_request_exception=False).post(
        "/api/users/", json.dumps(SIGN_UP), content_type="application/json"
    )

    assert_failed_without_the_password(
        response.status_code, captured_log, sentry_events, raised_in="user_create"
    )


def test_a_failed_form_sign_up_logs_and_reports_no_password(
    captured_log: io.StringIO, sentry_events: SentrySink
) -> None:
    postgres_refuses_inserts_into("users_user")

    response = Client(raise_request_exception=False).post("/accounts/register/", SIGN_UP)

    assert_failed_without_the_password(
        response.status_code, captured_log, sentry_events, raised_in="user_create"
    )


def test_a_failed_refused_sign_in_logs_and_reports_no_password(
    captured_log: io.StringIO, sentry_events: SentrySink
) -> None:
    user = UserFactory.create()
    postgres_refuses_inserts_into(OUTBOX_TABLE)

    response = Client(raise_request_exception=False).post(
        "/accounts/login/", {"username": user.email, "password": SECRET}
    )

    assert_failed_without_the_password(
        response.status_code, captured_log, sentry_events, raised_in="user_login_failure_audit"
    )


def test_a_failed_sign_in_logs_and_reports_no_password(
    captured_log: io.StringIO, sentry_events: SentrySink
) -> None:
    user = UserFactory.create(password=SECRET)
    postgres_refuses_inserts_into(OUTBOX_TABLE)

    response = Client(raise_request_exception=False).post(
        "/accounts/login/", {"username": user.email, "password": SECRET}
    )

    assert_failed_without_the_password(
        response.status_code, captured_log, sentry_events, raised_in="user_login_audit"
    )


def requested_reset_link(client: Client, outbox: list[mail.EmailMessage]) -> tuple[str, str]:
    """Ask for a reset link for a new account; the link's path and its token."""
    user = UserFactory.create()
    client.post(RESET_URL, {"email": user.email})
    email_dispatch_due()
    link = reset_link(outbox[-1])
    return link, link.rstrip("/").rsplit("/", 1)[1]


@pytest.mark.django_db(transaction=True)
def test_a_whole_password_reset_leaves_its_token_in_no_log_line_and_no_sentry_report(
    captured_log: io.StringIO,
    sentry_events: SentrySink,
    mailoutbox: list[mail.EmailMessage],
    live_server: LiveServer,
) -> None:
    link, token = requested_reset_link(Client(), mailoutbox)
    # A browser, through the site's WSGI handler (where Sentry starts its transactions).
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    with browser.open(f"{live_server.url}{link}") as form_page:
        form_url, form = form_page.url, form_page.read().decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)
    assert csrf is not None
    fields = {"csrfmiddlewaretoken": csrf[1], "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    with browser.open(form_url, data=urllib.parse.urlencode(fields).encode()) as done:
        assert done.url.endswith("/accounts/password/reset/done/")
    # The spent link, opened again (a second tab, a mail client's preview).
    with browser.open(f"{live_server.url}{link}") as spent:
        assert "This link does not work" in spent.read().decode()
    sentry_sdk.flush()

    assert "/accounts/password/reset/" in captured_log.getvalue(), "the request lines should be logged"
    assert [
        transaction
        for transaction in sentry_events.transactions()
        if transaction["transaction"] == "/accounts/password/reset/{uidb64}/{token}/"
    ], "the link's requests should have been traced"
    assert token not in captured_log.getvalue()
    assert token not in everything_sent(sentry_events)


def test_a_failure_on_the_reset_link_reports_it_without_its_token(
    captured_log: io.StringIO, sentry_events: SentrySink, mailoutbox: list[mail.EmailMessage]
) -> None:
    client = Client(raise_request_exception=False)
    link, token = requested_reset_link(client, mailoutbox)
    # The link's token moves into the session: saving it fails.
    postgres_refuses_inserts_into("django_session")

    response = client.get(link)
    sentry_sdk.flush()

    assert response.status_code == 500
    assert error_events(sentry_events), "the error should have reached Sentry"
    assert token not in captured_log.getvalue()
    assert token not in everything_sent(sentry_events)


@pytest.mark.django_db(transaction=True)
def test_a_whole_address_verification_leaves_its_token_in_no_log_line_and_no_sentry_report(
    captured_log: io.StringIO, sentry_events: SentrySink, live_server: LiveServer
) -> None:
    user = UserFactory.create()
    token = email_verification_token.make_token(user)
    link = f"/accounts/email/verify/{urlsafe_base64_encode(force_bytes(user.pk))}/{token}/"
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    with browser.open(f"{live_server.url}{link}") as confirm_page:
        confirm_url, page = confirm_page.url, confirm_page.read().decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert csrf is not None
    fields = {"csrfmiddlewaretoken": csrf[1]}
    with browser.open(confirm_url, data=urllib.parse.urlencode(fields).encode()) as done:
        assert done.url.endswith("/accounts/email/verify/done/")
    with browser.open(f"{live_server.url}{link}") as spent:
        assert "This link does not work" in spent.read().decode()
    sentry_sdk.flush()

    assert "/accounts/email/verify/" in captured_log.getvalue(), "the request lines should be logged"
    assert [
        transaction
        for transaction in sentry_events.transactions()
        if transaction["transaction"] == "/accounts/email/verify/{uidb64}/{token}/"
    ], "the link's requests should have been traced"
    assert token not in captured_log.getvalue()
    assert token not in everything_sent(sentry_events)
