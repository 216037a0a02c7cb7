"""The sink: one HTTP insert per batch into ClickHouse, and the errors sorted by kind.

Bodies travel as the TSV bytes PostgreSQL's COPY produced; nothing is parsed or
rebuilt per row. Every call is bounded in time, so no outbox transaction waits
on ClickHouse for long.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp
import structlog
from aiochclient import ChClient, ChClientError, Record

from shared.clickhouse import error_code
from shared.outbox import EVENT_LOG_COLUMNS, EVENT_LOG_TABLE

log = structlog.get_logger("relay.clickhouse")

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


def insert_query(table: str = EVENT_LOG_TABLE, *, synchronous: bool = False) -> str:
    """The insert the relay sends; the body that follows is TSV in this column order.

    `synchronous` pins `async_insert = 0` (servers that have the setting): the
    acknowledgement then always means "written", whatever the user's profile says.
    """
    settings = " SETTINGS async_insert = 0" if synchronous else ""
    return f"INSERT INTO {table} ({', '.join(EVENT_LOG_COLUMNS)}){settings} FORMAT TabSeparated"


def insert_settings(*, quorum: int, sharded: bool, timeout: float) -> dict[str, int]:
    """ClickHouse settings for every insert: a quorum of `quorum` replicas (none below 2).

    The server gives up waiting for the quorum a little before the relay gives
    up waiting for the server, so a missing quorum comes back as an error
    rather than a timeout. A sharded insert (through the `Distributed` table)
    is acknowledged only once every shard has it.
    """
    settings: dict[str, int] = {"insert_deduplicate": 1}
    bound_ms = max(int(timeout * 1000 * 0.8), 1000)
    if quorum >= 2:
        settings |= {"insert_quorum": quorum, "insert_quorum_timeout": bound_ms}
    if sharded:
        settings |= {"insert_distributed_sync": 1, "insert_distributed_timeout": max(bound_ms // 1000, 1)}
    return settings


@dataclass(frozen=True, slots=True)
class InsertTarget:
    """Where and how every insert of a sink goes, decided once, before the sink is built."""

    table: str = EVENT_LOG_TABLE  # or the `Distributed` table over several shards
    settings: Mapping[str, int | str] = field(default_factory=dict)  # a quorum, say (`insert_settings`)
    # Pin `async_insert = 0` (servers that have the setting): the acknowledgement
    # then always means "written", whatever the user's profile says.
    synchronous: bool = False

    @property
    def query(self) -> str:
        """The insert statement the sink sends before each TSV body."""
        return insert_query(self.table, synchronous=self.synchronous)


class ClickHouseSink:
    """Inserts TSV bodies into `event_log` and answers health probes, on one server or several replicas.

    With several replica addresses, every call goes to the current one; a
    replica that cannot be reached is skipped at once for the next, and one
    that answers with an error or not in time makes the next call start at the
    next replica. Moving on never loses or doubles an event: the failed batch
    stays in the outbox, and a retried batch is byte-identical, which a
    replicated table drops at insert.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        url: str | Sequence[str],
        user: str,
        password: str,
        database: str,
        timeout: float,
        target: InsertTarget | None = None,
    ) -> None:
        self.urls = [url] if isinstance(url, str) else list(url)
        if not self.urls:
            raise ValueError("no ClickHouse address given")
        self._session = session
        self._credentials = {"user": user, "password": password or None, "database": database}
        self.target = target or InsertTarget()
        self._readers = [self._client(url) for url in self.urls]
        self._writers = [self._client(url, **self.target.settings) for url in self.urls]
        self._query = self.target.query
        self._current = 0
        self.timeout = timeout

    def _client(self, url: str, **settings: int | str) -> ChClient:
        return ChClient(self._session, url=url, **self._credentials, **settings)

    async def first_answering(self) -> ChClient:
        """A client for the first replica that answers, for schema statements.

        Those run once, by hand or at installation, and may take longer than
        any bound the sink puts on its own calls; they are not moved to
        another replica midway.
        """
        await self.ping()
        return self._readers[self._current]

    async def insert(self, body: bytes) -> None:
        """Insert one batch; raise `RejectedData` or `TransientError` when it is not taken."""
        await self._on_a_replica(lambda index: self._writers[index].insert_file(self._query, body))

    async def ping(self, *, within: float | None = None) -> None:
        """Answer if a replica answers a trivial query, raise `TransientError` otherwise."""
        await self._on_a_replica(lambda index: self._readers[index].fetchval("SELECT 1"), within=within)

    async def fetch(
        self, query: str, params: dict[str, Any] | None = None, *, within: float | None = None
    ) -> list[Record]:
        """The rows of a query (`params` are escaped into its `{name}` fields), within `within` seconds."""
        return await self._on_a_replica(
            lambda index: self._readers[index].fetch(query, params=params), within=within
        )

    async def _on_a_replica[T](
        self, request: Callable[[int], Awaitable[T]], *, within: float | None = None
    ) -> T:
        """Make `request` of the replica in use, moving on to the next one as described above."""
        first = self._current
        for step in range(len(self.urls)):
            index = (first + step) % len(self.urls)
            try:
                result = await self.call(request(index), within=within)
            except TransientError as error:
                self._current = (index + 1) % len(self.urls)
                if len(self.urls) > 1:
                    log.warning(
                        "clickhouse_replica_failed",
                        replica=self.urls[index],
                        error_kind=error.kind,
                        error_code=error.code,
                        next_replica=self.urls[self._current],
                    )
                if error.kind != "unavailable" or step == len(self.urls) - 1:
                    raise
            else:
                self._current = index
                return result
        raise AssertionError("unreachable")  # pragma: no cover

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
