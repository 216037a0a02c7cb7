"""The one ClickHouse statement the site runs with more than read rights: erasing an account's events."""

from __future__ import annotations

from django.conf import settings

from shared.outbox import EVENT_LOG_TABLE
from webapp.core.clickhouse import site_eraser, string_literal

# A mutation is accepted quickly and carried out in the background.
TIMEOUT_SECONDS = 10.0


def erase_user_events(*, user_id: int) -> None:
    """Ask ClickHouse to delete every event of this site whose payload names this account (`"user_id":N`).

    Only this site's `environment`: another source's user with the same id is someone else.
    """
    table = f"{settings.CLICKHOUSE_DATABASE}.{EVENT_LOG_TABLE}"
    # visitParamExtractUInt reads `"user_id":N` from the compact JSON on ClickHouse 18.16 and current alike.
    site_eraser(timeout=TIMEOUT_SECONDS).execute(
        f"ALTER TABLE {table} DELETE WHERE environment = {string_literal(settings.ENVIRONMENT)}"
        f" AND visitParamExtractUInt(event_context, 'user_id') = {int(user_id)}"
    )
