"""The site's one client of ClickHouse's HTTP interface (activity page, erasure, health probe).

Each statement is one POST straight to the server (no proxy from the
environment), on a connection opened and closed for it, with a client-side
timeout and the same limit given to the server as `max_execution_time`: a
query the site stopped waiting for is stopped by ClickHouse too, instead of
running on. Every failure becomes a `ClickHouseError` whose message never
carries credentials or the server's answer (which may quote data).
"""

from __future__ import annotations

import http.client
import json
import math
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from shared.clickhouse import error_code


class ClickHouseError(RuntimeError):
    """ClickHouse did not carry out a statement."""


class ClickHouseUnavailable(ClickHouseError):
    """No answer in time (refused connection, timeout, broken response)."""


class ClickHouseRefused(ClickHouseError):
    """ClickHouse answered with an error; `code` is its exception code, when it said one."""

    def __init__(self, status: int, code: int | None) -> None:
        super().__init__(f"statement refused with status {status}, code {code or 'unknown'}")
        self.status = status
        self.code = code


def string_literal(value: str) -> str:
    """`value` as a ClickHouse string literal (quoted, backslashes and quotes escaped)."""
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def server_time_limit(timeout: float) -> int:
    """`max_execution_time` for a client timeout: whole seconds (18.16 takes no fractions), at least 1.

    Rounded down, so the server gives up no later than the client does.
    """
    return max(1, math.floor(timeout))


@dataclass(frozen=True, slots=True)
class ClickHouseClient:
    """Runs statements as one user against one server, each within `timeout` seconds."""

    url: str
    user: str = field(repr=False)
    password: str = field(repr=False)
    timeout: float
    database: str | None = None

    def execute(self, sql: str) -> bytes:
        """Run one statement; its answer's body."""
        address = urllib.parse.urlsplit(self.url)
        connection_class = (
            http.client.HTTPSConnection if address.scheme == "https" else http.client.HTTPConnection
        )
        parameters = {"max_execution_time": str(server_time_limit(self.timeout))}
        if self.database:
            parameters["database"] = self.database
        connection = connection_class(address.hostname or "127.0.0.1", address.port, timeout=self.timeout)
        try:
            connection.request(
                "POST",
                f"/?{urllib.parse.urlencode(parameters)}",
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
            # The header on current servers, the message's "Code: N" on 18.16.
            header = response.getheader("X-ClickHouse-Exception-Code")
            code = int(header) if header and header.isdigit() else error_code(answer.decode(errors="replace"))
            raise ClickHouseRefused(response.status, code)
        return answer

    def rows(self, sql: str) -> list[dict[str, Any]]:
        """The rows of a SELECT (without a FORMAT clause), as dictionaries."""
        body = self.execute(f"{sql}\nFORMAT JSONEachRow")
        try:
            return [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        except ValueError as error:
            raise ClickHouseUnavailable("malformed answer") from error

    def value(self, sql: str) -> str:
        """The one value a SELECT answers, as text."""
        return self.execute(f"{sql}\nFORMAT TSV").decode().strip()


def site_reader(*, timeout: float) -> ClickHouseClient:
    """The site's read-only user (CLICKHOUSE_READER_*) on the analysts' database."""
    return ClickHouseClient(
        url=settings.CLICKHOUSE_URL,
        user=settings.CLICKHOUSE_USER,
        password=settings.CLICKHOUSE_PASSWORD,
        timeout=timeout,
        database=settings.CLICKHOUSE_DATABASE,
    )


def site_eraser(*, timeout: float) -> ClickHouseClient:
    """The worker's eraser (CLICKHOUSE_ERASER_*), the one user of the site's allowed to delete events."""
    return ClickHouseClient(
        url=settings.CLICKHOUSE_URL,
        user=settings.CLICKHOUSE_ERASER_USER,
        password=settings.CLICKHOUSE_ERASER_PASSWORD,
        timeout=timeout,
        database=settings.CLICKHOUSE_DATABASE,
    )
