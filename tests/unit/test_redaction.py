"""Secrets carried in URLs are cut out of log lines and Sentry events; Sentry's own DSN name works."""

from __future__ import annotations

from typing import Any

import pytest

from shared.logging import redact_secrets
from shared.redaction import FILTERED, redact
from shared.sentry import scrub
from shared.settings import CommonSettings

TOKEN = "d0gx1k-0f3a9c2b7e1d4a5b6c7d8e9f0a1b2c3d"
RESET_PATH = f"/accounts/password/reset/MQ/{TOKEN}/"


def test_the_token_of_a_reset_link_is_redacted_and_the_rest_of_the_path_kept() -> None:
    assert redact(f"GET {RESET_PATH}") == f"GET /accounts/password/reset/MQ/{FILTERED}/"


def test_the_form_a_reset_token_was_swapped_for_is_left_alone() -> None:
    assert redact("GET /accounts/password/reset/MQ/set-password/") == (
        "GET /accounts/password/reset/MQ/set-password/"
    )


def test_the_token_of_an_address_verification_link_is_redacted_and_its_confirm_page_left_alone() -> None:
    assert redact(f"GET /accounts/email/verify/MQ/{TOKEN}/") == f"GET /accounts/email/verify/MQ/{FILTERED}/"
    assert redact("POST /accounts/email/verify/MQ/confirm/") == "POST /accounts/email/verify/MQ/confirm/"
    assert redact("GET /accounts/email/verify/done/") == "GET /accounts/email/verify/done/"


def test_a_one_time_token_is_redacted_wherever_it_is_quoted() -> None:
    assert TOKEN not in redact(f"the link https://example.com/somewhere/{TOKEN} was opened")


def test_a_signed_value_is_redacted() -> None:
    signed = "eyJ1IjoxfQ:1vQf2N:" + "A" * 43

    assert redact(f"/verify/{signed}/") == f"/verify/{FILTERED}/"


@pytest.mark.parametrize("name", ["token", "api_key", "code", "signature", "password", "session_id"])
def test_query_parameters_named_as_secrets_are_redacted_and_others_kept(name: str) -> None:
    assert redact(f"/page?{name}=s3cr3t&page=2") == f"/page?{name}={FILTERED}&page=2"


@pytest.mark.parametrize(
    "harmless",
    [
        "request 550e8400-e29b-41d4-a716-446655440000 finished",
        "2026-12-03T08:29:34.563833Z",
        "GET /accounts/password/reset/sent/",
        "trace 4bf92f3577b34da6a3ce929d0e0e4736",
    ],
)
def test_ids_timestamps_and_plain_paths_are_left_alone(harmless: str) -> None:
    assert redact(harmless) == harmless


def test_the_log_processor_redacts_nested_values() -> None:
    event: dict[str, Any] = {
        "event": "request_started",
        "request": f"GET {RESET_PATH}",
        "extra": [RESET_PATH],
    }

    rendered = str(redact_secrets(None, "info", event))

    assert TOKEN not in rendered
    assert "request_started" in rendered


def test_sentry_events_and_transactions_lose_the_token_in_every_field() -> None:
    transaction: Any = {
        "type": "transaction",
        "transaction": "/accounts/password/reset/{uidb64}/{token}/",
        "request": {"url": f"https://example.com{RESET_PATH}", "query_string": "token=abc"},
        "spans": [{"description": f"GET {RESET_PATH}", "data": {"url": RESET_PATH}}],
        "breadcrumbs": {"values": [{"message": f"GET {RESET_PATH}"}]},
    }

    scrubbed = scrub(transaction, {})

    assert TOKEN not in str(scrubbed)
    assert scrubbed["transaction"] == "/accounts/password/reset/{uidb64}/{token}/"


def test_sentry_is_switched_on_by_the_sdks_own_variable_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SENTRY_CONFIG_DSN", raising=False)
    monkeypatch.setenv("SENTRY_DSN", "https://public@sentry.example.com/2")

    assert CommonSettings().sentry_config_dsn == "https://public@sentry.example.com/2"


def test_the_projects_own_sentry_variable_wins_over_the_sdks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENTRY_DSN", "https://public@sentry.example.com/2")
    monkeypatch.setenv("SENTRY_CONFIG_DSN", "https://public@sentry.example.com/1")

    assert CommonSettings().sentry_config_dsn == "https://public@sentry.example.com/1"


def test_traces_are_sampled_at_a_tenth_by_default() -> None:
    assert CommonSettings().sentry_traces_sample_rate == 0.1
