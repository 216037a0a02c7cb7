"""Isolation finds refused events at about one insert each, and tells a changed ClickHouse apart.

The sink here answers as ClickHouse does (it stops at the first row it cannot
take, names it, and writes nothing of that insert); the integration tests run
the same paths against the real server.
"""

from __future__ import annotations

import pytest
from aiochclient import ChClientError

from relay.core.clickhouse import RejectedData, TransientError, classify
from relay.core.isolation import Canary, Isolator, Line, SystemicRefusal
from shared.events import Envelope, UserCreated
from tests.support.current_clickhouse import CurrentClickHouse


class ClickHouseLike:
    """Takes TSV lines unless they contain `refuse`; counts inserts; can fail or refuse everything."""

    def __init__(self, *, refuse: bytes = b"bad", fail_on_insert: int | None = None) -> None:
        self.refuse = refuse
        self.fail_on_insert = fail_on_insert
        self.inserts = 0
        self.stored: list[bytes] = []

    async def insert(self, body: bytes) -> None:
        self.inserts += 1
        if self.inserts == self.fail_on_insert:
            raise TransientError("ClickHouse did not answer in time", kind="timeout")
        lines = body.splitlines(keepends=True)
        for row, line in enumerate(lines, start=1):
            if self.refuse in line:
                raise RejectedData(f"Code: 27. Cannot parse input: (at row {row})", code=27)
        self.stored.extend(lines)


def batch(count: int, *, bad_every: int = 0, bad_first: int = 0) -> list[Line]:
    """`count` lines with outbox ids 1..count; every `bad_every`-th one (and the first `bad_first`) bad."""
    lines = []
    for number in range(1, count + 1):
        bad = number <= bad_first or (bad_every and number % bad_every == 0)
        lines.append((number, f"{number}\t{'bad' if bad else 'good'}\n".encode()))
    return lines


def isolator(sink: ClickHouseLike, canary: bytes | None = b"0\tgood\n") -> Isolator:
    remembered = Canary()
    remembered.line = canary
    return Isolator(sink, remembered, deadline=30)


async def test_one_percent_poison_costs_about_one_insert_per_refused_event() -> None:
    sink = ClickHouseLike()

    outcome = await isolator(sink).isolate(batch(10_000, bad_every=100))

    assert sorted(refusal.outbox_id for refusal in outcome.refused) == list(range(100, 10_001, 100))
    assert all(refusal.error.code == 27 for refusal in outcome.refused)  # type: ignore[attr-defined]
    assert len(outcome.delivered) == 9_900
    assert sorted(int(line.split(b"\t")[0]) for line in sink.stored) == sorted(outcome.delivered)
    assert sink.inserts <= 100 + 35  # one per refusal, plus the first, segment starts, tails and the last


async def test_a_batch_clickhouse_takes_whole_goes_in_one_insert() -> None:
    sink = ClickHouseLike()

    outcome = await isolator(sink).isolate(batch(5_000))

    assert len(outcome.delivered) == 5_000
    assert outcome.refused == []
    assert sink.inserts == 1


async def test_when_the_canary_is_refused_too_nothing_is_set_aside() -> None:
    sink = ClickHouseLike(refuse=b"\t")  # ClickHouse changed: every line is refused

    with pytest.raises(SystemicRefusal) as raised:
        await isolator(sink).isolate(batch(1_000))

    assert raised.value.canary
    assert sink.inserts == 3  # the first attempt, the batch's last event, and the canary
    assert sink.stored == []


async def test_a_refused_head_is_judged_by_the_batchs_own_last_event_before_any_copy_is_sent() -> None:
    sink = ClickHouseLike()

    outcome = await isolator(sink, canary=b"0\tgood\n").isolate(batch(100, bad_first=10))

    assert sorted(refusal.outbox_id for refusal in outcome.refused) == list(range(1, 11))
    assert len(outcome.delivered) == 90
    assert b"0\tgood\n" not in sink.stored  # nothing ClickHouse already holds went in again


async def test_when_the_canary_is_taken_the_refused_events_are_poison() -> None:
    sink = ClickHouseLike()

    outcome = await isolator(sink).isolate(batch(50, bad_first=50))

    assert len(outcome.refused) == 50
    assert outcome.delivered == []


async def test_without_a_canary_the_batchs_last_event_decides() -> None:
    every_line_refused = ClickHouseLike(refuse=b"\t")
    with pytest.raises(SystemicRefusal) as raised:
        await isolator(every_line_refused, canary=None).isolate(batch(100))
    assert not raised.value.canary

    poison_at_the_head = ClickHouseLike()
    outcome = await isolator(poison_at_the_head, canary=None).isolate(batch(100, bad_first=10))
    assert sorted(refusal.outbox_id for refusal in outcome.refused) == list(range(1, 11))
    assert len(outcome.delivered) == 90


async def test_a_lone_refused_event_with_nothing_to_compare_is_poison() -> None:
    outcome = await isolator(ClickHouseLike(), canary=None).isolate(batch(1, bad_first=1))

    assert [refusal.outbox_id for refusal in outcome.refused] == [1]


async def test_clickhouse_failing_mid_isolation_raises_the_failure_not_a_group() -> None:
    sink = ClickHouseLike(fail_on_insert=3)

    with pytest.raises(TransientError):
        await isolator(sink).isolate(batch(5_000, bad_every=50))


class CurrentClickHouseSink:
    """Current ClickHouse (chdb, in process) behind the sink's interface, errors sorted as the relay does."""

    def __init__(self, server: CurrentClickHouse) -> None:
        self.server = server

    async def insert(self, body: bytes) -> None:
        try:
            self.server.insert(body)
        except Exception as error:  # chdb raises its own exception type with ClickHouse's message
            raise classify(ChClientError(str(error))) from error


def sign_ups(count: int, *, bad_every: int = 0) -> list[Line]:
    """TSV lines as the relay renders them for a `DateTime64(6)` table; every `bad_every`-th version -1."""
    lines = []
    for number in range(1, count + 1):
        version = -1 if bad_every and number % bad_every == 0 else 1
        envelope = Envelope.wrap(
            UserCreated(user_id=number, email=f"p{number}@example.com", first_name="Ada", last_name="L"),
            environment="Local",
        )
        stamp = envelope.event_date_time.strftime("%Y-%m-%d %H:%M:%S.%f")
        columns = (envelope.event_id, envelope.event_type, stamp, "Local", envelope.event_context, version)
        lines.append((number, ("\t".join(str(column) for column in columns) + "\n").encode()))
    return lines


async def test_current_clickhouse_refusing_every_event_after_a_schema_change_is_systemic(
    current_clickhouse: CurrentClickHouse,
) -> None:
    sink = CurrentClickHouseSink(current_clickhouse)
    canary = Canary()
    [(_, first)] = sign_ups(1)
    await sink.insert(first)
    canary.remember(first)
    current_clickhouse.query("TRUNCATE TABLE event_log")
    current_clickhouse.query("ALTER TABLE event_log MODIFY COLUMN event_context FixedString(4)")

    with pytest.raises(SystemicRefusal) as raised:
        await Isolator(sink, canary, deadline=30).isolate(sign_ups(20))

    assert raised.value.canary
    assert current_clickhouse.count("SELECT count() FROM event_log") == 0

    current_clickhouse.query("ALTER TABLE event_log MODIFY COLUMN event_context String")
    outcome = await Isolator(sink, canary, deadline=30).isolate(sign_ups(20))
    assert len(outcome.delivered) == 20


async def test_current_clickhouse_refusing_one_bad_value_in_many_events_costs_a_few_inserts(
    current_clickhouse: CurrentClickHouse,
) -> None:
    sink = CountingSink(CurrentClickHouseSink(current_clickhouse))
    lines = sign_ups(2_000, bad_every=100)

    outcome = await Isolator(sink, Canary(), deadline=30).isolate(lines)

    assert sorted(refusal.outbox_id for refusal in outcome.refused) == list(range(100, 2_001, 100))
    assert all("metadata_version" in str(refusal.error) for refusal in outcome.refused)
    assert sorted(outcome.delivered) == [n for n in range(1, 2_001) if n % 100]
    assert current_clickhouse.count("SELECT count() FROM event_log") == 1_980
    assert sink.inserts == outcome.inserts == 2  # refused once, then the rest whole


class CountingSink:
    """Counts the inserts that reach the sink it wraps."""

    def __init__(self, sink: CurrentClickHouseSink) -> None:
        self.sink = sink
        self.inserts = 0

    async def insert(self, body: bytes) -> None:
        self.inserts += 1
        await self.sink.insert(body)
