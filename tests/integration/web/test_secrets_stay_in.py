"""A 500 during sign-up or sign-in leaves the password in neither the logs nor Sentry.

PostgreSQL is made to refuse the write each path needs (a trigger that raises),
so the request fails the way a failover or a full disk would make it fail, with
the password still held by the frames of the call stack.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Literal

import pytest
import sentry_sdk
import structlog
from django.db import connection
from django.test import Client
from sentry_sdk.integrations.django import DjangoIntegration

from shared.logging import logging_config
from shared.outbox import OUTBOX_TABLE
from shared.sentry import init_sentry
from shared.settings import CommonSettings
from tests.integration.web.factories import UserFactory
from tests.support.sentry import CapturingTransport

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


@pytest.fixture
def sentry_events() -> Iterator[CapturingTransport]:
    """Sentry set up by the project's own `init_sentry`, sending into memory."""
    transport = CapturingTransport()
    settings = CommonSettings(sentry_config_dsn="https://public@sentry.invalid/1")
    init_sentry(settings, component="web", integrations=[DjangoIntegration()], transport=transport)
    try:
        yield transport
    finally:
        sentry_sdk.flush()
        sentry_sdk.init(dsn=None)


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


def everything_sent(transport: CapturingTransport) -> str:
    """Every byte the SDK would have sent, as text."""
    return "\n".join(
        json.dumps(item.payload.json) if item.payload.json is not None else item.payload.get_bytes().decode()
        for envelope in transport.envelopes
        for item in envelope.items
    )


def error_events(transport: CapturingTransport) -> list[dict[str, object]]:
    """The error events (not transactions) the SDK captured."""
    return [
        item.payload.json
        for envelope in transport.envelopes
        for item in envelope.items
        if item.type == "event" and item.payload.json is not None
    ]


def assert_failed_without_the_password(
    status: int, log: io.StringIO, sentry: CapturingTransport, *, raised_in: str
) -> None:
    """The request failed, the failure was reported, and the password is in no report."""
    sentry_sdk.flush()
    assert status == 500
    assert raised_in in log.getvalue(), "the traceback should have been logged"
    assert error_events(sentry), "the error should have reached Sentry"
    assert SECRET not in log.getvalue()
    assert SECRET not in everything_sent(sentry)


def test_a_failed_api_sign_up_logs_and_reports_no_password(
    captured_log: io.StringIO, sentry_events: CapturingTransport
) -> None:
    postgres_refuses_inserts_into("users_user")

    response = Client(raise_request_exception=False).post(
        "/api/users/", json.dumps(SIGN_UP), content_type="application/json"
    )

    assert_failed_without_the_password(
        response.status_code, captured_log, sentry_events, raised_in="user_create"
    )


def test_a_failed_form_sign_up_logs_and_reports_no_password(
    captured_log: io.StringIO, sentry_events: CapturingTransport
) -> None:
    postgres_refuses_inserts_into("users_user")

    response = Client(raise_request_exception=False).post("/accounts/register/", SIGN_UP)

    assert_failed_without_the_password(
        response.status_code, captured_log, sentry_events, raised_in="user_create"
    )


def test_a_failed_refused_sign_in_logs_and_reports_no_password(
    captured_log: io.StringIO, sentry_events: CapturingTransport
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
    captured_log: io.StringIO, sentry_events: CapturingTransport
) -> None:
    user = UserFactory.create(password=SECRET)
    postgres_refuses_inserts_into(OUTBOX_TABLE)

    response = Client(raise_request_exception=False).post(
        "/accounts/login/", {"username": user.email, "password": SECRET}
    )

    assert_failed_without_the_password(
        response.status_code, captured_log, sentry_events, raised_in="user_login_audit"
    )
