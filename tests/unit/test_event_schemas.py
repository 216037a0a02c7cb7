"""Published event schemas: what a version promised stays promised (docs/EVENTS.md).

`shared/event_schemas.json` records every (event type, metadata version) the
site has published with its fields. Rows of every version stay in ClickHouse
for years, and the analysts' typed views are built from this record, so a
published version never changes, and a new version may only add to what the
last one had. What was published is what git remembers: every committed version
of the record, which the working copy must still agree with.
"""

from __future__ import annotations

import json
import subprocess
from typing import Final

import pytest

from shared.events import (
    PUBLISHED_SCHEMAS_FILE,
    Event,
    UserUpdated,
    event_classes,
    field_kind,
    published_schemas,
)
from tests.support.project import ROOT

type Schemas = dict[str, dict[int, dict[str, str]]]

PUBLISHED = published_schemas()
RECORD: Final = PUBLISHED_SCHEMAS_FILE.relative_to(ROOT).as_posix()
# The commit that first recorded the published schemas: a history without it
# (a shallow clone, a squash) cannot show what was published before.
FIRST_RECORDED: Final = "8dfd41e07ac7ee1be0867e95b609b91a6f61c427"


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


def changes_to_published(published: Schemas, current: Schemas) -> list[str]:
    """How `current` differs from what `published` recorded for each (event type, version) in it."""
    problems = []
    for event_type, versions in sorted(published.items()):
        for version, fields in sorted(versions.items()):
            now = current.get(event_type, {}).get(version)
            if now is None:
                problems.append(f"{event_type} v{version} removed")
                continue
            problems += [f"{event_type} v{version}: {name} removed" for name in fields if name not in now]
            problems += [
                f"{event_type} v{version}: {name}: {fields[name]} -> {now[name]}"
                for name in fields
                if name in now and now[name] != fields[name]
            ]
            problems += [f"{event_type} v{version}: {name} added" for name in now if name not in fields]
    return problems


def git(*args: str) -> str:
    """The output of a git command run in the project."""
    try:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        pytest.fail("git is not installed: the record's history cannot be read")
    if done.returncode != 0:
        pytest.fail(f"git {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


def parse(text: str) -> Schemas:
    recorded = json.loads(text)
    return {
        event_type: {int(version): dict(fields) for version, fields in versions.items()}
        for event_type, versions in recorded.items()
    }


@pytest.fixture(scope="module")
def committed_records() -> dict[str, Schemas]:
    """Every version of the record committed in HEAD's history, oldest first, by commit.

    Merges count too (`--full-history`): a version published on a branch stays
    published when a merge takes the other side's record.
    """
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the published record's history is not at hand")
    if git("rev-parse", "--is-shallow-repository").strip() == "true":
        pytest.fail("a shallow clone lacks the record's history: git fetch --unshallow")
    done = subprocess.run(
        ["git", "merge-base", "--is-ancestor", FIRST_RECORDED, "HEAD"], cwd=ROOT, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"HEAD's history lacks {FIRST_RECORDED[:7]}, which first recorded the published schemas")
    commits = git("log", "--full-history", "--reverse", "--format=%H", "HEAD", "--", RECORD).split()
    return {commit[:7]: parse(git("show", f"{commit}:{RECORD}")) for commit in commits}


def test_no_version_the_record_ever_committed_has_changed_since(
    committed_records: dict[str, Schemas],
) -> None:
    assert next(iter(committed_records)) == FIRST_RECORDED[:7]
    changed: dict[str, str] = {}
    for commit, published in committed_records.items():
        for problem in changes_to_published(published, PUBLISHED):
            changed.setdefault(problem, commit)  # named by the first commit that published it

    assert not changed, (
        f"{RECORD} changes published versions; a published version never changes: restore it"
        " and record a new metadata_version beside it (docs/EVENTS.md):\n"
        + "\n".join(f"{problem} (published in {commit})" for problem, commit in changed.items())
    )


def test_a_published_version_may_neither_lose_nor_change_nor_gain_a_field() -> None:
    published: Schemas = {"user_created": {1: {"user_id": "integer", "email": "string"}}}

    assert (
        changes_to_published(published, {"user_created": {1: {"email": "string", "user_id": "integer"}}})
        == []
    )
    assert changes_to_published(published, {"user_created": {**published["user_created"], 2: {}}}) == []
    assert changes_to_published(
        published, {"user_created": {1: {"user_id": "integer", "email": "string?"}}}
    ) == ["user_created v1: email: string -> string?"]
    assert changes_to_published(published, {"user_created": {1: {"user_id": "integer"}}}) == [
        "user_created v1: email removed"
    ]
    assert changes_to_published(
        published, {"user_created": {1: {"user_id": "integer", "email": "string", "name": "string"}}}
    ) == ["user_created v1: name added"]
    assert changes_to_published(published, {"user_created": {2: published["user_created"][1]}}) == [
        "user_created v1 removed"
    ]


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
