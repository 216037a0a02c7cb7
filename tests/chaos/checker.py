"""The accounting: every event the producers wrote, held against what analysts see.

The model is Jepsen's total-queue checker. For each event id:

* `delivered_once`: written (`ok`) and visible exactly once through the
  deduplicated view analysts query;
* `lost`: written (`ok`), yet not visible (and not set aside as poison);
* `duplicated`: visible more than once to analysts;
* `unexpected`: visible, but never written (or written by a transaction known
  to have failed).

Events whose commit was indeterminate may be visible once or not at all.

One loss is not the relay's: after a failover to an *asynchronous* standby,
PostgreSQL itself no longer holds commits the old primary acknowledged but
never shipped. A scenario that accepts that (and measures it) names those
events (`rolled_back`); the ones among them analysts never saw are counted as
`rpo_lost`, apart from `lost`. An event lost although the new primary holds
it is still `lost`.
Copies stored but hidden by the deduplicating table (`redelivered`) are
counted too: they show that a fault really struck between ClickHouse's
acknowledgement and the PostgreSQL commit, and that the table absorbed it.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass

from tests.chaos.producer import History
from tests.chaos.servers import ScratchPostgres
from tests.support.scratch_clickhouse import ScratchClickHouse

DEAD_LETTERS = "SELECT event_id FROM event_outbox_dead_letter"


@dataclass(frozen=True, slots=True)
class Accounting:
    """The outcome of one scenario, event by event, summed up."""

    events: int
    delivered_once: int
    lost: int
    duplicated: int
    unexpected: int
    redelivered: int
    indeterminate: int
    recovered: int
    dead_lettered: int
    stuck: int
    lost_ids: tuple[str, ...] = ()
    # Acknowledged, lost with the commits an asynchronous standby never received.
    rpo_lost: int = 0

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.unexpected or self.stuck)


def _counts(clickhouse: ScratchClickHouse, database: str, table: str) -> Counter[uuid.UUID]:
    answer = clickhouse.query(
        f"SELECT toString(event_id), count() FROM {table} GROUP BY event_id FORMAT TSV", database=database
    )
    counts: Counter[uuid.UUID] = Counter()
    for line in answer.splitlines():
        event_id, count = line.split("\t")
        counts[uuid.UUID(event_id)] = int(count)
    return counts


def account(
    history: History,
    *,
    clickhouse: ScratchClickHouse,
    database: str,
    postgres: ScratchPostgres,
    pg_database: str,
    rolled_back: set[uuid.UUID] | None = None,
) -> Accounting:
    """Check the history against ClickHouse (the view and the raw table) and the outbox.

    `rolled_back`: acknowledged events PostgreSQL itself lost in a failover
    to an asynchronous standby (see the module's docstring).
    """
    dead = {row[0] for row in postgres.execute(DEAD_LETTERS, pg_database)}
    stuck = int(postgres.execute("SELECT count(*) FROM event_outbox", pg_database)[0][0])
    return classify(
        history,
        visible=_counts(clickhouse, database, "event_log_dedup"),
        stored=_counts(clickhouse, database, "event_log"),
        dead_letters=dead,
        stuck=stuck,
        rolled_back=rolled_back,
    )


def classify(
    history: History,
    *,
    visible: Counter[uuid.UUID],
    stored: Counter[uuid.UUID],
    dead_letters: set[uuid.UUID],
    stuck: int,
    rolled_back: set[uuid.UUID] | None = None,
) -> Accounting:
    """Hold what was written against what analysts see (`visible`), what is stored and what went aside."""
    written = history.ok | history.indeterminate
    expected_poison = history.poison & history.ok
    good = history.ok - history.poison
    lost = sorted(
        [event_id for event_id in good if event_id not in visible]
        + [
            event_id
            for event_id in expected_poison
            if event_id not in dead_letters and event_id not in visible
        ]
    )
    rpo_lost = [event_id for event_id in lost if event_id in (rolled_back or set())]
    lost = [event_id for event_id in lost if event_id not in (rolled_back or set())]
    return Accounting(
        events=len(history.ok),
        delivered_once=sum(1 for event_id in history.ok if visible.get(event_id) == 1),
        lost=len(lost),
        duplicated=sum(1 for count in visible.values() if count > 1),
        # Never written, or poison (which must never reach analysts).
        unexpected=sum(1 for event_id in visible if event_id not in written or event_id in history.poison),
        redelivered=sum(stored.values()) - sum(visible.values()),
        indeterminate=len(history.indeterminate),
        recovered=sum(1 for event_id in history.indeterminate if event_id in visible),
        dead_lettered=len(dead_letters),
        stuck=stuck,
        lost_ids=tuple(str(event_id) for event_id in lost[:10]),
        rpo_lost=len(rpo_lost),
    )
