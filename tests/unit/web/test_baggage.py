"""An event keeps only a bounded share of its request's Sentry baggage, the sampling context first."""

from __future__ import annotations

from webapp.outbox.client import MAX_BAGGAGE, bounded_baggage

SDK_BAGGAGE = (
    "sentry-trace_id=771a43a4192642f0b136d5159a501700,sentry-public_key=49d0f7386ad645858ae85020e393bef3,"
    "sentry-sample_rate=0.1,sentry-sampled=true,sentry-environment=Production"
)
FLOOD = ",".join(f"sentry-junk{n}={'x' * 200}" for n in range(50))


def test_the_sdks_own_sampling_context_is_kept_whole() -> None:
    assert bounded_baggage(SDK_BAGGAGE) == SDK_BAGGAGE


def test_items_of_other_vendors_are_dropped() -> None:
    assert bounded_baggage(f"vendor=abc,{SDK_BAGGAGE}, other=1") == SDK_BAGGAGE


def test_a_flood_of_made_up_sentry_items_is_cut_to_the_bound_in_whole_items() -> None:
    kept = bounded_baggage(f"{SDK_BAGGAGE},{FLOOD}")

    assert len(kept) <= MAX_BAGGAGE
    assert kept.startswith(SDK_BAGGAGE)
    assert set(kept.split(",")) <= set(f"{SDK_BAGGAGE},{FLOOD}".split(","))
    # Filled: no further item of the flood would have fitted.
    assert len(kept) + 1 + min(map(len, FLOOD.split(","))) > MAX_BAGGAGE


def test_the_sampling_context_survives_a_flood_sent_before_it() -> None:
    kept = bounded_baggage(f"{FLOOD},sentry-sample_rand=0.47,{SDK_BAGGAGE}")

    assert "sentry-sample_rand=0.47" in kept.split(",")
    assert all(item in kept.split(",") for item in SDK_BAGGAGE.split(","))


def test_an_oversized_item_is_left_out_and_the_others_kept() -> None:
    kept = bounded_baggage(f"sentry-transaction={'y' * 2000},{SDK_BAGGAGE}")

    assert kept.split(",") == SDK_BAGGAGE.split(",")


def test_no_baggage_stays_empty() -> None:
    assert bounded_baggage("") == ""
