"""An index on the account each event is about, on every table that keeps events.

The activity page lists an account's pending events and erasure deletes an
account's events from the outbox, the dead letters and the archive of
delivered events; without an index each is a scan parsing every row's JSON.
The index is partial (events about no account are left out) and on the
expression the queries use (`shared.outbox.USER_ID_EXPRESSION`). On the
partitioned archive it is made on the parent, so every partition, present and
future, gets one.
"""

from __future__ import annotations

from django.db import migrations

from shared.outbox import ARCHIVE_TABLE, DEAD_LETTER_TABLE, OUTBOX_TABLE, USER_ID_EXPRESSION

TABLES = (OUTBOX_TABLE, DEAD_LETTER_TABLE, ARCHIVE_TABLE)


def index_name(table: str) -> str:
    """The index on `table`'s user id."""
    return f"{table}_user_id"


class Migration(migrations.Migration):
    dependencies = [("outbox", "0005_archive_partition_functions")]

    operations = [
        migrations.RunSQL(
            f"CREATE INDEX IF NOT EXISTS {index_name(table)} ON {table} ({USER_ID_EXPRESSION})"
            f" WHERE {USER_ID_EXPRESSION} IS NOT NULL",
            f"DROP INDEX IF EXISTS {index_name(table)}",
        )
        for table in TABLES
    ]
