"""What operators see of a dead letter's error: its code and headline, never the refused row."""

from __future__ import annotations

from webapp.outbox.errors import SUMMARY_CHARS, error_summary

REFUSED_ROW = (
    "Code: 27, e.displayText() = DB::Exception: Cannot parse input: expected \\t before: "
    '0\\tLocal\\t{"email":"ada@example.com","first_name":"Ada"}\\n: (at row 1)\n'
    ", e.what() = DB::Exception"
)


def test_a_clickhouse_error_is_summarised_as_its_code_and_headline() -> None:
    assert error_summary(REFUSED_ROW) == "Code: 27 — Cannot parse input"


def test_the_summary_never_quotes_the_refused_row() -> None:
    assert "ada@example.com" not in error_summary(REFUSED_ROW)


def test_an_error_in_another_format_is_cut_at_its_first_colon() -> None:
    assert error_summary("connection refused: ada@example.com") == "connection refused"


def test_a_long_headline_is_shortened_to_one_line_with_an_ellipsis() -> None:
    summary = error_summary("Code: 1, e.displayText() = DB::Exception: " + "word\tword " * 20)

    assert len(summary) <= len("Code: 1 — ") + SUMMARY_CHARS
    assert summary.endswith("…")
    assert "\t" not in summary
