"""Analysts read each event type from a typed view, on ClickHouse 18.16 and on a current server."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from relay.core import event_views
from shared.events import Envelope, Event, event_classes, published_schemas
from tests.support.clickhouse import ClickHouse, migrate
from tests.support.current_clickhouse import CurrentClickHouse
from tests.support.current_clickhouse_http import CurrentClickHouseEndpoint, current_clickhouse_endpoint
from tests.support.project import ROOT, production_env

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


@pytest.fixture
def current_endpoint() -> Iterator[CurrentClickHouseEndpoint]:
    """An empty current ClickHouse that `relay migrate` can reach over HTTP."""
    with current_clickhouse_endpoint() as endpoint:
        yield endpoint


def relay_migrate(endpoint: CurrentClickHouseEndpoint) -> subprocess.CompletedProcess[str]:
    """`relay migrate` of database `analytics` on the endpoint, to its end."""
    return subprocess.run(
        [sys.executable, "-m", "relay", "migrate"],
        cwd=ROOT,
        env=production_env(CLICKHOUSE_HOSTS=f"127.0.0.1:{endpoint.port}", CLICKHOUSE_DATABASE="analytics"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def payload_columns(endpoint: CurrentClickHouseEndpoint, event_type: str) -> dict[str, str]:
    """The event fields' columns of an event type's view on the endpoint, with their types."""
    answer = endpoint.query(
        "SELECT name, type FROM system.columns WHERE database = 'analytics'"
        f" AND table = '{event_views.view_name(event_type)}'"
    )
    rows = [line.split("\t") for line in answer.splitlines()]
    return {name: kind for name, kind in rows if name not in event_views.ENVELOPE_COLUMNS}


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


@pytest.mark.slow
def test_relay_migrate_gives_a_current_server_each_view_with_the_types_the_contract_declares(
    current_endpoint: CurrentClickHouseEndpoint,
) -> None:
    done = relay_migrate(current_endpoint)

    assert done.returncode == 0, done.stderr[-2000:]
    for event_type, versions in published_schemas().items():
        assert payload_columns(current_endpoint, event_type) == event_views.view_columns(versions), event_type


@pytest.mark.slow
def test_relay_migrate_again_on_a_current_server_creates_again_only_the_view_whose_columns_changed(
    current_endpoint: CurrentClickHouseEndpoint,
) -> None:
    assert relay_migrate(current_endpoint).returncode == 0
    view = event_views.view_name("user_created")
    current_endpoint.query(f"DROP TABLE analytics.{view}")
    current_endpoint.query(
        f"CREATE VIEW analytics.{view} AS SELECT event_id, 1 AS stale FROM analytics.event_log"
    )
    current_endpoint.statements.clear()

    done = relay_migrate(current_endpoint)

    assert done.returncode == 0, done.stderr[-2000:]
    # Every other view, and the table's retention, as the first run left them.
    changes = [sql for sql in current_endpoint.statements if sql.startswith(("DROP", "ALTER"))]
    assert changes == [f"DROP TABLE IF EXISTS analytics.{view}"]
    assert payload_columns(current_endpoint, "user_created") == event_views.view_columns(
        published_schemas()["user_created"]
    )
