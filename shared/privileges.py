"""Whether a process holds more rights than it needs: the decisions both sides make at start.

In production the site and the relay each run as their own PostgreSQL role and
ClickHouse user (docs/SECURITY.md). One started with the owners' credentials
works just the same, so nothing else would tell: each process asks the servers
who it is and warns when it could change or drop the schema. The queries are
here; running them is each side's business.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final

# The role is a superuser, or owns a table of the schema (and so may alter or drop it).
POSTGRES_ROLE_QUERY: Final = """
SELECT rolsuper,
       EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = 'public' AND tableowner = current_user)
FROM pg_roles WHERE rolname = current_user
"""

# What a ClickHouse user may do: its profile's switches (every version), and
# its grants (servers with SQL access control; 18.16 refuses the statement).
CLICKHOUSE_SETTINGS_QUERY: Final = (
    "SELECT name, value FROM system.settings WHERE name IN ('readonly', 'allow_ddl')"
)
CLICKHOUSE_GRANTS_QUERY: Final = "SHOW GRANTS"

_GRANT: Final = re.compile(r"GRANT (?P<privileges>.+?) ON ", re.IGNORECASE)
# ALTER privileges that change rows, not the schema (the eraser's ALTER DELETE).
_ROW_ALTERS: Final = frozenset({"ALTER DELETE", "ALTER UPDATE"})


def postgres_excess(*, superuser: bool, owns_tables: bool) -> str | None:
    """Why a PostgreSQL role is more than a process needs, or None."""
    if superuser:
        return "superuser"
    if owns_tables:
        return "owner of the tables"
    return None


def clickhouse_may_change_schema(settings: Mapping[str, str], grants: Iterable[str] | None) -> bool:
    """Whether a ClickHouse user may create, alter or drop tables.

    `settings` maps `readonly` and `allow_ddl` to their values for the user;
    `grants` are the lines of `SHOW GRANTS`, or None where the server has no
    SQL access control (there the profile alone decides).
    """
    if settings.get("readonly", "0") != "0" or settings.get("allow_ddl", "1") == "0":
        return False
    if grants is None:
        return True
    return any(_grant_changes_schema(line) for line in grants)


def _grant_changes_schema(line: str) -> bool:
    match = _GRANT.match(line.strip())
    if match is None:
        return False  # a role granted to the user: its own grants are not listed here
    for privilege in match["privileges"].split(","):
        name = privilege.split("(")[0].strip().upper()
        if name in {"ALL", "ALL PRIVILEGES"} or name.startswith(("CREATE", "DROP", "TRUNCATE")):
            return True
        if name.startswith("ALTER") and name not in _ROW_ALTERS:
            return True
    return False
