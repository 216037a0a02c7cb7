"""Sign-ups through the site's own service, `user_create`, as the producer.

Django runs inside the suite's process against the scratch database. The
welcome e-mail task runs eagerly into Django's in-memory mailbox, so no broker
(and never the machine's Redis) is involved. A thin spy on
`Envelope.wrap` notes the event ids each sign-up wrote (in the signing-up
thread only); the site's own code does all the writing.
"""

from __future__ import annotations

import os
import threading
import time
import uuid

from shared.events import Envelope, Event
from tests.chaos.producer import History

_recorded = threading.local()
_configured: list[str] = []


def configure(dsn: str) -> None:
    """Set Django up once, against the scratch database."""
    if _configured:
        if _configured != [dsn]:
            raise RuntimeError("Django is already set up against another database")
        return
    os.environ.update(
        DJANGO_SETTINGS_MODULE="webapp.config.settings",
        DATABASE_URL=dsn,
        DEBUG="true",
        REDIS_URL="redis://127.0.0.1:1/0",
        LOG_LEVEL="WARNING",
    )
    import django

    django.setup()
    from django.conf import settings

    from webapp.config.celery import app

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    # The fast hasher: the run measures event delivery, not password hashing.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    app.conf.task_always_eager = True
    wrap = Envelope.wrap

    def recording(cls: type[Envelope], event: Event, *, environment: str) -> Envelope:
        envelope = wrap(event, environment=environment)
        noted = getattr(_recorded, "envelopes", None)
        if noted is not None:  # only in the thread signing people up
            noted.append(envelope)
        return envelope

    Envelope.wrap = classmethod(recording)  # type: ignore[method-assign,assignment]
    _configured.append(dsn)


def _verify_link(uidb64: str, token: str) -> str:
    return f"http://chaos.invalid/accounts/email/verify/{uidb64}/{token}/"


def sign_ups(history: History, *, count: int, rate: float, prefix: str) -> int:
    """Sign `count` people up at about `rate` per second (blocking: run it in a thread)."""
    from django.db import DatabaseError, close_old_connections, connection

    from webapp.users.services import user_create

    started = time.monotonic()
    created = 0
    for number in range(count):
        delay = started + number / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        _recorded.envelopes = []
        try:
            user_create(
                email=f"{prefix}-{uuid.uuid4().hex[:12]}@example.com",
                password="correct horse battery staple",
                first_name="Grace",
                last_name="Hopper",
                verify_link=_verify_link,
            )
        except DatabaseError:
            # Whether the transaction committed is unknown: the events may exist.
            history.indeterminate |= {envelope.event_id for envelope in _recorded.envelopes}
            connection.close()
            close_old_connections()
            continue
        history.ok |= {envelope.event_id for envelope in _recorded.envelopes}
        created += 1
    connection.close()
    return created
