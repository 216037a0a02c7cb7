"""The one ClickHouse statement the site runs with more than read rights: erasing an account's events."""

from __future__ import annotations

import http.client
import urllib.parse

from django.conf import settings

# A mutation is accepted quickly and carried out in the background.
TIMEOUT_SECONDS = 10.0


class ClickHouseRefused(RuntimeError):
    """ClickHouse answered with an error; the message is kept out of logs (it may quote data)."""


def erase_user_events(*, user_id: int) -> None:
    """Ask ClickHouse to delete every event whose payload names this account (`"user_id":N`)."""
    table = f"{settings.CLICKHOUSE_DATABASE}.event_log"
    # visitParamExtractUInt reads `"user_id":N` from the compact JSON on ClickHouse 18.16 and current alike.
    _execute(
        f"ALTER TABLE {table} DELETE WHERE visitParamExtractUInt(event_context, 'user_id') = {int(user_id)}"
    )


def _execute(sql: str) -> None:
    address = urllib.parse.urlsplit(settings.CLICKHOUSE_URL)
    connection_class = (
        http.client.HTTPSConnection if address.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_class(address.hostname or "127.0.0.1", address.port, timeout=TIMEOUT_SECONDS)
    try:
        connection.request(
            "POST",
            "/",
            body=sql.encode(),
            headers={
                "X-ClickHouse-User": settings.CLICKHOUSE_ERASER_USER,
                "X-ClickHouse-Key": settings.CLICKHOUSE_ERASER_PASSWORD,
            },
        )
        response = connection.getresponse()
        response.read()
    finally:
        connection.close()
    if response.status != 200:
        raise ClickHouseRefused(f"ClickHouse answered {response.status}")
