"""A second Django project that takes the outbox as docs/ADOPTING.md says: its event reaches ClickHouse.

The project (`minisite/`) has its own settings, apps and database: the outbox app,
and one app with one model and one event. It runs in processes of its own, so
nothing of the site's settings helps it; the relay is the real one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from shared.settings import CommonSettings
from tests.support.clickhouse import ClickHouse
from tests.support.outbox_tables import Outbox
from tests.support.project import ROOT
from tests.support.relays import RelayProcess, relay_environment
from tests.support.waiting import free_port, wait_until

pytestmark = pytest.mark.slow

SETTINGS = "tests.integration.adopting.minisite.settings"


def with_database(url: str, name: str) -> str:
    """The same server and credentials, another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture
def minisite_database(common_settings: CommonSettings) -> Iterator[str]:
    """An empty PostgreSQL database of the minimal project's own, dropped afterwards."""
    admin_url = common_settings.postgres_admin_dsn
    name = f"test_minisite_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(with_database(admin_url, "postgres"), autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(admin_url, name)
    finally:
        with psycopg.connect(with_database(admin_url, "postgres"), autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def minisite(database_url: str, *command: str) -> str:
    """Run a management command of the minimal project; return what it printed."""
    result = subprocess.run(
        [sys.executable, "-m", "django", *command, f"--settings={SETTINGS}"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url, "ENVIRONMENT": "Minisite"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_an_order_placed_in_another_django_project_reaches_clickhouse_once_through_the_relay(
    minisite_database: str, clickhouse: ClickHouse, tmp_path: Path
) -> None:
    migrated = minisite(minisite_database, "migrate", "--no-input")
    order_id = int(minisite(minisite_database, "place_order", "tea", "3").strip())
    port = free_port()
    env = relay_environment(Outbox(minisite_database), clickhouse, RELAY_HTTP_PORT=port)
    relay = RelayProcess(env=env, log_path=tmp_path / "relay.log", port=port).start()
    try:
        rows = wait_until(
            lambda: clickhouse.query(
                "SELECT event_type, environment, event_context, metadata_version"
                " FROM event_log_dedup WHERE event_type = 'order_placed' FORMAT JSONEachRow"
            ).strip(),
            timeout=20,
        )
    finally:
        relay.stop()

    assert "Applying outbox.0001_initial" in migrated
    assert "Applying shop.0001_initial" in migrated
    [row] = [json.loads(line) for line in rows.splitlines()]
    assert (row["event_type"], row["environment"], int(row["metadata_version"])) == (
        "order_placed",
        "Minisite",
        1,
    )
    assert json.loads(row["event_context"]) == {"order_id": order_id, "product": "tea", "quantity": 3}
    with psycopg.connect(minisite_database) as connection:
        assert connection.execute("SELECT count(*) FROM event_outbox").fetchone() == (0,)
