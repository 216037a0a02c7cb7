"""The one ClickHouse statement the site runs with more than read rights: erasing an account's events."""

from __future__ import annotations

from collections.abc import Sequence

from django.conf import settings

from shared.outbox import EVENT_LOG_TABLE, USER_EVENTS_TABLE
from webapp.core.clickhouse import site_eraser, string_literal

# A mutation is accepted quickly and carried out in the background.
TIMEOUT_SECONDS = 10.0


def erase_user_events(*, user_ids: Sequence[int]) -> None:
    """Ask ClickHouse to delete every event of this site about these accounts, wherever it keeps one.

    From `event_log` (the payload's `"user_id":N`) and from its per-account
    copy `event_log_by_user` (its `user_id` column), one mutation per table
    for all the accounts. Only this site's `environment`: another source's
    user with the same id is someone else.
    """
    ids = ", ".join(str(int(user_id)) for user_id in user_ids)
    environment = string_literal(settings.ENVIRONMENT)
    database = settings.CLICKHOUSE_DATABASE
    eraser = site_eraser(timeout=TIMEOUT_SECONDS)
    # visitParamExtractUInt reads `"user_id":N` from the compact JSON on ClickHouse 18.16 and current alike.
    eraser.execute(
        f"ALTER TABLE {database}.{EVENT_LOG_TABLE} DELETE WHERE environment = {environment}"
        f" AND visitParamExtractUInt(event_context, 'user_id') IN ({ids})"
    )
    eraser.execute(
        f"ALTER TABLE {database}.{USER_EVENTS_TABLE} DELETE"
        f" WHERE environment = {environment} AND user_id IN ({ids})"
    )
