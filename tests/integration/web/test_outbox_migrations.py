"""The outbox's migrations go back and forth, and leave the outbox without a trigger."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.management import call_command
from django.db import connection

# Everything the outbox's migrations create, by name and definition: the test
# migrates them away and back, and the rest of the run needs them unchanged.
# The archive's hourly partitions are not among them: relays make those as
# they run.
_SCHEMA = """
    SELECT 'column', c.relname || '.' || a.attname,
           format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull::text || ' '
           || coalesce(pg_get_expr(d.adbin, d.adrelid), '') || ' ' || a.attidentity::text
      FROM pg_attribute a
      JOIN pg_class c ON c.oid = a.attrelid
      LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
     WHERE c.relname LIKE 'event\\_outbox%%' AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
       AND c.relname !~ '^event_outbox_delivered_p[0-9]+$'
    UNION ALL
    SELECT 'index', indexname, indexdef FROM pg_indexes
     WHERE tablename LIKE 'event\\_outbox%%' AND tablename !~ '^event_outbox_delivered_p[0-9]+$'
    UNION ALL
    SELECT 'constraint', conname, pg_get_constraintdef(con.oid)
      FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
     WHERE c.relname LIKE 'event\\_outbox%%' AND c.relname !~ '^event_outbox_delivered_p[0-9]+$'
    UNION ALL
    SELECT 'trigger', tgname, pg_get_triggerdef(t.oid)
      FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
     WHERE c.relname LIKE 'event\\_outbox%%' AND NOT t.tgisinternal
    UNION ALL
    SELECT 'function', proname, pg_get_functiondef(p.oid)
      FROM pg_proc p WHERE proname LIKE 'event\\_outbox%%'
    ORDER BY 1, 2
"""


def outbox_schema() -> list[tuple[str, str, str]]:
    """The outbox's columns, indexes, constraints, triggers and functions as PostgreSQL defines them."""
    with connection.cursor() as cursor:
        cursor.execute(_SCHEMA)
        return [tuple(row) for row in cursor.fetchall()]


def table_exists(name: str) -> bool:
    """Whether the table is in the database at all."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [name])
        [exists] = cursor.fetchone()
        return bool(exists)


@pytest.fixture
def outbox_migrated_back() -> Iterator[list[tuple[str, str, str]]]:
    """The outbox's schema before the test; whatever the test did, the outbox is migrated back after it."""
    before = outbox_schema()
    try:
        yield before
    finally:
        call_command("migrate", "outbox", verbosity=0)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_migrating_the_outbox_away_and_back_leaves_it_as_it_was_without_a_trigger(
    outbox_migrated_back: list[tuple[str, str, str]],
) -> None:
    # Back before the trigger went: it and its single row are there again.
    call_command("migrate", "outbox", "0006", verbosity=0)
    assert any(kind == "trigger" for kind, _, _ in outbox_schema())
    assert table_exists("event_outbox_wakeup")

    call_command("migrate", "outbox", "zero", verbosity=0)
    assert not table_exists("event_outbox")
    call_command("migrate", verbosity=0)

    assert not table_exists("event_outbox_wakeup")
    assert not any(kind in {"trigger", "function"} and "wake" in name for kind, name, _ in outbox_schema())
    assert outbox_schema() == outbox_migrated_back
