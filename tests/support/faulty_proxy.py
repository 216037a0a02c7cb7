"""A small TCP proxy of the suite's own between the relays and ClickHouse.

It forwards bytes both ways and, on command, misbehaves the way networks and
overloaded servers do: it adds latency to every chunk (`slow`), holds every
byte without forwarding it (`stall`), cuts connections after a random number
of bytes with a TCP reset (`cut`), or refuses new connections (`refuse`).
The mode applies at once, to open (keep-alive) connections too.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from dataclasses import dataclass, field
from enum import StrEnum

CHUNK = 64 * 1024


class ConnectionCut(Exception):
    """The proxy cut a connection on purpose."""


class Mode(StrEnum):
    PASS = "pass"
    SLOW = "slow"
    STALL = "stall"
    CUT = "cut"
    REFUSE = "refuse"


@dataclass
class FaultyProxy:
    """Listens on `port` and forwards to `upstream_port`, misbehaving as `mode` says."""

    upstream_port: int
    port: int
    latency: float = 0.5
    # Seconds to hold back an end of stream (FIN) after the data before it was
    # forwarded: the peer reads a server's last words but not yet its hang-up.
    eof_delay: float = 0.0
    rng: random.Random = field(default_factory=random.Random)
    mode: Mode = Mode.PASS
    connections: int = 0
    cuts: int = 0
    _server: asyncio.Server | None = None
    _open: set[asyncio.StreamWriter] = field(default_factory=set)
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._open):
                _reset(writer)
            for handler in list(self._handlers):
                handler.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)
            await self._server.wait_closed()

    def set_mode(self, mode: Mode) -> None:
        self.mode = mode
        self._changed.set()
        self._changed = asyncio.Event()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
            handler.add_done_callback(self._handlers.discard)
        if self.mode is Mode.REFUSE:
            _reset(client_writer)
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            _reset(client_writer)
            return
        self._open.update((client_writer, upstream_writer))
        # A cut comes after a random number of bytes (a connection carries many
        # requests): mid-request, mid-answer, or between two.
        budget = self.rng.randrange(1, 32 * 1024)
        pipes = [
            asyncio.create_task(self._pipe(client_reader, upstream_writer, budget)),
            asyncio.create_task(self._pipe(upstream_reader, client_writer, budget)),
        ]
        try:
            # Both directions run until each ends; a cut or a reset ends both.
            await asyncio.wait(pipes, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for pipe in pipes:
                pipe.cancel()
            results = await asyncio.gather(*pipes, return_exceptions=True)
            broken = any(isinstance(result, BaseException) for result in results)
            for writer in (client_writer, upstream_writer):
                self._open.discard(writer)
                if broken:
                    _reset(writer)
                with contextlib.suppress(Exception):
                    writer.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, budget: int) -> None:
        forwarded = 0
        while True:
            data = await reader.read(CHUNK)
            if not data:
                if self.eof_delay:
                    await asyncio.sleep(self.eof_delay)
                with contextlib.suppress(OSError):
                    writer.write_eof()
                return
            while self.mode is Mode.STALL:
                await self._changed.wait()
            if self.mode is Mode.SLOW:
                await asyncio.sleep(self.latency)
            if self.mode is Mode.CUT and forwarded + len(data) > budget:
                self.cuts += 1
                writer.write(data[: max(budget - forwarded, 0)])
                raise ConnectionCut
            writer.write(data)
            await writer.drain()
            forwarded += len(data)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a crashed peer or a middlebox does."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(Exception):
        writer.close()
