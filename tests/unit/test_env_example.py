""".env.example runs each process as its own least-privileged PostgreSQL role and ClickHouse user.

`make install` copies it to `.env`, so what it names is what a developer's
site, worker and relay connect as: the roles and users that devservices
creates, never the owners, which only migrate (docs/SECURITY.md).
"""

from __future__ import annotations

from urllib.parse import urlsplit
from xml.etree import ElementTree

import pytest

from devservices.clickhouse import USERS
from devservices.postgres import APP_ROLES
from shared.privileges import clickhouse_may_change_schema
from tests.support.project import ROOT
from webapp.core.management.commands.database_grants import RELAY_ROLE, WEB_ROLE

ENV_EXAMPLE = ROOT / ".env.example"
# ClickHouse 18.16 lets only a user with DDL rights run ALTER TABLE … DELETE,
# so the eraser of deleted accounts' events is the admin there (.env.example says why).
CLICKHOUSE_OWNER_VARIABLES = {"CLICKHOUSE_ADMIN_USER", "CLICKHOUSE_ERASER_USER"}


@pytest.fixture(scope="module")
def example() -> dict[str, str]:
    """The variables .env.example sets (comments and blank lines left out)."""
    variables = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            variables[name.strip()] = value.strip()
    return variables


def role(url: str) -> str:
    """The PostgreSQL role a connection URL logs in as."""
    user = urlsplit(url).username
    assert user, f"no role in {url}"
    return user


@pytest.fixture(scope="module")
def clickhouse_profiles() -> dict[str, dict[str, str]]:
    """Each user of the local ClickHouse (devservices' users file) and its profile's settings."""
    tree = ElementTree.parse(USERS).getroot()
    profiles = {
        profile.tag: {setting.tag: (setting.text or "") for setting in profile}
        for profile in tree.findall("profiles/*")
    }
    return {user.tag: profiles[user.findtext("profile", "default")] for user in tree.findall("users/*")}


def test_the_site_and_the_relay_each_log_in_to_postgresql_as_their_own_role(example: dict[str, str]) -> None:
    assert role(example["DATABASE_URL"]) == WEB_ROLE == "diehard_web"
    assert role(example["RELAY_DATABASE_URL"]) == RELAY_ROLE == "diehard_relay"


def test_the_postgresql_roles_named_are_the_ones_devservices_creates(example: dict[str, str]) -> None:
    assert {role(example["DATABASE_URL"]), role(example["RELAY_DATABASE_URL"])} == set(APP_ROLES)


def test_only_the_admin_url_logs_in_to_postgresql_as_the_owner(example: dict[str, str]) -> None:
    owner = role(example["DATABASE_ADMIN_URL"])

    assert owner not in APP_ROLES
    assert [
        name for name, value in example.items() if value.startswith("postgres") and role(value) == owner
    ] == ["DATABASE_ADMIN_URL"]


def test_the_relay_writes_and_the_site_reads_clickhouse_as_their_own_users(example: dict[str, str]) -> None:
    assert example["CLICKHOUSE_USER"] == "diehard_relay"
    assert example["CLICKHOUSE_READER_USER"] == "diehard_reader"


def test_the_clickhouse_users_named_are_the_ones_devservices_creates_and_cannot_change_the_schema(
    example: dict[str, str], clickhouse_profiles: dict[str, dict[str, str]]
) -> None:
    for variable in ("CLICKHOUSE_USER", "CLICKHOUSE_READER_USER"):
        user = example[variable]
        assert user in clickhouse_profiles, f"{variable}={user} is not a user of {USERS.name}"
        assert not clickhouse_may_change_schema(clickhouse_profiles[user], None), variable


def test_only_the_admin_and_the_eraser_use_clickhouse_as_the_user_that_may_change_the_schema(
    example: dict[str, str], clickhouse_profiles: dict[str, dict[str, str]]
) -> None:
    admin = example["CLICKHOUSE_ADMIN_USER"]

    assert clickhouse_may_change_schema(clickhouse_profiles[admin], None)
    assert {
        name for name, value in example.items() if name.startswith("CLICKHOUSE_") and value == admin
    } == CLICKHOUSE_OWNER_VARIABLES
