"""At start-up the relay checks `event_log`; what no retry can fix stops it with its own exit code.

A missing or incompatible schema exits 65, a malformed setting 78, a wrong command line 2:
an init container running `relay check` tells the three apart.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from relay.app import EXIT_CONFIG, EXIT_SCHEMA, EXIT_USAGE
from tests.support.clickhouse import ClickHouse
from tests.support.outbox_tables import Outbox
from tests.support.project import ROOT
from tests.support.relays import RelayFactory

pytestmark = pytest.mark.slow


def relay_check(clickhouse: ClickHouse, *options: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`relay check` against the test's ClickHouse database."""
    return subprocess.run(
        [sys.executable, "-m", "relay", "check", *options],
        cwd=ROOT,
        env={
            **os.environ,
            "DIE_HARD_ENV_FILE": os.devnull,
            "LOG_FORMAT": "json",
            "CLICKHOUSE_HOST": "127.0.0.1",
            "CLICKHOUSE_PORT": clickhouse.url.rsplit(":", 1)[1].strip("/"),
            "CLICKHOUSE_USER": clickhouse.user,
            "CLICKHOUSE_PASSWORD": clickhouse.password,
            "CLICKHOUSE_DATABASE": clickhouse.database,
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_relay_check_passes_on_the_schema_relay_migrate_creates(clickhouse: ClickHouse) -> None:
    result = relay_check(clickhouse)

    assert result.returncode == 0, result.stderr
    assert "clickhouse_schema_ok" in result.stderr


def test_relay_check_names_an_incompatible_column(clickhouse: ClickHouse) -> None:
    clickhouse.query("ALTER TABLE event_log MODIFY COLUMN metadata_version Int8")

    result = relay_check(clickhouse)

    assert result.returncode == EXIT_SCHEMA
    assert "metadata_version is Int8" in result.stderr


def test_relay_check_tells_to_migrate_when_the_database_is_missing(clickhouse: ClickHouse) -> None:
    result = relay_check(clickhouse, CLICKHOUSE_DATABASE="no_such_database")

    assert result.returncode == EXIT_SCHEMA
    assert "run `relay migrate`" in result.stderr


def test_relay_check_takes_the_database_from_its_option_over_the_environment(clickhouse: ClickHouse) -> None:
    result = relay_check(clickhouse, "--clickhouse-database", "no_such_database")

    assert result.returncode == EXIT_SCHEMA
    assert "run `relay migrate`" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_relay_refuses_to_start_when_event_log_is_missing(
    outbox: Outbox, clickhouse: ClickHouse, start_relay: RelayFactory
) -> None:
    clickhouse.query("DROP TABLE event_log")

    relay = start_relay(wait=False)

    assert relay.wait(timeout=30) == EXIT_SCHEMA
    [problem] = relay.log_events("clickhouse_schema_invalid")
    assert "does not exist: run `relay migrate`" in str(problem["problem"])


def test_the_relay_refuses_to_start_when_clickhouse_refuses_its_user(
    outbox: Outbox, clickhouse: ClickHouse, start_relay: RelayFactory
) -> None:
    relay = start_relay(wait=False, CLICKHOUSE_USER="nobody_by_that_name")

    assert relay.wait(timeout=30) == EXIT_SCHEMA
    [problem] = relay.log_events("clickhouse_schema_invalid")
    assert "refused the configured user" in str(problem["problem"])
    assert "Traceback" not in relay.log()


def test_a_malformed_setting_exits_78_naming_the_setting_before_contacting_anything(
    clickhouse: ClickHouse,
) -> None:
    result = relay_check(clickhouse, RELAY_BATCH_SIZE="abc", CLICKHOUSE_PORT="1")

    assert result.returncode == EXIT_CONFIG == 78
    assert "relay_batch_size" in result.stderr.lower()
    assert "clickhouse_unavailable" not in result.stderr  # port 1 was never tried


def test_an_unknown_option_exits_2_with_the_usage(clickhouse: ClickHouse) -> None:
    result = relay_check(clickhouse, "--bogus")

    assert result.returncode == EXIT_USAGE == 2
    assert EXIT_SCHEMA == 65  # sysexits EX_DATAERR, as docs/OPERATIONS.md says
    assert result.stderr.startswith("usage: relay")
    assert "unrecognized arguments: --bogus" in result.stderr
