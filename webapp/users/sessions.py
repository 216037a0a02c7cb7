"""The sessions a signed-in account keeps in the database: ended with the account, swept when expired."""

from __future__ import annotations

from django.contrib.sessions.models import Session
from django.db.models.functions import Now

# How many session rows are read into memory at a time while looking for an account's.
_BATCH = 500


def user_sessions_delete(*, user_id: int) -> int:
    """Delete every unexpired session signed in as this account; the number deleted.

    A session row holds the account's id only inside its signed payload, so
    each unexpired one is decoded: the cost grows with the number of live
    sessions, paid once per deleted account. Expired ones go with the daily sweep.
    """
    wanted = str(user_id)
    doomed = [
        session.session_key
        for session in Session.objects.filter(expire_date__gt=Now()).iterator(chunk_size=_BATCH)
        if str(session.get_decoded().get("_auth_user_id")) == wanted
    ]
    deleted, _ = Session.objects.filter(session_key__in=doomed).delete()
    return deleted
