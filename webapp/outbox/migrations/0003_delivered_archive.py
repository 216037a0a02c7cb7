"""The archive of delivered events, partitioned by delivery hour.

Expiry must cost nothing: a `DELETE` of a day's rows would leave a day's dead
tuples for vacuum. So the table is `PARTITION BY RANGE (delivered_at)`; the
relay creates hourly partitions ahead of time and drops whole ones once they
are older than its retention. The default partition takes any row no hourly
partition covers, so a delivery never fails for want of a partition.

No index: rows are written once per delivery (the hot path) and read only by
reconciliation, which scans the retention window anyway.
"""

from __future__ import annotations

import django.db.models.functions.datetime
from django.db import migrations, models

import webapp.outbox.models
from shared.outbox import ARCHIVE_DEFAULT_PARTITION, ARCHIVE_TABLE

FORWARD = f"""
CREATE TABLE {ARCHIVE_TABLE} (
    event_id uuid NOT NULL,
    event_type varchar(100) NOT NULL,
    event_date_time timestamp with time zone NOT NULL,
    environment varchar(64) NOT NULL,
    event_context json NOT NULL,
    metadata_version integer NOT NULL,
    delivered_at timestamp with time zone NOT NULL DEFAULT now()
) PARTITION BY RANGE (delivered_at);
CREATE TABLE {ARCHIVE_DEFAULT_PARTITION} PARTITION OF {ARCHIVE_TABLE} DEFAULT;
"""

BACKWARD = f"DROP TABLE IF EXISTS {ARCHIVE_TABLE}"


class Migration(migrations.Migration):
    dependencies = [("outbox", "0002_wakeup_trigger")]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(FORWARD, BACKWARD)],
            state_operations=[
                migrations.CreateModel(
                    name="DeliveredEvent",
                    fields=[
                        ("event_id", models.UUIDField(primary_key=True, serialize=False)),
                        ("event_type", models.CharField(max_length=100)),
                        ("event_date_time", models.DateTimeField()),
                        ("environment", models.CharField(max_length=64)),
                        ("event_context", webapp.outbox.models.JSONTextField()),
                        ("metadata_version", models.IntegerField()),
                        (
                            "delivered_at",
                            models.DateTimeField(db_default=django.db.models.functions.datetime.Now()),
                        ),
                    ],
                    options={"verbose_name": "delivered event", "db_table": ARCHIVE_TABLE},
                ),
            ],
        ),
    ]
