"""Analysts read each event type from a typed view, on ClickHouse 18.16 and on a current server."""

from __future__ import annotations

import json
from typing import Any

from relay.core import event_views
from shared.events import Envelope, Event, event_classes, published_schemas
from tests.support.clickhouse import ClickHouse, migrate
from tests.support.current_clickhouse import CurrentClickHouse

# JSON numbers for 64-bit integers, as every other JSON tool writes them.
JSON_NUMBERS = {"output_format_json_quote_64bit_integers": "0"}
# Text that a careless extraction would cut or garble: quotes, backslashes, a line break, non-ASCII.
AWKWARD = 'Zoë "the \\ quoted"\nŻółć'


def sample(event: type[Event], *, optional_present: bool) -> Event:
    """An instance of `event` with every field set (optional ones only with `optional_present`)."""
    values: dict[str, Any] = {}
    for number, (name, kind) in enumerate(event.field_kinds().items()):
        if kind.endswith("?") and not optional_present:
            values[name] = None
        elif kind.startswith("integer"):
            values[name] = 1000 + number
        elif kind.startswith("boolean"):
            values[name] = True
        elif "[]" in kind:
            values[name] = ("first_name", AWKWARD)
        else:
            values[name] = f"{name}: {AWKWARD}"
    return event(**values)


def samples() -> list[Event]:
    return [sample(event, optional_present=present) for event in event_classes() for present in (True, False)]


def tsv(envelopes: list[Envelope]) -> bytes:
    """The rows as the relay sends them (TSV in `EVENT_LOG_COLUMNS` order)."""

    def field(value: object) -> str:
        text = value.strftime("%Y-%m-%d %H:%M:%S") if hasattr(value, "strftime") else str(value)
        return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")

    return "".join(
        "\t".join(field(value) for value in e.columns().values()) + "\n" for e in envelopes
    ).encode()


def expected(event: Event) -> dict[str, Any]:
    """What the event's view shows for it: its fields, arrays as lists."""
    return {
        name: list(value) if isinstance(value, tuple) else value for name, value in event.model_dump().items()
    }


def test_every_published_event_type_has_a_view_of_its_own(clickhouse: ClickHouse) -> None:
    views = {
        row[0] for row in clickhouse.rows("SELECT name FROM system.tables WHERE database = currentDatabase()")
    }

    assert {event_views.view_name(event_type) for event_type in published_schemas()} <= views


def test_each_view_shows_its_events_fields_typed_on_the_legacy_server(clickhouse: ClickHouse) -> None:
    events = samples()
    envelopes = [Envelope.wrap(event, environment="Local") for event in events]
    clickhouse.query("INSERT INTO event_log FORMAT TSV", data=tsv(envelopes))

    for event, envelope in zip(events, envelopes, strict=True):
        view = event_views.view_name(event.event_type)
        row = json.loads(
            clickhouse.query(
                f"SELECT * FROM {view} WHERE event_id = '{envelope.event_id}' FORMAT JSONEachRow",
                settings=JSON_NUMBERS,
            )
        )
        fields = {name: row[name] for name in event.field_kinds()}
        assert fields == expected(event), view
        assert row["environment"] == "Local"


def test_the_views_columns_have_the_types_the_contract_declares(clickhouse: ClickHouse) -> None:
    published = published_schemas()
    for event_type, versions in published.items():
        rows = clickhouse.rows(
            "SELECT name, type FROM system.columns WHERE database = currentDatabase()"
            f" AND table = '{event_views.view_name(event_type)}'"
        )
        payload = {name: kind for name, kind in rows if name not in event_views.ENVELOPE_COLUMNS}
        assert payload == event_views.view_columns(versions), event_type


def test_a_view_whose_columns_changed_is_created_again_by_migrate(clickhouse: ClickHouse) -> None:
    view = event_views.view_name("user_created")
    clickhouse.query(f"DROP TABLE {view}")
    clickhouse.query(f"CREATE VIEW {view} AS SELECT event_id, 1 AS stale FROM event_log")

    migrate(clickhouse)

    columns = {
        row[0]
        for row in clickhouse.rows(
            f"SELECT name FROM system.columns WHERE database = currentDatabase() AND table = '{view}'"
        )
    }
    assert "stale" not in columns
    assert {"email", "first_name", "last_name", "user_id"} <= columns


def test_each_view_shows_its_events_fields_typed_on_a_current_server(
    current_clickhouse: CurrentClickHouse,
) -> None:
    for statement in event_views.create_views("analytics").values():
        current_clickhouse.query(statement)
    events = samples()
    envelopes = [Envelope.wrap(event, environment="Local") for event in events]
    current_clickhouse.insert(tsv(envelopes))

    for event, envelope in zip(events, envelopes, strict=True):
        view = event_views.view_name(event.event_type)
        answer = current_clickhouse.query(
            f"SELECT * FROM {view} WHERE event_id = '{envelope.event_id}'"
            " SETTINGS output_format_json_quote_64bit_integers = 0",
            "JSONEachRow",
        )
        row = json.loads(answer)
        fields = {name: row[name] for name in event.field_kinds()}
        assert fields == expected(event), view
