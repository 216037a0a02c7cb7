"""The sink: one HTTP insert per batch into ClickHouse, and the errors sorted by kind.

Bodies travel as the TSV bytes PostgreSQL's COPY produced; nothing is parsed or
rebuilt per row. Every call is bounded in time, so no outbox transaction waits
on ClickHouse for long.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Final

import aiohttp
from aiochclient import ChClient, ChClientError

from shared.clickhouse import error_code
from shared.outbox import EVENT_LOG_COLUMNS, EVENT_LOG_TABLE

# ClickHouse error codes that mean "this data cannot be inserted": retrying the
# same rows fails the same way, so the batch is split to find the culprit.
# Everything else (unreachable, timeouts, too many parts, unknown table, ...) is
# treated as transient: the events wait in the outbox and the insert is retried.
DATA_ERROR_CODES: Final = frozenset(
    {
        6,  # CANNOT_PARSE_TEXT
        25,  # CANNOT_PARSE_ESCAPE_SEQUENCE
        26,  # CANNOT_PARSE_QUOTED_STRING
        27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
        38,  # CANNOT_PARSE_DATE
        41,  # CANNOT_PARSE_DATETIME
        53,  # TYPE_MISMATCH
        69,  # ARGUMENT_OUT_OF_BOUND
        70,  # CANNOT_CONVERT_TYPE
        72,  # CANNOT_PARSE_NUMBER
        117,  # INCORRECT_DATA
        131,  # TOO_LARGE_STRING_SIZE
        321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
        376,  # CANNOT_PARSE_UUID
        469,  # VIOLATED_CONSTRAINT
    }
)
# Error codes that mean the relay is pointed at the wrong place or with the
# wrong credentials: retrying will not help, a person must act.
MISSING_SCHEMA_CODES: Final = frozenset({60, 81})  # UNKNOWN_TABLE, UNKNOWN_DATABASE
ACCESS_CODES: Final = frozenset({192, 193, 194, 497, 516})  # unknown user, wrong password, denied, ...


class DeliveryError(Exception):
    """ClickHouse did not take a batch. `kind` labels metrics and logs."""

    kind: str = "error"

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class TransientError(DeliveryError):
    """Worth retrying later: the server is down, slow, overloaded or misconfigured."""

    def __init__(self, message: str, *, kind: str, code: int | None = None) -> None:
        super().__init__(message, code=code)
        self.kind = kind


class RejectedData(DeliveryError):
    """ClickHouse refused the rows themselves; the same rows will fail again."""

    kind = "rejected"


def classify(error: ChClientError) -> DeliveryError:
    """Sort an error answer from ClickHouse into rejected data or a transient failure."""
    message = str(error)
    code = error_code(message)
    if code in DATA_ERROR_CODES:
        return RejectedData(message, code=code)
    return TransientError(message, kind="server", code=code)


def insert_query(*, synchronous: bool = False) -> str:
    """The insert the relay sends; the body that follows is TSV in this column order.

    `synchronous` pins `async_insert = 0` (servers that have the setting): the
    acknowledgement then always means "written", whatever the user's profile says.
    """
    settings = " SETTINGS async_insert = 0" if synchronous else ""
    return f"INSERT INTO {EVENT_LOG_TABLE} ({', '.join(EVENT_LOG_COLUMNS)}){settings} FORMAT TabSeparated"


class ClickHouseSink:
    """Inserts TSV bodies into `event_log` and answers health probes."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        url: str,
        user: str,
        password: str,
        database: str,
        timeout: float,
    ) -> None:
        self.client = ChClient(session, url=url, user=user, password=password or None, database=database)
        self.timeout = timeout
        self._query = insert_query()

    def pin_synchronous_inserts(self) -> None:
        """Ask the server never to acknowledge an insert before writing it (`async_insert = 0`)."""
        self._query = insert_query(synchronous=True)

    async def insert(self, body: bytes) -> None:
        """Insert one batch; raise `RejectedData` or `TransientError` when it is not taken."""
        await self.call(self.client.insert_file(self._query, body))

    async def ping(self, *, within: float | None = None) -> None:
        """Answer if the server answers a trivial query, raise `TransientError` otherwise."""
        await self.call(self.client.fetchval("SELECT 1"), within=within)

    async def call[T](self, call: Awaitable[T], within: float | None = None) -> T:
        """Await one ClickHouse request, bounded in time, its errors sorted by kind."""
        try:
            async with asyncio.timeout(within or self.timeout):
                return await call
        except ChClientError as error:
            raise classify(error) from error
        except TimeoutError as error:
            raise TransientError("ClickHouse did not answer in time", kind="timeout") from error
        except (aiohttp.ClientError, OSError) as error:
            raise TransientError(
                f"ClickHouse unreachable: {type(error).__name__}", kind="unavailable"
            ) from error
