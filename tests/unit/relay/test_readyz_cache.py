"""`/readyz` probes at most once per window, however many callers ask."""

from __future__ import annotations

import asyncio

from relay.ops.http import RecentReadiness


class CountingProbes:
    def __init__(self) -> None:
        self.rounds = 0

    async def check(self) -> dict[str, str]:
        self.rounds += 1
        await asyncio.sleep(0.01)
        return {"postgres": "ok", "clickhouse": "ok"}


async def test_many_callers_at_once_share_one_round_of_probes() -> None:
    probes = CountingProbes()
    recent = RecentReadiness(probes, max_age=60)

    reports = await asyncio.gather(*(recent.report() for _ in range(20)))

    assert probes.rounds == 1
    assert all(report == {"postgres": "ok", "clickhouse": "ok"} for report in reports)


async def test_a_report_older_than_the_window_is_probed_afresh() -> None:
    probes = CountingProbes()
    recent = RecentReadiness(probes, max_age=0.05)

    await recent.report()
    await asyncio.sleep(0.1)
    await recent.report()

    assert probes.rounds == 2


async def test_a_caller_changing_its_copy_does_not_change_the_next_answer() -> None:
    recent = RecentReadiness(CountingProbes(), max_age=60)

    (await recent.report())["clickhouse_accepts_events"] = "refusing"

    assert await recent.report() == {"postgres": "ok", "clickhouse": "ok"}
