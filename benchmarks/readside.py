"""The read side at scale: the activity page and erasure on 1 M and 10 M events of 100k accounts.

    python -m benchmarks.readside [--sizes 1000000,10000000] [--users 100000] [--json FILE]

Loads synthetic events into `event_log` of a scratch ClickHouse database made
by `relay migrate`'s own statements (so `event_log_by_user` is filled by its
materialized view, in the same inserts, as in production), with ClickHouse's
`INSERT … SELECT … FROM numbers(N)`: no row passes through Python. The events
are spread over a year and over `--users` accounts. At each size it times,
over HTTP with the site's own client, the activity page's ClickHouse query for
random accounts:

- old: the page's query before `event_log_by_user`, a `FINAL` read of
  `event_log` filtered by the payload's `user_id` (a scan of the whole table);
- new: the page's query now (`webapp.activity.selectors.delivered_query`).

At the largest size it times erasure as the worker runs it, until ClickHouse
reports the mutations done: old (`event_log` alone), new (`event_log` and
`event_log_by_user`), and new for 100 accounts in one mutation per table.
The scratch database is dropped at the end, whatever happens. The last line
printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from pathlib import Path

import aiohttp
import uvloop
from aiochclient import ChClient

from benchmarks.machine import Machine
from relay.core import schema
from relay.settings import RelaySettings
from shared.outbox import EVENT_LOG_TABLE, USER_EVENTS_TABLE
from shared.settings import load

# Named after the process, so two runs on one server never drop each other's.
SCRATCH = f"diehard_bench_readside_{os.getpid()}"
ENVIRONMENT = "Bench"
PAGE_LIMIT = 21  # the first page: 20 events and one to know of a next page
TARGET_P99_MS = 100.0
EVENT_TYPES = (
    "user_logged_in",
    "user_logged_out",
    "user_login_failed",
    "user_updated",
    "user_password_changed",
)


def load_statement(*, first: int, count: int, users: int) -> str:
    """Events `first` … `first + count - 1`: one a ~3 s apart over a year, accounts round robin."""
    types = ", ".join(f"'{name}'" for name in EVENT_TYPES)
    return f"""INSERT INTO {SCRATCH}.{EVENT_LOG_TABLE}
SELECT generateUUIDv4(),
       [{types}][n % {len(EVENT_TYPES)} + 1],
       toDateTime('2026-01-01 00:00:00', 'UTC') + intDiv(n * 31536000, 10000000),
       '{ENVIRONMENT}',
       concat('{{"user_id":', toString(n % {users} + 1), ',"ip_address":"192.0.2.', toString(n % 250), '"}}'),
       1
FROM (SELECT number + {first} AS n FROM numbers({count}))"""


def old_page_query(user_id: int) -> str:
    """The activity page's query before `event_log_by_user` (with the environment it gained since)."""
    types = ", ".join(f"'{name}'" for name in EVENT_TYPES)
    return f"""SELECT toString(event_id) AS id, event_type, toString(event_date_time) AS at, event_context
FROM event_log_dedup
WHERE environment = '{ENVIRONMENT}' AND event_type IN ({types})
  AND visitParamExtractUInt(event_context, 'user_id') = {int(user_id)}
ORDER BY event_date_time DESC, id DESC
LIMIT {PAGE_LIMIT}"""


def new_page_query(user_id: int) -> str:
    """The activity page's query as the site sends it."""
    from webapp.activity.selectors import delivered_query

    return delivered_query(environment=ENVIRONMENT, user_id=user_id, limit=PAGE_LIMIT)


def percentile(samples: list[float], share: float) -> float:
    """The nearest-rank percentile."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


class Bench:
    """The scratch database on the configured server, as the admin user."""

    def __init__(self, settings: RelaySettings) -> None:
        from webapp.core.clickhouse import ClickHouseClient

        user, password = settings.clickhouse_admin
        self.url = settings.clickhouse_url
        self.user = user
        self.password = password.get_secret_value()
        self.client = ClickHouseClient(
            url=self.url, user=user, password=self.password, timeout=120, database=SCRATCH
        )
        self.server = ClickHouseClient(url=self.url, user=user, password=self.password, timeout=600)

    def create(self) -> None:
        """A fresh database with the relay's schema, exactly as `relay migrate` makes it."""
        self.drop()

        async def migrate() -> None:
            async with aiohttp.ClientSession() as session:
                client = ChClient(session, url=self.url, user=self.user, password=self.password or None)
                await schema.apply(client, SCRATCH)

        uvloop.run(migrate())

    def drop(self) -> None:
        """Remove the database and everything in it."""
        self.server.execute(f"DROP DATABASE IF EXISTS {SCRATCH}")

    def count(self, table: str) -> int:
        """Rows of a table (copies included)."""
        return int(self.client.value(f"SELECT count() FROM {table}"))

    def page_ms(self, query: str) -> float:
        """Milliseconds of one page's query and its rows, over HTTP, as the site runs it."""
        started = time.perf_counter()
        self.client.rows(query)
        return (time.perf_counter() - started) * 1000

    def erase(self, user_ids: list[int], *, tables: tuple[str, ...]) -> float:
        """Seconds from asking ClickHouse to erase these accounts to its mutations being done."""
        ids = ", ".join(str(user_id) for user_id in user_ids)
        statements = {
            EVENT_LOG_TABLE: f"ALTER TABLE {SCRATCH}.{EVENT_LOG_TABLE} DELETE"
            f" WHERE environment = '{ENVIRONMENT}'"
            f" AND visitParamExtractUInt(event_context, 'user_id') IN ({ids})",
            USER_EVENTS_TABLE: f"ALTER TABLE {SCRATCH}.{USER_EVENTS_TABLE} DELETE"
            f" WHERE environment = '{ENVIRONMENT}' AND user_id IN ({ids})",
        }
        started = time.perf_counter()
        for table in tables:
            self.client.execute(statements[table])
        pending = f"SELECT count() FROM system.mutations WHERE database = '{SCRATCH}' AND NOT is_done"
        while int(self.server.value(pending)):
            time.sleep(0.05)
        return time.perf_counter() - started


def summary(samples: list[float]) -> dict[str, float]:
    """p50 and p99 of page latencies, in milliseconds."""
    return {
        "p50_ms": round(statistics.median(samples), 1),
        "p99_ms": round(percentile(samples, 0.99), 1),
        "samples": len(samples),
    }


def pages_by_size(
    bench: Bench, sizes: list[int], args: argparse.Namespace, rng: random.Random
) -> list[dict[str, object]]:
    """Load up to each size in turn; page latencies, old and new, at each."""
    rows = []
    loaded = 0
    for size in sizes:
        started = time.perf_counter()
        bench.client.execute(load_statement(first=loaded, count=size - loaded, users=args.users))
        load_seconds = time.perf_counter() - started
        loaded = size
        row: dict[str, object] = {
            "events": size,
            "load_s": round(load_seconds, 1),
            "by_user_rows": bench.count(USER_EVENTS_TABLE),
            # Parts a page may look into: fewer once background merges have run.
            "by_user_parts": int(
                bench.server.value(
                    f"SELECT count() FROM system.parts WHERE database = '{SCRATCH}'"
                    f" AND table = '{USER_EVENTS_TABLE}' AND active"
                )
            ),
        }
        picks = [rng.randint(1, args.users) for _ in range(args.new_samples)]
        for user_id in picks[:3]:  # the first queries after a load warm caches: not counted
            bench.page_ms(new_page_query(user_id))
        row["new"] = summary([bench.page_ms(new_page_query(user_id)) for user_id in picks])
        old = [bench.page_ms(old_page_query(user_id)) for user_id in picks[: args.old_samples]]
        row["old"] = summary(old)
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def erasures(bench: Bench, events: int, args: argparse.Namespace, rng: random.Random) -> dict[str, object]:
    """Erasure times at the largest size: old, new, and new for a batch of accounts at once."""
    accounts = rng.sample(range(1, args.users + 1), args.batch + 2)
    both = (EVENT_LOG_TABLE, USER_EVENTS_TABLE)
    figures: dict[str, object] = {
        "erasure_events": events,
        "erasure_old_s": round(bench.erase([accounts[0]], tables=(EVENT_LOG_TABLE,)), 2),
        "erasure_new_s": round(bench.erase([accounts[1]], tables=both), 2),
        "erasure_batch_accounts": args.batch,
        "erasure_batch_s": round(bench.erase(accounts[2:], tables=both), 2),
    }
    # The old erasure (accounts[0]) never reached the per-account copy; the new ones must have.
    erased = ", ".join(str(account) for account in accounts[1:])
    left = int(bench.client.value(f"SELECT count() FROM {USER_EVENTS_TABLE} WHERE user_id IN ({erased})"))
    figures["erased_everywhere"] = left == 0
    return figures


def main(argv: list[str] | None = None) -> None:
    """Load, measure, clean up, report."""
    description = __doc__.splitlines()[0]
    cli = argparse.ArgumentParser(prog="python -m benchmarks.readside", description=description)
    cli.add_argument("--sizes", default="1000000,10000000", help="event counts, comma-separated, ascending")
    cli.add_argument("--users", type=int, default=100_000)
    cli.add_argument("--new-samples", type=int, default=300, help="page views timed per size, new query")
    cli.add_argument("--old-samples", type=int, default=10, help="page views timed per size, old query")
    cli.add_argument("--batch", type=int, default=100, help="accounts erased by one mutation per table")
    cli.add_argument("--json", type=Path, help="also write the JSON line here")
    args = cli.parse_args(argv)
    sizes = sorted(int(size) for size in args.sizes.split(","))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.config.settings")
    import django

    django.setup()

    settings = load(RelaySettings)
    bench = Bench(settings)
    rng = random.Random(20261203)
    machine = Machine.sample()
    results: dict[str, object] = {"users": args.users}
    bench.create()
    try:
        rows = pages_by_size(bench, sizes, args, rng)
        results.update(erasures(bench, sizes[-1], args, rng))
    finally:
        bench.drop()
        machine.finish()
    largest = rows[-1]
    new = largest["new"]
    assert isinstance(new, dict)
    results["readside_table"] = rows
    results["page_p99_ms_at_largest"] = new["p99_ms"]
    results["page_target_met"] = new["p99_ms"] <= TARGET_P99_MS
    results["machine"] = machine.describe()
    line = json.dumps(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(line + "\n")
    print(line)


if __name__ == "__main__":
    main()
