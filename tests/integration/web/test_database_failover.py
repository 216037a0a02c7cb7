"""The site, given both hosts of a PostgreSQL pair, follows whichever takes writes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.db.utils import ConnectionHandler
from pytest_django import DjangoDbBlocker

from tests.chaos.servers import PostgresPair
from tests.support.postgres_pair import running_pair
from webapp.config.env import database_config

pytestmark = pytest.mark.slow


@pytest.fixture
def pair(django_db_blocker: DjangoDbBlocker) -> Iterator[PostgresPair]:
    with running_pair() as pair, django_db_blocker.unblock():
        yield pair


def server_of(connections: ConnectionHandler) -> tuple[int, bool]:
    """The port of the server Django's connection went to, and whether it is in recovery."""
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT inet_server_port(), pg_is_in_recovery()")
        port, in_recovery = cursor.fetchone()
    return int(port), bool(in_recovery)


def test_the_site_connects_to_the_primary_even_when_the_standby_is_named_first(pair: PostgresPair) -> None:
    url = pair.url().replace(
        f"{pair.primary.port},127.0.0.1:{pair.standby.port}",
        f"{pair.standby.port},127.0.0.1:{pair.primary.port}",
    )
    connections = ConnectionHandler({"default": database_config(url)})

    assert server_of(connections) == (pair.primary.port, False)
    connections.close_all()


def test_the_site_writes_to_the_promoted_standby_after_the_primary_dies(pair: PostgresPair) -> None:
    connections = ConnectionHandler({"default": database_config(pair.url())})
    assert server_of(connections) == (pair.primary.port, False)

    pair.fail_over()
    connections["default"].close()  # what Django does with a broken connection at the request's end

    assert server_of(connections) == (pair.standby.port, False)
    with connections["default"].cursor() as cursor:
        cursor.execute("CREATE TABLE written_after_failover (id int)")
    connections.close_all()
