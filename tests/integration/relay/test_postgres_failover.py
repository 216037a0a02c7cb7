"""A relay given both hosts of a PostgreSQL pair follows the primary, and never writes to a read-only one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from shared.outbox import OUTBOX_TABLE
from tests.chaos.servers import PostgresPair
from tests.support.clickhouse import ClickHouse
from tests.support.outbox_tables import Outbox
from tests.support.postgres_pair import running_pair
from tests.support.project import ROOT
from tests.support.relays import RelayFactory, RelayProcess, visible
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


def migrate(pair: PostgresPair) -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input"],
        cwd=ROOT,
        env={**os.environ, "DIE_HARD_ENV_FILE": os.devnull, "DEBUG": "true", "DATABASE_URL": pair.url()},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.fixture
def pair() -> Iterator[PostgresPair]:
    """A primary with a synchronous standby, the site's schema applied: for a test that fails it over."""
    with running_pair() as pair:
        migrate(pair)
        yield pair


@pytest.fixture(scope="module")
def _shared_pair() -> Iterator[PostgresPair]:
    with running_pair() as pair:
        migrate(pair)
        yield pair


@pytest.fixture
def intact_pair(_shared_pair: PostgresPair) -> PostgresPair:
    """The module's pair (for tests that leave it a pair), with an empty outbox."""
    with Outbox(_shared_pair.url()).connect() as connection:
        connection.execute(f"TRUNCATE {OUTBOX_TABLE}")
    return _shared_pair


def readiness(relay: RelayProcess) -> dict[str, str]:
    checks: dict[str, str] = json.loads(relay.get("/readyz")[1])["checks"]
    return checks


def test_a_relay_given_both_hosts_delivers_everything_once_through_a_failover(
    pair: PostgresPair, clickhouse: ClickHouse, start_relay: RelayFactory
) -> None:
    site = Outbox(pair.url())
    site.produce(100)
    relay = start_relay(database_url=pair.url())
    wait_until(lambda: visible(clickhouse) == 100, timeout=30)

    pair.fail_over()
    Outbox(pair.url()).produce(100)  # the same URL: the writes go to the promoted standby

    wait_until(lambda: visible(clickhouse) == 200, timeout=60)
    assert relay.process.poll() is None  # followed the primary without a restart
    wait_until(lambda: readiness(relay).get("postgres") == "ok", timeout=15)
    assert Outbox(pair.standby.url()).pending() == 0


def test_a_relay_given_only_a_standby_delivers_nothing_and_says_it_is_read_only(
    intact_pair: PostgresPair, clickhouse: ClickHouse, start_relay: RelayFactory
) -> None:
    pair = intact_pair
    Outbox(pair.url()).produce(10)  # on the standby too: the pair is synchronous

    relay = start_relay(database_url=pair.standby.url())

    wait_until(lambda: readiness(relay).get("postgres") == "read-only", timeout=15)
    assert relay.get("/readyz")[0] == 503
    assert relay.process.poll() is None
    assert visible(clickhouse) == 0
    assert Outbox(pair.standby.url()).pending() == 10


def test_a_relay_stops_writing_to_a_primary_fenced_read_only_and_resumes_when_it_is_not(
    intact_pair: PostgresPair, clickhouse: ClickHouse, start_relay: RelayFactory
) -> None:
    pair = intact_pair
    relay = start_relay(database_url=pair.url())
    site = Outbox(pair.url())
    site.produce(10)
    wait_until(lambda: visible(clickhouse) == 10, timeout=30)

    operator = Outbox(pair.primary.url())  # the fenced server itself, not "whichever takes writes"
    with operator.connect() as connection:
        connection.execute("ALTER SYSTEM SET default_transaction_read_only = on")
        connection.execute("SELECT pg_reload_conf()")
    with operator.connect() as connection:
        connection.execute("SET default_transaction_read_only = off")  # what an operator may still write
        operator.produce(10, connection=connection)
    wait_until(lambda: readiness(relay).get("postgres") == "read-only", timeout=15)
    assert relay.process.poll() is None
    assert visible(clickhouse) == 10
    assert operator.pending() == 10

    with operator.connect() as connection:
        connection.execute("SET default_transaction_read_only = off")
        connection.execute("ALTER SYSTEM RESET default_transaction_read_only")
        connection.execute("SELECT pg_reload_conf()")
    wait_until(lambda: visible(clickhouse) == 20, timeout=30)
