"""GSM-7 care: typography that would force UCS-2 is replaced when that makes a body GSM-7."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rituals.sms import count_segments, is_gsm7, to_gsm7


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("It\u2019s date night", "It's date night"),
        ("\u201cYes\u201d \u2014 tonight\u2026", '"Yes" - tonight...'),
        ("Dinner\u00a0at\u202f8", "Dinner at 8"),
        ("a\u200bb\ufeffc\u00add", "abcd"),  # invisible characters dropped
        ("\u2022 one \u2013 two", "* one - two"),
        ("caf\u00e9 \u00e0 deux", "caf\u00e9 \u00e0 deux"),  # GSM-7 already: untouched
        ("It\u2019s \u2764\ufe0f", "It\u2019s \u2764\ufe0f"),  # an emoji keeps it UCS-2: untouched
        ("\u00c5ngstr\u00f6m \u00e7a", "\u00c5ngstr\u00f6m \u00e7a"),  # \u00e7 is not GSM-7
    ],
)
def test_typography_is_made_gsm7_when_that_helps(body: str, expected: str) -> None:
    assert to_gsm7(body) == expected


def test_a_curly_apostrophe_no_longer_doubles_the_cost() -> None:
    body = "Tonight\u2019s the night: " + "x" * 120
    assert count_segments(body).count == 3  # UCS-2: 67 a segment when split
    assert count_segments(to_gsm7(body)).count == 1  # GSM-7: 160


@given(st.text(max_size=300))
def test_to_gsm7_gives_gsm7_or_leaves_the_body_alone(body: str) -> None:
    out = to_gsm7(body)
    assert is_gsm7(out) or out == body
    assert to_gsm7(out) == out  # idempotent
    if out != body:  # a change only ever saves money
        assert count_segments(out).count <= count_segments(body).count
