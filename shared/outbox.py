"""Names of the outbox tables and the wake-up channel: the contract between web and relay.

The web site creates these tables (Django migrations) and writes to them; the
relay reads, deletes and dead-letters rows in them. Neither imports the other.
"""

from __future__ import annotations

from typing import Final

OUTBOX_TABLE: Final = "event_outbox"
DEAD_LETTER_TABLE: Final = "event_outbox_dead_letter"
WAKEUP_TABLE: Final = "event_outbox_wakeup"
# Delivered events, kept for `RELAY_ARCHIVE_RETENTION` so that what ClickHouse
# lost can be found and sent again. Partitioned by delivery hour: expiry drops
# whole partitions (`<table>_pYYYYMMDDHH`); rows no partition covers land in
# the default partition (`<table>_default`).
ARCHIVE_TABLE: Final = "event_outbox_delivered"

# The channel the outbox trigger notifies. Notifications are hints: the relay
# also polls, so a lost or debounced notification delays, never loses, an event.
NOTIFY_CHANNEL: Final = "event_outbox"

# At most one notification per this many milliseconds across all producers;
# the relay re-checks the outbox this long after a wake-up to catch the
# transactions the debounce left silent.
NOTIFY_DEBOUNCE_MS: Final = 50

# Columns in the order the relay sends them to ClickHouse's `event_log`.
EVENT_LOG_COLUMNS: Final = (
    "event_id",
    "event_type",
    "event_date_time",
    "environment",
    "event_context",
    "metadata_version",
)

# Every column an event keeps in the outbox and in the dead-letter table: the
# analysts' columns, the trace headers of the request that wrote it, and how
# often it has been set aside.
EVENT_COLUMNS: Final = (*EVENT_LOG_COLUMNS, "sentry_trace", "baggage", "attempts")

# Largest payload (`event_context`, bytes of JSON) the outbox accepts: a CHECK
# constraint refuses a larger event in the producer's own transaction, long
# before it could stall the relay.
EVENT_CONTEXT_MAX_BYTES: Final = 1024 * 1024

# Columns of the archive: what re-sending an event byte for byte needs, and
# when it was delivered (the partition key).
ARCHIVE_COLUMNS: Final = (*EVENT_LOG_COLUMNS, "delivered_at")
