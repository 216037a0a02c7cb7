"""Published event schemas: what a version promised stays promised (docs/EVENTS.md).

`shared/event_schemas.json` records every (event type, metadata version) the
site has published with its fields. Rows of every version stay in ClickHouse
for years, and the analysts' typed views are built from this record, so a
published version never changes, and a new version may only add to what the
last one had.
"""

from __future__ import annotations

import pytest

from shared.events import Event, UserUpdated, event_classes, field_kind, published_schemas

PUBLISHED = published_schemas()


def compatible(old: str, new: str) -> bool:
    """Whether a field of kind `old` may become `new` in the next version: the same, or now optional."""
    return new in (old, f"{old.removesuffix('?')}?")


def breaking_changes(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """What a new version does to the previous version's fields that readers of old rows cannot follow."""
    problems = [f"{name} removed" for name in old if name not in new]
    problems += [
        f"{name}: {old[name]} -> {new[name]}"
        for name in old
        if name in new and not compatible(old[name], new[name])
    ]
    return problems


@pytest.mark.parametrize("event", event_classes(), ids=lambda cls: cls.event_type)
def test_every_event_is_published_exactly_as_its_class_declares_it(event: type[Event]) -> None:
    recorded = PUBLISHED.get(event.event_type, {}).get(event.metadata_version)

    assert recorded == event.field_kinds(), (
        f"{event.event_type} v{event.metadata_version} is not recorded as declared"
        " in shared/event_schemas.json: a published version never changes. Give the"
        " event a new metadata_version and record it beside the old one (docs/EVENTS.md)."
    )


@pytest.mark.parametrize("event_type", sorted(PUBLISHED))
def test_each_version_keeps_every_field_of_the_one_before(event_type: str) -> None:
    versions = PUBLISHED[event_type]

    assert sorted(versions) == list(range(1, len(versions) + 1)), "versions count up from 1, none skipped"
    for version in sorted(versions)[1:]:
        assert breaking_changes(versions[version - 1], versions[version]) == [], (
            f"{event_type} v{version} breaks v{version - 1}: publish a new event type instead"
        )


def test_a_field_may_become_optional_but_not_change_kind_or_disappear() -> None:
    old = {"user_id": "integer", "email": "string", "ip_address": "string?"}

    assert breaking_changes(old, {**old, "email": "string?", "email_hmac": "string?"}) == []
    assert breaking_changes(old, {"user_id": "string", "email": "string", "ip_address": "string?"}) == [
        "user_id: integer -> string"
    ]
    assert breaking_changes(old, {"user_id": "integer", "email": "string"}) == ["ip_address removed"]
    assert breaking_changes(old, {**old, "ip_address": "string"}) == ["ip_address: string? -> string"]


def test_fields_are_recorded_by_kind() -> None:
    assert UserUpdated.field_kinds() == {
        "user_id": "integer",
        "changed_fields": "string[]",
        "ip_address": "string?",
    }
    assert field_kind(bool) == "boolean"
    with pytest.raises(TypeError, match="cannot be"):
        field_kind(float)
    with pytest.raises(TypeError, match="cannot be"):
        field_kind(tuple[int, ...])
