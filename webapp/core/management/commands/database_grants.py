"""`manage.py database_grants`: give the site's and the relay's PostgreSQL roles their rights, no more.

Run after every `migrate`, as the role that owns the tables (`--database
owner`, DATABASE_ADMIN_URL, as `make migrate` does). The roles themselves are created by whoever
administers the server: `make install` (devservices/postgres.py) locally, the
PostgreSQL container's init script under compose. A role that does not exist
is skipped with a notice, so an install with one shared role keeps working.

- The site's role reads and writes rows in every table of the schema (users,
  sessions, the outbox, ...), but owns none: it cannot create, alter or drop.
- The relay's role reads and deletes outbox rows (and may lock them, which
  PostgreSQL grants with UPDATE on one column the relay never writes), writes
  dead letters, writes and reads the archive of
  delivered events (and keeps its partitions through functions that run as
  their owner), and can read nothing else: not the users, not their password
  hashes.
"""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

import structlog
from django.core.management.base import BaseCommand
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from psycopg import sql

from shared.outbox import (
    ARCHIVE_ADD_PARTITION,
    ARCHIVE_DROP_PARTITION,
    ARCHIVE_EXPIRE_DEFAULT,
    ARCHIVE_TABLE,
    DEAD_LETTER_TABLE,
    OUTBOX_TABLE,
)

logger = structlog.get_logger(__name__)

WEB_ROLE = "diehard_web"
RELAY_ROLE = "diehard_relay"


def web_grants(role: str) -> list[sql.Composed]:
    """What the site's role may do."""
    name = sql.Identifier(role)
    return [
        sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {}").format(name),
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(name),
        sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {}").format(name),
        sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(name),
    ]


def relay_grants(role: str) -> list[sql.Composed]:
    """What the relay's role may do."""
    name = sql.Identifier(role)
    outbox, dead = (sql.Identifier(table) for table in (OUTBOX_TABLE, DEAD_LETTER_TABLE))
    return [
        sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {}").format(name),
        sql.SQL("REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {}").format(name),
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(name),
        sql.SQL("GRANT SELECT, DELETE ON {} TO {}").format(outbox, name),
        # FOR UPDATE needs UPDATE on some column; no statement of the relay updates `id`.
        sql.SQL("GRANT UPDATE (id) ON {} TO {}").format(outbox, name),
        sql.SQL("GRANT SELECT, INSERT ON {} TO {}").format(dead, name),
        sql.SQL("GRANT USAGE ON SEQUENCE {} TO {}").format(
            sql.Identifier(f"{DEAD_LETTER_TABLE}_id_seq"), name
        ),
        # The archive of delivered events: written with each delivery, read to
        # reconcile; its partitions are made and dropped through functions
        # that run as the archive's owner.
        sql.SQL("GRANT SELECT, INSERT ON {} TO {}").format(sql.Identifier(ARCHIVE_TABLE), name),
        sql.SQL("GRANT EXECUTE ON FUNCTION {}(timestamptz), {}(text), {}(timestamptz) TO {}").format(
            sql.Identifier(ARCHIVE_ADD_PARTITION),
            sql.Identifier(ARCHIVE_DROP_PARTITION),
            sql.Identifier(ARCHIVE_EXPIRE_DEFAULT),
            name,
        ),
    ]


class Command(BaseCommand):
    """Grant the site's and the relay's roles exactly what they need on the current tables."""

    help = "Grant the web and relay PostgreSQL roles their privileges (run after migrate)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--database", default=DEFAULT_DB_ALIAS, help="the connection to grant through (the tables' owner)"
        )
        parser.add_argument("--web-role", default=WEB_ROLE, help=f"the site's role (default {WEB_ROLE})")
        parser.add_argument(
            "--relay-role", default=RELAY_ROLE, help=f"the relay's role (default {RELAY_ROLE})"
        )

    def handle(self, *args: Any, database: str, web_role: str, relay_role: str, **options: Any) -> None:
        connection = connections[database]
        with transaction.atomic(using=database), connection.cursor() as cursor:
            for role, grants in ((web_role, web_grants), (relay_role, relay_grants)):
                cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role])
                if cursor.fetchone() is None:
                    self.stdout.write(f"role {role} does not exist: skipped")
                    continue
                for statement in grants(role):
                    cursor.execute(statement)
                cursor.execute(
                    sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                        sql.Identifier(connection.settings_dict["NAME"]), sql.Identifier(role)
                    )
                )
                logger.info("database_role_granted", role=role)
                self.stdout.write(f"role {role}: privileges granted")
