"""The one-line rule for names: the control characters, line breaks and bidi controls, nothing else."""

from __future__ import annotations

import re
import sys
import unicodedata

import pytest
from django.core.exceptions import ValidationError

from webapp.users.models import NAME_REFUSED_CHARACTERS, validate_name
from webapp.users.openapi import ONE_LINE

# Embeddings, overrides and isolates: they reorder the text around them.
BIDI_CONTROLS = {*range(0x202A, 0x202F), *range(0x2066, 0x206A)}


def test_the_rule_refuses_control_characters_line_separators_and_bidi_controls_and_nothing_else() -> None:
    refused = re.compile(f"[{NAME_REFUSED_CHARACTERS}]")
    expected = {
        code
        for code in range(sys.maxunicode + 1)
        if unicodedata.category(chr(code)) in {"Cc", "Zl", "Zp"} or code in BIDI_CONTROLS
    }

    assert {code for code in range(sys.maxunicode + 1) if refused.match(chr(code))} == expected


@pytest.mark.parametrize("name", ["Eve\r\nBcc: x", "a\tb", "a\x00b", "a\u2028b", "a\u202eb", "a\x85b"])
def test_a_name_off_its_line_is_refused(name: str) -> None:
    with pytest.raises(ValidationError):
        validate_name(name)


@pytest.mark.parametrize("name", ["", "Zoë", "José María", "O'Brien-Smith", "李小龍", "محمد", "a\u200db"])
def test_a_name_on_one_line_passes(name: str) -> None:
    validate_name(name)


def test_the_api_description_states_the_same_rule() -> None:
    # Python reads the description's `\uXXXX` escapes as ECMAScript does.
    pattern = re.compile(ONE_LINE)

    assert pattern.match("Zoë O'Brien")
    assert not pattern.match("Eve\nSmith")
    assert not pattern.match("Eve\u202eSmith")
