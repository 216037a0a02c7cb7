"""The event contract holds: the envelope, the outbox tables and `event_log` name the same columns."""

from __future__ import annotations

import dataclasses
import importlib

from relay.core.archive import ArchiveQueries
from relay.core.clickhouse import insert_query
from relay.core.outbox import OutboxQueries
from relay.core.schema import CURRENT, LEGACY, check_columns, event_log_columns
from shared.events import Envelope, UserCreated
from shared.outbox import ARCHIVE_COLUMNS, ARCHIVE_TABLE, EVENT_COLUMNS, EVENT_LOG_COLUMNS
from webapp.outbox.models import DeadLetter, DeliveredEvent, EventFields, OutboxEvent


def test_the_envelope_carries_exactly_the_analysts_columns() -> None:
    envelope = Envelope.wrap(
        UserCreated(user_id=1, email="a@example.com", first_name="A", last_name="B"), environment="Local"
    )

    assert {field.name for field in dataclasses.fields(Envelope)} == set(EVENT_LOG_COLUMNS)
    assert tuple(envelope.columns()) == EVENT_LOG_COLUMNS


def test_the_outbox_and_dead_letter_tables_keep_every_event_column() -> None:
    event_fields = tuple(field.name for field in EventFields._meta.get_fields())

    assert event_fields == EVENT_COLUMNS
    for model, own in ((OutboxEvent, {"id"}), (DeadLetter, {"id", "error", "dead_lettered_at"})):
        assert {field.column for field in model._meta.concrete_fields} == {*EVENT_COLUMNS, *own}


def test_event_log_has_the_analysts_columns_in_the_order_the_relay_sends_them() -> None:
    for features in (LEGACY, CURRENT):
        columns = event_log_columns(features)

        assert tuple(columns) == EVENT_LOG_COLUMNS
        check_columns(columns)  # the relay accepts the table it creates
    assert insert_query().endswith(f"({', '.join(EVENT_LOG_COLUMNS)}) FORMAT TabSeparated")
    rendered = OutboxQueries(timestamp_precision=0).tsv_columns
    positions = [rendered.index(name) for name in EVENT_LOG_COLUMNS]
    assert positions == sorted(positions)


def test_the_archive_keeps_the_analysts_columns_in_its_model_its_table_and_what_the_relay_writes() -> None:
    created = importlib.import_module("webapp.outbox.migrations.0003_delivered_archive").FORWARD
    table = created[created.index(f"CREATE TABLE {ARCHIVE_TABLE} (") : created.index(") PARTITION BY")]
    ddl_columns = tuple(line.split()[0] for line in table.splitlines()[1:] if line.strip())

    assert (*EVENT_LOG_COLUMNS, "delivered_at") == ARCHIVE_COLUMNS
    assert tuple(field.column for field in DeliveredEvent._meta.concrete_fields) == ARCHIVE_COLUMNS
    assert ddl_columns == ARCHIVE_COLUMNS
    moving = ArchiveQueries.moving("DELETE FROM event_outbox", returning=None)
    assert f"INSERT INTO {ARCHIVE_TABLE} ({', '.join(EVENT_LOG_COLUMNS)})" in moving
