"""A small read-only client of ClickHouse's HTTP interface, for the site's pages.

It runs one SELECT with the site's reader credentials and a hard timeout and
returns JSON rows. Every failure (refused, slow, malformed) becomes
`ClickHouseUnavailable`, whose message never carries credentials or the answer.
"""

from __future__ import annotations

import http.client
import json
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings


class ClickHouseUnavailable(RuntimeError):
    """ClickHouse did not answer the query in time, or refused it."""


@dataclass(frozen=True, slots=True)
class ClickHouseReader:
    """Runs SELECTs against one database of one server, each within `timeout` seconds."""

    url: str
    database: str
    user: str = field(repr=False)
    password: str = field(repr=False)
    timeout: float

    @classmethod
    def from_settings(cls) -> ClickHouseReader:
        """A reader with the site's read-only user and the activity page's timeout."""
        return cls(
            url=settings.CLICKHOUSE_URL,
            database=settings.CLICKHOUSE_DATABASE,
            user=settings.CLICKHOUSE_USER,
            password=settings.CLICKHOUSE_PASSWORD,
            timeout=settings.ACTIVITY_QUERY_TIMEOUT,
        )

    def rows(self, sql: str) -> list[dict[str, Any]]:
        """The rows of a SELECT (without a FORMAT clause), as dictionaries."""
        body = self._post(f"{sql}\nFORMAT JSONEachRow")
        try:
            return [json.loads(line) for line in body.splitlines() if line.strip()]
        except ValueError as error:
            raise ClickHouseUnavailable("malformed answer") from error

    def _post(self, sql: str) -> str:
        address = urllib.parse.urlsplit(self.url)
        connection_class = (
            http.client.HTTPSConnection if address.scheme == "https" else http.client.HTTPConnection
        )
        connection = connection_class(address.hostname or "127.0.0.1", address.port, timeout=self.timeout)
        query = urllib.parse.urlencode({"database": self.database})
        try:
            connection.request(
                "POST",
                f"/?{query}",
                body=sql.encode(),
                headers={"X-ClickHouse-User": self.user, "X-ClickHouse-Key": self.password},
            )
            response = connection.getresponse()
            answer = response.read()
        except (OSError, http.client.HTTPException) as error:
            raise ClickHouseUnavailable("no answer") from error
        finally:
            connection.close()
        if response.status != 200:
            code = response.getheader("X-ClickHouse-Exception-Code", "unknown")
            raise ClickHouseUnavailable(f"query refused with status {response.status}, code {code}")
        return answer.decode()
