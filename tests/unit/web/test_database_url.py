"""DATABASE_URL may name one PostgreSQL host or several (a primary and its standbys)."""

from __future__ import annotations

import pytest

from webapp.config.env import database_config


def test_a_url_with_two_hosts_gives_libpq_both_hosts_and_ports_in_order() -> None:
    config = database_config(
        "postgres://site:s%40cret@db-a:5433,db-b:5434/diehard?target_session_attrs=read-write"
    )

    assert (config["HOST"], config["PORT"]) == ("db-a,db-b", "5433,5434")
    assert (config["USER"], config["PASSWORD"], config["NAME"]) == ("site", "s@cret", "diehard")
    assert config["OPTIONS"] == {"target_session_attrs": "read-write"}


def test_a_host_without_a_port_among_several_gets_postgresql_s_default_port() -> None:
    config = database_config("postgres://site@db-a,[::1]:5434/diehard")

    assert (config["HOST"], config["PORT"]) == ("db-a,::1", "5432,5434")


def test_a_single_host_url_is_parsed_as_before() -> None:
    config = database_config("postgres://site@db-a:5433/diehard", conn_max_age=60)

    assert (config["HOST"], config["PORT"], config["CONN_MAX_AGE"]) == ("db-a", 5433, 60)


def test_a_malformed_host_among_several_is_refused_with_its_text() -> None:
    with pytest.raises(ValueError, match="db-b:port"):
        database_config("postgres://site@db-a:5433,db-b:port/diehard")
