"""Current ClickHouse (chdb) behind an HTTP endpoint, so the relay's own commands can run against it.

chdb is an engine in this process, not a server; the relay speaks ClickHouse's
HTTP interface. This endpoint answers the part of that interface the relay's
schema commands use: a statement in the request body (or the `query`
parameter, with the body after it), its answer in the format the statement
names, an error as status 500 with ClickHouse's message. Statements must name
their database: the `database` parameter is not followed.
"""

from __future__ import annotations

import tempfile
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any


class CurrentClickHouseEndpoint:
    """An empty chdb session served over HTTP on a free local port; it remembers every statement."""

    def __init__(self, path: str) -> None:
        from chdb.session import Session  # 180 MB of engine: loaded only by the tests that use it

        self._session = Session(path)
        self._lock = threading.Lock()
        self.statements: list[str] = []
        self._server = HTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, name="chdb-http", daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        """Where the endpoint listens, on 127.0.0.1."""
        port: int = self._server.server_address[1]
        return port

    def query(self, sql: str) -> str:
        """Run a statement directly (not recorded); its answer as TSV."""
        with self._lock:
            return str(self._session.query(sql, "TSV"))

    def _answer(self, sql: str) -> tuple[int, bytes]:
        if not sql.strip():  # a bare GET: the server is up
            return 200, b"Ok.\n"
        with self._lock:
            self.statements.append(sql)
            try:
                return 200, bytes(self._session.query(sql, "TSV").bytes())
            except Exception as error:  # chdb raises its own error types; the client gets the message
                return 500, str(error).encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._respond(b"")

            def do_POST(self) -> None:
                self._respond(self.rfile.read(int(self.headers.get("Content-Length", "0"))))

            def _respond(self, body: bytes) -> None:
                parameters = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                sql = "\n".join([*parameters.get("query", []), body.decode()])
                status, answer = endpoint._answer(sql)
                self.send_response(status)
                self.send_header("Content-Type", "text/tab-separated-values; charset=UTF-8")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the test reads `statements`, not a request log

        return Handler

    def close(self) -> None:
        """Stop serving and release the session."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self._session.close()


@contextmanager
def current_clickhouse_endpoint() -> Iterator[CurrentClickHouseEndpoint]:
    """An empty current ClickHouse served over HTTP until the block ends."""
    with tempfile.TemporaryDirectory() as path:
        endpoint = CurrentClickHouseEndpoint(path)
        try:
            yield endpoint
        finally:
            endpoint.close()
