"""Requests refused for their size are the client's fault: logged at WARNING, never a Sentry error."""

from __future__ import annotations

import logging

import pytest
import sentry_sdk
from django.test import Client
from pytest_django import Settings

from tests.support.sentry import SentrySink, error_events

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _small_limits(settings: Settings) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10


def security_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name.startswith("django.security.")]


def test_an_oversized_body_is_refused_and_logged_as_a_warning_not_reported_as_an_error(
    sentry_events: SentrySink, caplog: pytest.LogCaptureFixture
) -> None:
    response = Client().post("/api/users/", "x" * 4096, content_type="application/json")
    sentry_sdk.flush()

    assert response.status_code == 400
    [record] = security_records(caplog)
    assert (record.name, record.levelname, record.exc_info) == (
        "django.security.RequestDataTooBig",
        "WARNING",
        None,
    )
    assert error_events(sentry_events) == []


def test_too_many_fields_are_refused_and_logged_as_a_warning_not_reported_as_an_error(
    sentry_events: SentrySink, caplog: pytest.LogCaptureFixture
) -> None:
    fields = {f"field{n}": "x" for n in range(50)}

    response = Client().post("/accounts/register/", fields)
    sentry_sdk.flush()

    assert response.status_code == 400
    [record] = security_records(caplog)
    assert (record.name, record.levelname) == ("django.security.TooManyFieldsSent", "WARNING")
    assert error_events(sentry_events) == []


def test_other_security_refusals_stay_errors(caplog: pytest.LogCaptureFixture) -> None:
    Client().get("/", HTTP_HOST="evil.example")

    [record] = security_records(caplog)
    assert (record.name, record.levelname) == ("django.security.DisallowedHost", "ERROR")
