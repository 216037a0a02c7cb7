"""A writing process rings the relay on the leading edge of each debounce window, never inside one."""

from __future__ import annotations

from shared.outbox import WakeUpDebounce


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_first_commit_rings_at_once() -> None:
    assert WakeUpDebounce(window=0.05, clock=Clock()).due()


def test_commits_inside_the_window_stay_silent() -> None:
    clock = Clock()
    debounce = WakeUpDebounce(window=0.05, clock=clock)
    debounce.due()

    clock.now += 0.049

    assert not debounce.due()


def test_the_first_commit_after_the_window_rings_and_starts_a_new_one() -> None:
    clock = Clock()
    debounce = WakeUpDebounce(window=0.05, clock=clock)
    debounce.due()

    clock.now += 0.05
    rang = debounce.due()
    clock.now += 0.01

    assert rang
    assert not debounce.due()
