"""A forwarder gives memory back once a burst of at least a threshold of events has ended, not before."""

from __future__ import annotations

from relay.core.memory import Burst


def test_a_burst_below_the_threshold_does_not_call_for_a_trim() -> None:
    burst = Burst(threshold=100)
    burst.delivered(99)

    assert not burst.ended()


def test_the_end_of_a_burst_calls_for_one_trim_and_counting_starts_again() -> None:
    burst = Burst(threshold=100)
    burst.delivered(60)
    burst.delivered(60)

    assert burst.ended()
    assert not burst.ended()


def test_an_isolation_round_adds_nothing_to_the_burst() -> None:
    burst = Burst(threshold=1)
    burst.delivered(-1)

    assert not burst.ended()
