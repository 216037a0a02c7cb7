"""The event contract: an event names its type, and its envelope carries what the analysts' table holds."""

from __future__ import annotations

import json
from datetime import UTC

import pytest
from pydantic import ValidationError

from shared.events import Envelope, UserCreated, UserEmailVerified, UserLoginFailed


def test_an_event_type_is_the_snake_case_of_its_class_name() -> None:
    assert UserCreated.event_type == "user_created"
    assert UserLoginFailed.event_type == "user_login_failed"
    assert UserEmailVerified.event_type == "user_email_verified"


def test_a_verified_address_is_recorded_by_account_and_client_address_only() -> None:
    envelope = Envelope.wrap(UserEmailVerified(user_id=7, ip_address="192.0.2.1"), environment="Local")

    assert (envelope.event_type, envelope.metadata_version) == ("user_email_verified", 1)
    assert envelope.event_context == '{"user_id":7,"ip_address":"192.0.2.1"}'
    with pytest.raises(ValidationError, match="email"):
        UserEmailVerified(user_id=7, email="ada@example.com")  # type: ignore[call-arg]  # the mistake under test


def test_an_event_refuses_fields_it_does_not_declare() -> None:
    with pytest.raises(ValidationError, match="password"):
        UserLoginFailed(email="ada@example.com", password="secret")  # type: ignore[call-arg]  # the mistake under test


def test_an_envelope_carries_the_type_environment_version_and_compact_json_payload() -> None:
    envelope = Envelope.wrap(
        UserCreated(user_id=7, email="ada@example.com", first_name="Ada", last_name="Lovelace"),
        environment="Local",
    )

    assert envelope.event_type == "user_created"
    assert envelope.environment == "Local"
    assert envelope.metadata_version == 1
    assert envelope.event_context == (
        '{"user_id":7,"email":"ada@example.com","first_name":"Ada","last_name":"Lovelace"}'
    )


def test_an_envelope_keeps_non_ascii_text_as_it_is() -> None:
    envelope = Envelope.wrap(
        UserCreated(user_id=7, email="zoe@example.com", first_name="Zoë", last_name="Żółć"),
        environment="Local",
    )

    assert json.loads(envelope.event_context)["last_name"] == "Żółć"
    assert "Zoë" in envelope.event_context


def test_every_envelope_gets_its_own_id_and_a_utc_time() -> None:
    event = UserCreated(user_id=7, email="ada@example.com", first_name="Ada", last_name="Lovelace")

    first, second = Envelope.wrap(event, environment="Local"), Envelope.wrap(event, environment="Local")

    assert first.event_id != second.event_id
    assert first.event_date_time.tzinfo is UTC
