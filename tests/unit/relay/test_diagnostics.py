"""What ClickHouse says of a refused row: its own error only, and the cause others share."""

from __future__ import annotations

from relay.core.clickhouse import RejectedData
from relay.core.diagnostics import Fault, own_error, refused_row

ADA = "0b9c5a3e-9f6e-4b1a-8d7c-000000000001"
BAD = "0b9c5a3e-9f6e-4b1a-8d7c-000000000002"
CAROL = "0b9c5a3e-9f6e-4b1a-8d7c-000000000003"


def line(event_id: str, context: str, version: str) -> bytes:
    return f"{event_id}\tuser_logged_in\t2026-01-01 00:00:00\tLocal\t{context}\t{version}\n".encode()


REFUSED_LINE = line(BAD, "{}", "-1")

# ClickHouse 18.16's answer to three rows whose second has metadata_version -1.
REFUSED_AT_ROW_2 = RejectedData(
    "Code: 27, e.displayText() = DB::Exception: Cannot parse input: expected \\n before: -1\\n"
    f'{CAROL}\\tuser_logged_in\\t2026-01-01 00:00:00\\tLocal\\t{{"email":"carol@example.com"}}\\t1\\n'
    ": (at row 2)\n"
    "\n"
    "Row 1:\n"
    f'Column 0,   name: event_id,         type: UUID,            parsed text: "{ADA}"\n'
    'Column 1,   name: event_type,       type: String,          parsed text: "user_logged_in"\n'
    "Column 2,   name: event_date_time,  type: DateTime('UTC'), parsed text: \"2026-01-01 00:00:00\"\n"
    'Column 3,   name: environment,      type: String,          parsed text: "Local"\n'
    "Column 4,   name: event_context,    type: String,          parsed text: "
    '"{<DOUBLE QUOTE>email<DOUBLE QUOTE>:<DOUBLE QUOTE>ada@example.com<DOUBLE QUOTE>}"\n'
    'Column 5,   name: metadata_version, type: UInt64,          parsed text: "1"\n'
    "\n"
    "Row 2:\n"
    f'Column 0,   name: event_id,         type: UUID,            parsed text: "{BAD}"\n'
    'Column 1,   name: event_type,       type: String,          parsed text: "user_logged_in"\n'
    "Column 2,   name: event_date_time,  type: DateTime('UTC'), parsed text: \"2026-01-01 00:00:00\"\n"
    'Column 3,   name: environment,      type: String,          parsed text: "Local"\n'
    'Column 4,   name: event_context,    type: String,          parsed text: "{}"\n'
    "Column 5,   name: metadata_version, type: UInt64,          "
    'ERROR: text "-1<LINE FEED>0b9c5a3" is not like UInt64\n'
    "\n"
    ", e.what() = DB::Exception\n",
    code=27,
)


def test_a_refused_events_error_keeps_its_own_row_and_nothing_of_the_others() -> None:
    error = own_error(REFUSED_AT_ROW_2, 2)

    assert error.code == 27
    assert str(error).startswith("Code: 27, e.displayText() = DB::Exception: Cannot parse input")
    assert "(at row 2)" in str(error)
    assert 'ERROR: text "-1<LINE FEED>…" is not like UInt64' in str(error)
    for someone_else in (ADA, CAROL, "ada@example.com", "carol@example.com", '0b9c5a3"'):
        assert someone_else not in str(error)


def test_a_current_servers_error_keeps_its_name() -> None:
    error = RejectedData(
        "Code: 27. DB::Exception: Cannot parse input: expected '\\n' before: '-1\\n': (at row 1)\n: \n"
        "Row 1:\n"
        'Column 0,   name: metadata_version, type: UInt64, ERROR: text "-1<LINE FEED>" is not like UInt64\n'
        "\n: While executing ParallelParsingBlockInputFormat. (CANNOT_PARSE_INPUT_ASSERTION_FAILED)",
        code=27,
    )

    assert (
        str(own_error(error, 1)).splitlines()[0].endswith("(at row 1) (CANNOT_PARSE_INPUT_ASSERTION_FAILED)")
    )


def test_the_refused_column_and_text_are_read_from_the_diagnostics() -> None:
    fault = Fault.of(REFUSED_AT_ROW_2, 2, REFUSED_LINE)

    assert fault is not None
    assert (fault.column, fault.name, fault.type, fault.text) == (5, "metadata_version", "UInt64", b"-1")
    assert fault.matches(line(CAROL, '{"email":"carol@example.com"}', "-1"))
    assert not fault.matches(line(CAROL, "{}", "1"))
    assert not fault.matches(line(CAROL, "{}", "-10"))


def test_an_event_refused_alike_is_told_the_cause_and_not_the_other_events_data() -> None:
    fault = Fault.of(REFUSED_AT_ROW_2, 2, REFUSED_LINE)
    assert fault is not None

    message = str(fault.error())

    assert message.startswith("Code: 27. ClickHouse refused column metadata_version (UInt64)")
    assert f'holding "-1" in event {BAD}' in message
    assert "ada@example.com" not in message


def test_no_cause_is_claimed_when_the_diagnostics_do_not_show_the_field_whole() -> None:
    truncated = RejectedData(
        str(REFUSED_AT_ROW_2).replace('"-1<LINE FEED>0b9c5a3"', '"-1234567890123456789"'), code=27
    )
    other_text = line(BAD, "{}", "-2")

    assert Fault.of(truncated, 2, REFUSED_LINE) is None  # no field end shown
    assert Fault.of(REFUSED_AT_ROW_2, 2, other_text) is None  # not the text of this line
    assert Fault.of(REFUSED_AT_ROW_2, 1, REFUSED_LINE) is None  # row 1 was parsed, not refused
    assert Fault.of(RejectedData("Code: 469. Constraint violated", code=469), 1, REFUSED_LINE) is None


def test_the_row_clickhouse_names_is_the_one_refused() -> None:
    assert refused_row(REFUSED_AT_ROW_2) == 2
    assert refused_row(RejectedData("Code: 469. Constraint violated", code=469)) is None
