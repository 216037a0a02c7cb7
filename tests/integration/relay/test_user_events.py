"""`event_log_by_user` follows `event_log`, on ClickHouse 18.16 (the local server) and current (chdb)."""

from __future__ import annotations

import uuid

from shared.events import Envelope, UserLoggedIn, UserLoginFailed
from tests.support.clickhouse import ClickHouse, migrate
from tests.support.current_clickhouse import CurrentClickHouse


def tsv(*events: object, environment: str = "Local", event_id: uuid.UUID | None = None) -> str:
    """Rows of `event_log` as the relay sends them."""
    lines = []
    for event in events:
        envelope = Envelope.wrap(event, environment=environment)  # type: ignore[arg-type]
        columns = [str(event_id or envelope.event_id), envelope.event_type, "2026-11-26 12:00:00"]
        lines.append("\t".join([*columns, environment, envelope.event_context, "1"]))
    return "".join(f"{line}\n" for line in lines)


def by_user(clickhouse: ClickHouse) -> list[list[str]]:
    return clickhouse.rows(
        "SELECT environment, toString(user_id), event_type FROM event_log_by_user FINAL"
        " ORDER BY environment, user_id"
    )


def test_every_event_about_an_account_is_copied_by_account_as_it_is_inserted(clickhouse: ClickHouse) -> None:
    clickhouse.query(
        "INSERT INTO event_log FORMAT TSV",
        data=(
            tsv(UserLoggedIn(user_id=7, ip_address="192.0.2.1"), UserLoggedIn(user_id=3))
            + tsv(UserLoggedIn(user_id=7), environment="OtherSite")
            # A failed sign-in on an address with no account names nobody: not copied.
            + tsv(UserLoginFailed(email="nobody@example.com", user_id=None, ip_address="192.0.2.9"))
        ).encode(),
    )

    assert by_user(clickhouse) == [
        ["Local", "3", "user_logged_in"],
        ["Local", "7", "user_logged_in"],
        ["OtherSite", "7", "user_logged_in"],
    ]


def test_a_copy_delivered_twice_is_shown_once(clickhouse: ClickHouse) -> None:
    event_id = uuid.uuid4()
    body = tsv(UserLoggedIn(user_id=5), event_id=event_id).encode()
    clickhouse.query("INSERT INTO event_log FORMAT TSV", data=body)
    clickhouse.query("INSERT INTO event_log FORMAT TSV", data=body)

    assert clickhouse.value("SELECT count() FROM event_log_by_user") == "2"
    assert by_user(clickhouse) == [["Local", "5", "user_logged_in"]]


def test_migrating_a_database_whose_event_log_has_events_copies_them_once(clickhouse: ClickHouse) -> None:
    clickhouse.query("INSERT INTO event_log FORMAT TSV", data=tsv(UserLoggedIn(user_id=11)).encode())
    clickhouse.query("DROP TABLE event_log_by_user_mv")
    clickhouse.query("DROP TABLE event_log_by_user")

    migrate(clickhouse)
    migrate(clickhouse)  # the table exists now: nothing is copied again

    assert clickhouse.value("SELECT count() FROM event_log_by_user") == "1"
    assert by_user(clickhouse) == [["Local", "11", "user_logged_in"]]


def test_current_clickhouse_copies_inserts_by_account_too(current_clickhouse: CurrentClickHouse) -> None:
    current_clickhouse.insert(tsv(UserLoggedIn(user_id=7), UserLoggedIn(user_id=3)).encode())

    assert current_clickhouse.query(
        "SELECT user_id FROM event_log_by_user FINAL WHERE environment = 'Local' ORDER BY user_id"
    ).split() == ["3", "7"]
