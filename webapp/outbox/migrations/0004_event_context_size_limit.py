"""Refuse payloads over `EVENT_CONTEXT_MAX_BYTES` where events are written.

A producer bug that writes a huge event then fails in its own transaction with
a named constraint, instead of reaching the relay as a batch too large to send.
"""

from __future__ import annotations

from django.db import migrations

from shared.outbox import EVENT_CONTEXT_MAX_BYTES, OUTBOX_TABLE

CONSTRAINT = f"{OUTBOX_TABLE}_event_context_size"


class Migration(migrations.Migration):
    dependencies = [("outbox", "0003_delivered_archive")]

    operations = [
        migrations.RunSQL(
            f"ALTER TABLE {OUTBOX_TABLE} ADD CONSTRAINT {CONSTRAINT}"
            f" CHECK (octet_length(event_context::text) <= {EVENT_CONTEXT_MAX_BYTES})",
            f"ALTER TABLE {OUTBOX_TABLE} DROP CONSTRAINT IF EXISTS {CONSTRAINT}",
        )
    ]
