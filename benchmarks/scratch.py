"""Scratch databases for the benchmarks, built the way production builds them."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from relay.maintenance.partitions import maintain

ROOT = Path(__file__).resolve().parent.parent


def scratch_name(base: str) -> str:
    """`base` made this process's own: two benchmark runs on one server never share a scratch database."""
    return f"{base}_{os.getpid()}"


def database_url(url: str, name: str) -> str:
    """`url` pointing at database `name` on the same server."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def recreate_database(server_url: str, name: str) -> str:
    """Drop and create database `name` on the server of `server_url`; return its URL."""
    await drop_database(server_url, name)
    admin = await asyncpg.connect(database_url(server_url, "postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return database_url(server_url, name)


async def drop_database(server_url: str, name: str) -> None:
    """Drop database `name` on the server of `server_url`, whatever state a run left it in."""
    admin = await asyncpg.connect(database_url(server_url, "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def scratch_postgres(server_url: str, name: str) -> AsyncIterator[str]:
    """Database `name` created afresh on the server of `server_url`, its URL yielded; dropped
    afterwards, whatever happened."""
    url = await recreate_database(server_url, name)
    try:
        yield url
    finally:
        await drop_database(server_url, name)


def migrate(url: str) -> None:
    """Create the outbox tables (and the rest of the site's schema) with the site's own migrations."""
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url, "DEBUG": "true", "DIE_HARD_ENV_FILE": os.devnull},
        check=True,
    )


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def partition_archive(url: str, retention: timedelta) -> None:
    """This hour's partitions of the archive of delivered events, as a relay makes them at start-up.

    A drain that runs before any relay would otherwise copy into the default
    partition, which then blocks the hour's own (`archive_partition_blocked`).
    """
    connection = await asyncpg.connect(url)
    try:
        await maintain(connection, retention=retention, now=datetime.now(UTC))
    finally:
        await connection.close()
