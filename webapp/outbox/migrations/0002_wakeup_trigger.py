"""Wake the relay with a debounced NOTIFY when events are written.

A NOTIFY in every business transaction halves the producers' commit rate:
PostgreSQL serialises notifying commits on one lock. So notifications are
debounced twice, and the common case costs a producer almost nothing:

1. Per session, in the trigger's `WHEN` clause (a plain expression, no function
   call): a session that looked less than one window ago skips the trigger
   entirely. The time it may look again is a session setting
   (`die_hard.outbox_wake_after`); it reverts if the transaction rolls back.
2. Across sessions: the first statement after the window takes the single
   `event_outbox_wakeup` row with `FOR UPDATE SKIP LOCKED` (never waiting for
   another producer), stamps it and notifies; the others read it and move on.

At most one notification per window reaches the relay. After a wake-up the
relay keeps looking at the outbox every few milliseconds until it has stayed
empty for two windows, and it polls on a timer, so a skipped or lost
notification delays an event, never loses it.
If the row is missing (the table was truncated), every look notifies until
the relay or the next `migrate` puts it back.
"""

from __future__ import annotations

from django.db import migrations

from shared.outbox import NOTIFY_CHANNEL, NOTIFY_DEBOUNCE_MS, OUTBOX_TABLE

# The trigger and its row went in 0007 (the site wakes the relay after commit);
# their names stay here, as they were, for the migrations in between.
WAKEUP_TABLE = "event_outbox_wakeup"
RESTORE_WAKEUP_ROW = (
    f"INSERT INTO {WAKEUP_TABLE} (id, notified_at) VALUES (1, '-infinity') ON CONFLICT DO NOTHING"
)
WINDOW_SECONDS = NOTIFY_DEBOUNCE_MS / 1000
SESSION_GATE = "die_hard.outbox_wake_after"

FORWARD = f"""
{RESTORE_WAKEUP_ROW};

CREATE OR REPLACE FUNCTION {OUTBOX_TABLE}_wake_relay() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config(
        '{SESSION_GATE}', (extract(epoch FROM clock_timestamp()) + {WINDOW_SECONDS})::text, false
    );
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
        -- Inserting the row here would make every producer wait on the first
        -- one's uncommitted row: notify undebounced until it is restored.
        PERFORM pg_notify('{NOTIFY_CHANNEL}', '');
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER {OUTBOX_TABLE}_wake_relay
AFTER INSERT ON {OUTBOX_TABLE}
FOR EACH STATEMENT
WHEN (
    coalesce(nullif(current_setting('{SESSION_GATE}', true), ''), '0')::float8
    < extract(epoch FROM clock_timestamp())
)
EXECUTE FUNCTION {OUTBOX_TABLE}_wake_relay();
"""

BACKWARD = f"""
DROP TRIGGER IF EXISTS {OUTBOX_TABLE}_wake_relay ON {OUTBOX_TABLE};
DROP FUNCTION IF EXISTS {OUTBOX_TABLE}_wake_relay();
DELETE FROM {WAKEUP_TABLE};
"""


class Migration(migrations.Migration):
    dependencies = [("outbox", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
