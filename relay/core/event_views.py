"""Typed views for analysts: one per event type, one column per payload field.

`event_log` keeps every payload as a JSON string. For each event type the
contract has published (`shared/event_schemas.json`), `relay migrate` creates a
view `event_log_<event_type>` over the deduplicated view with the envelope's
columns and one typed column per field any published version declares: a field
some version lacks, or may leave null, is `Nullable` (an array is empty
instead). The fields are read with `visitParam*` functions, which both
ClickHouse 18.16 and current servers have, so one statement serves both.

A view holds no data: when the contract gains a version with new fields,
migrate drops the view and creates it again with the new columns.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from aiochclient import ChClient

from shared.events import published_schemas
from shared.outbox import EVENT_LOG_DEDUP_VIEW, EVENT_LOG_TABLE

# The envelope's columns every typed view starts with.
ENVELOPE_COLUMNS: Final = ("event_id", "event_date_time", "environment", "metadata_version")

_SCALARS: Final = {"integer": "Int64", "string": "String", "boolean": "UInt8"}
_EXTRACT: Final = {
    "integer": "visitParamExtractInt",
    "string": "visitParamExtractString",
    "boolean": "visitParamExtractBool",
}
# One JSON string literal, escapes included, inside an array's raw text.
_JSON_STRING: Final = r"'\"(?:[^\"\\\\]|\\\\.)*\"'"


def view_name(event_type: str) -> str:
    """The typed view of one event type."""
    return f"{EVENT_LOG_TABLE}_{event_type}"


def merged_fields(versions: Mapping[int, Mapping[str, str]]) -> dict[str, str]:
    """The fields of every version of one event type; a field any version may lack is optional (`?`)."""
    merged: dict[str, str] = {}
    # The newest version's order first, then what only older versions had.
    for fields in (versions[version] for version in sorted(versions, reverse=True)):
        for name, kind in fields.items():
            optional = kind.endswith("?") or merged.get(name, "").endswith("?")
            merged[name] = f"{kind.removesuffix('?')}{'?' if optional else ''}"
    for name, kind in merged.items():
        if not kind.endswith("?") and any(name not in fields for fields in versions.values()):
            merged[name] = f"{kind}?"
    return merged


def column_type(kind: str) -> str:
    """The ClickHouse type of a field of this kind (`integer?` -> `Nullable(Int64)`)."""
    base = kind.removesuffix("?")
    if base == "string[]":
        return "Array(String)"
    scalar = _SCALARS[base]
    return f"Nullable({scalar})" if kind.endswith("?") else scalar


def column_expression(name: str, kind: str) -> str:
    """SQL reading field `name` of this kind out of `event_context`."""
    base = kind.removesuffix("?")
    if base == "string[]":
        # Each element of the array's raw JSON, unescaped by reading it back as a one-field object.
        strings = f"extractAll(visitParamExtractRaw(event_context, '{name}'), {_JSON_STRING})"
        return f"arrayMap(item -> visitParamExtractString(concat('{{\"v\":', item, '}}'), 'v'), {strings})"
    value = f"{_EXTRACT[base]}(event_context, '{name}')"
    if not kind.endswith("?"):
        return value
    present = (
        f"visitParamHas(event_context, '{name}') AND visitParamExtractRaw(event_context, '{name}') != 'null'"
    )
    return f"if({present}, toNullable({value}), NULL)"


def view_columns(versions: Mapping[int, Mapping[str, str]]) -> dict[str, str]:
    """The payload columns of one event type's view and their ClickHouse types."""
    return {name: column_type(kind) for name, kind in merged_fields(versions).items()}


def create_view(
    database: str, event_type: str, versions: Mapping[int, Mapping[str, str]], cluster: str | None
) -> str:
    """The view of one event type."""
    on_cluster = f" ON CLUSTER {cluster}" if cluster else ""
    fields = [f"{column_expression(name, kind)} AS {name}" for name, kind in merged_fields(versions).items()]
    columns = ",\n    ".join([*ENVELOPE_COLUMNS, *fields])
    return (
        f"CREATE VIEW IF NOT EXISTS {database}.{view_name(event_type)}{on_cluster} AS\n"
        f"SELECT\n    {columns}\nFROM {database}.{EVENT_LOG_DEDUP_VIEW}\n"
        f"WHERE event_type = '{event_type}'"
    )


def drop_view(database: str, event_type: str, cluster: str | None) -> str:
    """Drop one event type's view (it holds no data), to create it with other columns."""
    on_cluster = f" ON CLUSTER {cluster}" if cluster else ""
    return f"DROP TABLE IF EXISTS {database}.{view_name(event_type)}{on_cluster}"


def create_views(database: str, cluster: str | None = None) -> dict[str, str]:
    """Each published event type's view statement, by event type."""
    return {
        event_type: create_view(database, event_type, versions, cluster)
        for event_type, versions in published_schemas().items()
    }


async def apply(client: ChClient, database: str, cluster: str | None = None) -> None:
    """Create each published event type's view, or create it again where its columns changed."""
    existing: dict[str, dict[str, str]] = {}
    for row in await client.fetch(
        "SELECT table, name, type FROM system.columns WHERE database = {db}", params={"db": database}
    ):
        if row["name"] not in ENVELOPE_COLUMNS:
            existing.setdefault(row["table"], {})[row["name"]] = row["type"]
    published = published_schemas()
    for event_type, statement in create_views(database, cluster).items():
        current = existing.get(view_name(event_type))
        if current is not None and current != view_columns(published[event_type]):
            await client.execute(drop_view(database, event_type, cluster))
        await client.execute(statement)
