"""Wake the relay with a debounced NOTIFY when events are written.

A NOTIFY in every business transaction halves the producers' commit rate:
PostgreSQL serialises notifying commits on one lock. So at most one transaction
per debounce window notifies. The first statement to insert into the outbox
after the window has passed takes the single `event_outbox_wakeup` row with
`FOR UPDATE SKIP LOCKED` (never waiting for another producer), stamps it and
notifies; every other statement in the window reads one row and moves on.
If the row is missing (the table was truncated) every statement notifies until
the relay recreates the row, which it checks on its statistics timer.
The relay polls on a timer and re-checks one window after each wake-up, so a
notification that was skipped or lost delays an event, never loses it.
"""

from __future__ import annotations

from django.db import migrations

from shared.outbox import NOTIFY_CHANNEL, NOTIFY_DEBOUNCE_MS, OUTBOX_TABLE, WAKEUP_TABLE

FORWARD = f"""
INSERT INTO {WAKEUP_TABLE} (id, notified_at) VALUES (1, '-infinity') ON CONFLICT DO NOTHING;

CREATE OR REPLACE FUNCTION {OUTBOX_TABLE}_wake_relay() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE {WAKEUP_TABLE} SET notified_at = clock_timestamp()
     WHERE id = (
        SELECT id FROM {WAKEUP_TABLE}
         WHERE id = 1
           AND notified_at < clock_timestamp() - interval '{NOTIFY_DEBOUNCE_MS} milliseconds'
           FOR UPDATE SKIP LOCKED
     );
    IF FOUND THEN
        PERFORM pg_notify('{NOTIFY_CHANNEL}', '');
    ELSIF NOT EXISTS (SELECT FROM {WAKEUP_TABLE}) THEN
        -- The row is gone (a TRUNCATE): notify without debouncing until the
        -- relay puts it back. Inserting it here would make every producer
        -- wait on the first one's uncommitted row.
        PERFORM pg_notify('{NOTIFY_CHANNEL}', '');
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER {OUTBOX_TABLE}_wake_relay
AFTER INSERT ON {OUTBOX_TABLE}
FOR EACH STATEMENT EXECUTE FUNCTION {OUTBOX_TABLE}_wake_relay();
"""

BACKWARD = f"""
DROP TRIGGER IF EXISTS {OUTBOX_TABLE}_wake_relay ON {OUTBOX_TABLE};
DROP FUNCTION IF EXISTS {OUTBOX_TABLE}_wake_relay();
DELETE FROM {WAKEUP_TABLE};
"""


class Migration(migrations.Migration):
    dependencies = [("outbox", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
