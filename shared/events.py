"""The event contract: typed events, and the envelope every event travels in.

An event class names its type (snake_case of the class name) and the schema
version of its payload. The web site builds events and writes their envelopes
to the outbox; the relay never parses payloads, it moves envelopes as bytes.
"""

from __future__ import annotations

import json
import re
import types
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Final, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict

from shared.outbox import EVENT_LOG_COLUMNS

_CAMEL_BOUNDARY = re.compile(r"(?<!^)(?=[A-Z])")


def snake_case(name: str) -> str:
    """`UserLoginFailed` -> `user_login_failed`."""
    return _CAMEL_BOUNDARY.sub("_", name).lower()


class Event(BaseModel):
    """Base of every event; subclasses declare the payload fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: ClassVar[str]
    metadata_version: ClassVar[int] = 1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "event_type" not in cls.__dict__:
            cls.event_type = snake_case(cls.__name__)

    def context_json(self) -> str:
        """The payload as compact JSON, the form the analysts' `event_context` holds."""
        return json.dumps(self.model_dump(mode="json"), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def field_kinds(cls) -> dict[str, str]:
        """The payload's fields and their kinds, as `PUBLISHED_SCHEMAS` records them."""
        return {name: field_kind(info.annotation) for name, info in cls.model_fields.items()}


class UserCreated(Event):
    """A person signed up. `user_id` finds the event again when the account is erased."""

    user_id: int
    email: str
    first_name: str
    last_name: str


class UserLoggedIn(Event):
    """A person signed in."""

    user_id: int
    ip_address: str | None = None


class UserLoggedOut(Event):
    """A person signed out."""

    user_id: int
    ip_address: str | None = None


class UserLoginFailed(Event):
    """A sign-in attempt was refused (security audit).

    For an address that belongs to an account: `user_id` and the address.
    For any other address (a typo, someone else's, a list being tried): only
    `email_hmac`, a keyed hash of the address as accounts compare it, so the
    same address can be recognised across attempts but never read back.
    """

    metadata_version: ClassVar[int] = 2

    user_id: int | None = None
    email: str | None = None
    email_hmac: str | None = None
    ip_address: str | None = None


class UserDeleted(Event):
    """An account was deleted. Carries nothing about whose it was."""


class UserErased(Event):
    """The events of a deleted account were erased everywhere they were kept.

    `erasure_id` names the erasure request (kept, with no link to the person);
    the counts say how much was erased from PostgreSQL.
    """

    erasure_id: int
    outbox_events: int
    dead_letters: int


class UserUpdated(Event):
    """A person changed their profile; only the names of the changed fields, never their values."""

    user_id: int
    changed_fields: tuple[str, ...]
    ip_address: str | None = None


class UserPasswordChanged(Event):
    """A signed-in person changed their password, giving the old one."""

    user_id: int
    ip_address: str | None = None


class UserPasswordResetRequested(Event):
    """Someone asked for a password-reset link.

    `user_id` is the account the address belongs to, or None when it belongs to
    none; the address itself is not kept. The person asking sees the same
    answer either way.
    """

    user_id: int | None
    ip_address: str | None = None


class UserPasswordReset(Event):
    """A person set a new password through a password-reset link."""

    user_id: int
    ip_address: str | None = None


class UserEmailVerified(Event):
    """A person proved they receive mail at their account's address, through the link sent there.

    Carries no address: `user_id` finds it (and the account's `user_created`
    event) while the account exists.
    """

    user_id: int
    ip_address: str | None = None


@dataclass(frozen=True, slots=True)
class Envelope:
    """One event as written to the outbox and, column for column, to ClickHouse."""

    event_type: str
    event_context: str
    environment: str
    metadata_version: int = 1
    event_id: uuid.UUID = field(default_factory=uuid.uuid4)
    event_date_time: datetime = field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def wrap(cls, event: Event, *, environment: str) -> Envelope:
        """Put an event into an envelope stamped with a fresh id and the current time."""
        return cls(
            event_type=event.event_type,
            event_context=event.context_json(),
            environment=environment,
            metadata_version=event.metadata_version,
        )

    def columns(self) -> dict[str, object]:
        """The envelope as `event_log`'s columns, in `EVENT_LOG_COLUMNS` order."""
        return {name: getattr(self, name) for name in EVENT_LOG_COLUMNS}


# The kinds a payload field may have, as the published schemas spell them; `?`
# marks a field that may be null or absent.
_KINDS: Final[dict[object, str]] = {int: "integer", str: "string", bool: "boolean"}


def field_kind(annotation: object) -> str:
    """`int | None` -> `integer?`, `tuple[str, ...]` -> `string[]`; a `TypeError` for other types."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (Union, types.UnionType) and type(None) in args:
        (inner,) = (arg for arg in args if arg is not type(None))
        return f"{field_kind(inner)}?"
    if origin is tuple and args == (str, Ellipsis):
        return "string[]"
    if annotation in _KINDS:
        return _KINDS[annotation]
    raise TypeError(
        f"an event field cannot be {annotation!r}: use int, str, bool, tuple[str, ...] or X | None"
    )


def event_classes() -> list[type[Event]]:
    """Every event the site can publish, in declaration order."""
    found: list[type[Event]] = []
    pending = list(Event.__subclasses__())
    while pending:
        cls = pending.pop(0)
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


# Every (event type, metadata version) ever published, with its fields: the
# record analysts' tables are built from (`relay migrate` creates one typed view
# per event type) and that tests/unit/test_event_schemas.py holds the classes to.
# docs/EVENTS.md says what a new version may change.
PUBLISHED_SCHEMAS_FILE: Final = Path(__file__).with_name("event_schemas.json")


def published_schemas() -> dict[str, dict[int, dict[str, str]]]:
    """`{event_type: {metadata_version: {field: kind}}}` as recorded in `event_schemas.json`."""
    recorded = json.loads(PUBLISHED_SCHEMAS_FILE.read_text())
    return {
        event_type: {int(version): dict(fields) for version, fields in versions.items()}
        for event_type, versions in recorded.items()
    }
