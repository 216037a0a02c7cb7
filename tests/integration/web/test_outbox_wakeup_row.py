"""The wake-up row comes back after every migrate, and migrating the outbox away does not fail."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.management import call_command
from django.db import connection

from shared.outbox import WAKEUP_TABLE
from webapp.outbox.models import WakeUp

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
    assert any(kind == "trigger" for kind, _, _ in before), "the wake-up trigger should be there at the start"
    try:
        yield before
    finally:
        call_command("migrate", "outbox", verbosity=0)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_migrating_the_outbox_away_and_back_restores_the_wakeup_row(
    outbox_migrated_back: list[tuple[str, str, str]],
) -> None:
    # Each migrate below sends post_migrate while the table does not exist.
    call_command("migrate", "outbox", "zero", verbosity=0)
    assert not table_exists(WAKEUP_TABLE)
    call_command("migrate", "users", verbosity=0)

    call_command("migrate", "outbox", verbosity=0)
    # The migration itself inserts the row: take it away so only the receiver can put it back.
    WakeUp.objects.all().delete()
    call_command("migrate", verbosity=0)

    assert list(WakeUp.objects.values_list("id", flat=True)) == [1]
    assert outbox_schema() == outbox_migrated_back
