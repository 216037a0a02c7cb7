"""The chaos suite's accounting sorts every event into the right bucket (no services needed)."""

from __future__ import annotations

import uuid
from collections import Counter

from tests.chaos.checker import classify
from tests.chaos.producer import History


def ids(count: int) -> list[uuid.UUID]:
    return [uuid.uuid4() for _ in range(count)]


def test_events_written_and_visible_once_are_delivered_once_and_nothing_else() -> None:
    written = ids(3)
    history = History(ok=set(written))

    result = classify(history, visible=Counter(written), stored=Counter(written), dead_letters=set(), stuck=0)

    assert (result.events, result.delivered_once) == (3, 3)
    assert (result.lost, result.duplicated, result.unexpected, result.redelivered) == (0, 0, 0, 0)
    assert result.clean


def test_a_written_event_missing_from_the_view_is_lost_and_named() -> None:
    kept, missing = ids(2)
    history = History(ok={kept, missing})

    result = classify(history, visible=Counter([kept]), stored=Counter([kept]), dead_letters=set(), stuck=0)

    assert result.lost == 1
    assert result.lost_ids == (str(missing),)
    assert not result.clean


def test_an_event_visible_twice_is_duplicated_but_copies_hidden_by_the_view_are_not() -> None:
    twice, hidden = ids(2)
    history = History(ok={twice, hidden})

    result = classify(
        history,
        visible=Counter({twice: 2, hidden: 1}),
        stored=Counter({twice: 2, hidden: 3}),
        dead_letters=set(),
        stuck=0,
    )

    assert result.duplicated == 1
    assert result.redelivered == 2
    assert not result.clean


def test_an_event_nobody_wrote_or_from_a_failed_transaction_is_unexpected() -> None:
    written, stranger = ids(2)
    history = History(ok={written}, failed=1)

    result = classify(
        history,
        visible=Counter([written, stranger]),
        stored=Counter([written, stranger]),
        dead_letters=set(),
        stuck=0,
    )

    assert result.unexpected == 1


def test_an_indeterminate_commit_may_be_visible_once_or_not_at_all() -> None:
    appeared, vanished = ids(2)
    history = History(indeterminate={appeared, vanished})

    result = classify(
        history, visible=Counter([appeared]), stored=Counter([appeared]), dead_letters=set(), stuck=0
    )

    assert (result.lost, result.unexpected, result.recovered, result.indeterminate) == (0, 0, 1, 2)
    assert result.clean


def test_poison_belongs_in_the_dead_letters_never_in_the_view() -> None:
    set_aside, slipped_through, vanished = ids(3)
    history = History(
        ok={set_aside, slipped_through, vanished}, poison={set_aside, slipped_through, vanished}
    )

    result = classify(
        history,
        visible=Counter([slipped_through]),
        stored=Counter([slipped_through]),
        dead_letters={set_aside},
        stuck=0,
    )

    assert result.unexpected == 1  # slipped through to analysts
    assert result.lost == 1  # neither delivered nor set aside
    assert result.dead_lettered == 1


def test_events_left_in_the_outbox_fail_the_scenario() -> None:
    assert not classify(History(), visible=Counter(), stored=Counter(), dead_letters=set(), stuck=5).clean


def test_an_acknowledged_commit_the_failover_rolled_back_counts_against_the_rpo_not_as_a_loss() -> None:
    kept, rolled_back, missing = ids(3)
    history = History(ok={kept, rolled_back, missing})

    result = classify(
        history,
        visible=Counter([kept]),
        stored=Counter([kept]),
        dead_letters=set(),
        stuck=0,
        rolled_back={rolled_back},
    )

    assert result.rpo_lost == 1
    # One the new primary still holds but nobody delivered is lost all the same.
    assert (result.lost, result.lost_ids) == (1, (str(missing),))
    assert not result.clean


def test_a_rolled_back_commit_alone_leaves_the_accounting_clean_and_the_rpo_named() -> None:
    kept, rolled_back = ids(2)
    history = History(ok={kept, rolled_back})

    result = classify(
        history,
        visible=Counter([kept]),
        stored=Counter([kept]),
        dead_letters=set(),
        stuck=0,
        rolled_back={rolled_back},
    )

    assert (result.lost, result.rpo_lost) == (0, 1)
    assert result.clean
