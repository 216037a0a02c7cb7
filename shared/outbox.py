"""The outbox contract between web and relay: table names, columns, and the statements both run.

The web site creates these tables (Django migrations) and writes to them; the
relay reads, deletes and dead-letters rows in them. Neither imports the other:
whatever both sides need to agree on is spelled here, once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, SupportsFloat

OUTBOX_TABLE: Final = "event_outbox"
DEAD_LETTER_TABLE: Final = "event_outbox_dead_letter"
# Delivered events, kept for `RELAY_ARCHIVE_RETENTION` so that what ClickHouse
# lost can be found and sent again. Partitioned by delivery hour: expiry drops
# whole partitions (`<table>_pYYYYMMDDHH`); rows no partition covers land in
# the default partition (`<table>_default`).
ARCHIVE_TABLE: Final = "event_outbox_delivered"
ARCHIVE_PARTITION_PREFIX: Final = f"{ARCHIVE_TABLE}_p"
ARCHIVE_DEFAULT_PARTITION: Final = f"{ARCHIVE_TABLE}_default"
# Functions (created by the site's migrations, run as the archive's owner) that
# make one hourly partition, drop one, and expire the default partition's rows:
# the relay's own role owns no table.
ARCHIVE_ADD_PARTITION: Final = f"{ARCHIVE_TABLE}_add_partition"
ARCHIVE_DROP_PARTITION: Final = f"{ARCHIVE_TABLE}_drop_partition"
ARCHIVE_EXPIRE_DEFAULT: Final = f"{ARCHIVE_TABLE}_expire_default"
# PostgreSQL advisory lock key held while the relay reconciles the archive with
# ClickHouse (it re-sends what ClickHouse lacks). Erasing an account's events
# takes it too, so a reconciliation never re-sends what was just erased.
RECONCILE_LOCK: Final = 0x64_68_72_63

# The channel a writer notifies after it committed events. Notifications are
# hints: the relay also polls, so a lost or debounced notification delays,
# never loses, an event.
NOTIFY_CHANNEL: Final = "event_outbox"

# Each writing process notifies at most once per this many milliseconds; after
# a wake-up the relay keeps looking at the outbox until it has stayed empty for
# two such windows, to catch the transactions the debounce left silent.
NOTIFY_DEBOUNCE_MS: Final = 50

# What a writer sends, on its own connection and outside the transaction that
# wrote the events, once that transaction has committed (`WakeUpDebounce` says
# when). Sent after the commit it costs the business transaction nothing; a
# writer that does not send it (a script, `psql`) is found by the relay's poll
# (`RELAY_POLL_INTERVAL`).
WAKE_RELAY: Final = f"SELECT pg_notify('{NOTIFY_CHANNEL}', '')"

# The account an event is about, as SQL on the `json` payload (`"user_id":N`,
# or null): every table that keeps events has an index on this expression, so
# the activity page and erasure find one account's events without a scan.
USER_ID_EXPRESSION: Final = "(event_context ->> 'user_id')"

# The analysts' ClickHouse table, and its view without the copies an
# at-least-once delivery can leave (the relay creates both; the site reads the view).
EVENT_LOG_TABLE: Final = "event_log"
EVENT_LOG_DEDUP_VIEW: Final = "event_log_dedup"
# Every event about an account, copied from `event_log` as it arrives (a
# materialized view the relay creates) and sorted by (environment, user_id,
# time): the activity page and erasure read one account's events from it
# without scanning `event_log`. Same engine, so `FINAL` hides copies here too.
USER_EVENTS_TABLE: Final = "event_log_by_user"

# Columns in the order the relay sends them to ClickHouse's `event_log`.
EVENT_LOG_COLUMNS: Final = (
    "event_id",
    "event_type",
    "event_date_time",
    "environment",
    "event_context",
    "metadata_version",
)

# Sentry's `sentry-trace` and `baggage` of the request that wrote an event.
TRACE_COLUMNS: Final = ("sentry_trace", "baggage")

# Every column an event keeps in the outbox and in the dead-letter table: the
# analysts' columns, the trace headers of the request that wrote it, and how
# often it has been set aside.
EVENT_COLUMNS: Final = (*EVENT_LOG_COLUMNS, *TRACE_COLUMNS, "attempts")

# The archive's columns (`ARCHIVE_TABLE`): the analysts' columns and when the
# event was delivered.
ARCHIVE_COLUMNS: Final = (*EVENT_LOG_COLUMNS, "delivered_at")

# Largest payload (`event_context`, bytes of JSON) the outbox accepts: a CHECK
# constraint refuses a larger event in the producer's own transaction, long
# before it could stall the relay.
EVENT_CONTEXT_MAX_BYTES: Final = 1024 * 1024


class WakeUpDebounce:
    """When a writing process should send `WAKE_RELAY`: at most once per window, on the leading edge.

    The first commit after a quiet window rings at once (an idle relay wakes
    without delay); commits inside the window stay silent, and the relay's
    follow-up looks after each wake-up find them. One per process, shared by
    its threads.
    """

    def __init__(
        self, window: float = NOTIFY_DEBOUNCE_MS / 1000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.window = window
        self._clock = clock
        self._next = float("-inf")
        self._lock = threading.Lock()

    def due(self) -> bool:
        """Whether to ring now; saying yes starts a new window."""
        now = self._clock()
        with self._lock:
            if now < self._next:
                return False
            self._next = now + self.window
            return True


# How much is waiting, for how long, and how much was set aside, in one query.
# The relay claims in id order, so the row with the smallest id is the one
# waiting longest; `ORDER BY id LIMIT 1` reads it from the primary key index.
# The age is PostgreSQL's `now()` minus `event_date_time`, which the web host
# that produced the event stamped: its clock running behind or ahead of the
# database's makes the backlog look older or younger.
def backlog_query(*, cap: int | None = None) -> str:
    """The backlog query; with `cap`, both counts stop there (a bounded scan, whatever the backlog)."""

    def counted(table: str) -> str:
        if cap is None:
            return f"(SELECT count(*) FROM {table})"
        return f"(SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT {int(cap)}) AS counted)"

    return f"""
    SELECT
        {counted(OUTBOX_TABLE)} AS pending_events,
        (SELECT extract(epoch FROM now() - event_date_time) FROM {OUTBOX_TABLE} ORDER BY id LIMIT 1)
            AS oldest_pending_age_seconds,
        {counted(DEAD_LETTER_TABLE)} AS dead_letters
"""


BACKLOG: Final = backlog_query()


@dataclass(frozen=True, slots=True)
class Backlog:
    """What the relay has still to deliver, for how long, and how much it set aside."""

    pending_events: int
    oldest_pending_age_seconds: float
    dead_letters: int

    @classmethod
    def from_row(
        cls, pending_events: int, oldest_pending_age_seconds: SupportsFloat | None, dead_letters: int
    ) -> Backlog:
        """The backlog from the columns of `BACKLOG`, in order."""
        # An event stamped by a clock running ahead of the database's would look
        # younger than new: no backlog is younger than zero.
        age = oldest_pending_age_seconds
        return cls(
            pending_events=int(pending_events),
            oldest_pending_age_seconds=max(float(age), 0.0) if age is not None else 0.0,
            dead_letters=int(dead_letters),
        )
