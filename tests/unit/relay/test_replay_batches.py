"""A replay cuts COPY's stream into inserts of whole lines, bounded in events and bytes."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from relay.maintenance.replay import Batches, delivery_windows


class Recorder:
    """A sink that keeps every body it is given."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def insert(self, body: bytes) -> None:
        self.bodies.append(body)


def cut(chunks: list[bytes], *, max_events: int, max_bytes: int = 1 << 20) -> list[bytes]:
    sink = Recorder()
    batches = Batches(sink, max_events=max_events, max_bytes=max_bytes)

    async def stream() -> None:
        for chunk in chunks:
            await batches.feed(chunk)
        await batches.flush()

    asyncio.run(stream())
    return sink.bodies


def test_lines_split_across_chunks_arrive_whole_in_batches_of_at_most_the_batch_size() -> None:
    lines = b"".join(b"event-%d\n" % n for n in range(10))
    chunks = [lines[i : i + 7] for i in range(0, len(lines), 7)]  # cuts inside lines

    bodies = cut(chunks, max_events=4)

    assert [body.count(b"\n") for body in bodies] == [4, 4, 2]
    assert all(body.endswith(b"\n") for body in bodies)
    assert b"".join(bodies) == lines


def test_a_batch_ends_before_the_line_that_would_pass_the_byte_bound() -> None:
    bodies = cut([b"aaaa\n" * 5], max_events=100, max_bytes=12)

    assert bodies == [b"aaaa\naaaa\n", b"aaaa\naaaa\n", b"aaaa\n"]


def test_a_line_longer_than_the_byte_bound_travels_alone() -> None:
    bodies = cut([b"a\n", b"x" * 50 + b"\n", b"b\n"], max_events=100, max_bytes=10)

    assert bodies == [b"a\n", b"x" * 50 + b"\n", b"b\n"]


def test_nothing_to_send_sends_nothing() -> None:
    assert cut([], max_events=10) == []


HOUR = timedelta(hours=1)
NOW = datetime(2026, 12, 3, 9, 40, tzinfo=UTC)


def test_a_replay_reads_one_delivery_hour_at_a_time_from_its_start_to_past_now() -> None:
    start = datetime(2026, 12, 3, 7, 20, tzinfo=UTC)

    windows = delivery_windows(start, covered=datetime(2026, 12, 3, 5, tzinfo=UTC), now=NOW)

    assert windows == [
        (start, datetime(2026, 12, 3, 8, tzinfo=UTC)),
        (datetime(2026, 12, 3, 8, tzinfo=UTC), datetime(2026, 12, 3, 9, tzinfo=UTC)),
        (datetime(2026, 12, 3, 9, tzinfo=UTC), datetime(2026, 12, 3, 10, tzinfo=UTC)),
    ]


def test_deliveries_older_than_every_hourly_partition_are_read_in_one_window() -> None:
    start = datetime(2026, 12, 1, 0, tzinfo=UTC)
    covered = datetime(2026, 12, 3, 9, tzinfo=UTC)

    assert delivery_windows(start, covered, NOW) == [(start, covered), (covered, covered + HOUR)]
    assert delivery_windows(start, None, NOW) == [(start, covered + HOUR)]
