"""How rows of the analysts' table become lines of the activity page."""

from __future__ import annotations

from datetime import UTC, datetime

from webapp.activity.selectors import SECURITY_EVENTS, delivered_entries, delivered_query

ROW = {
    "id": "5f0c1e0e-2a47-4c3e-9a57-0d6f3f0a6c11",
    "event_type": "user_updated",
    "at": "2026-11-26 12:00:00",
    "event_context": '{"user_id":42,"changed_fields":["last_name"],"ip_address":"192.0.2.1"}',
}


def test_a_row_becomes_an_entry_in_utc_with_its_address_and_changed_fields() -> None:
    [entry] = delivered_entries([ROW])

    assert entry.occurred_at == datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    assert (entry.description, entry.details, entry.ip_address) == (
        "Profile changed",
        "last name",
        "192.0.2.1",
    )
    assert not entry.processing


def test_a_row_with_a_malformed_payload_is_still_listed_without_details() -> None:
    [entry] = delivered_entries([{**ROW, "event_context": "{not json", "at": "2026-11-26 12:00:00.250000"}])

    assert (entry.ip_address, entry.details) == (None, "")
    assert entry.occurred_at.microsecond == 250000


def test_the_query_asks_only_for_security_events_of_one_user_newest_first() -> None:
    sql = delivered_query(environment="Local", user_id=42, limit=21)

    assert "user_id = 42" in sql
    assert all(f"'{event_type}'" in sql for event_type in SECURITY_EVENTS)
    assert "environment = 'Local'" in sql
    assert "FROM event_log_by_user FINAL" in sql
    assert "ORDER BY event_date_time DESC" in sql
    assert sql.rstrip().endswith("LIMIT 21")


def test_the_environment_is_quoted_whatever_it_holds() -> None:
    sql = delivered_query(environment="it's \\ odd", user_id=1, limit=1)

    assert "environment = 'it\\'s \\\\ odd'" in sql


def test_every_event_about_a_persons_own_account_is_named_on_the_activity_page() -> None:
    about_the_account = {
        "user_created",
        "user_email_verified",
        "user_logged_in",
        "user_logged_out",
        "user_login_failed",
        "user_password_changed",
        "user_password_reset_requested",
        "user_password_reset",
        "user_updated",
    }

    assert set(SECURITY_EVENTS) == about_the_account
    [entry] = delivered_entries(
        [
            {
                **ROW,
                "event_type": "user_email_verified",
                "event_context": '{"user_id":42,"ip_address":"192.0.2.1"}',
            }
        ]
    )
    assert (entry.description, entry.ip_address) == ("E-mail address verified", "192.0.2.1")
