"""Message templates are sandboxed and strict; SMS segments are counted as carriers do."""

from __future__ import annotations

import pytest

from rituals.sms import count_segments
from rituals.templates import SAMPLE_VALUES, TemplateProblem, check_template, render


def test_it_renders_the_known_variables() -> None:
    text = render("{{ partner }}: {{ ritual }} {{ when }}.  Idea: {{ item }}", SAMPLE_VALUES)
    assert text == (
        "Alex: date night Fri 4 Dec at 19:00. Idea: "
        "Cook a recipe from a cuisine neither of you has tried"
    )


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("Hi {{ nickname }}", "undefined variable 'nickname'"),
        ("{% if later %}{{ partner }}{% endif %}", "undefined variable 'later'"),
        ("Hi {{ partner }", "template syntax"),
        ("{{ partner.__class__.__mro__ }}", "unsafe"),
        ("{{ 1 // 0 }}", "ZeroDivisionError"),
        ("{{ '%d' % partner }}", "TypeError"),
        ("{{ [].pop() }}", "unsafe"),
        ("{{ partner * 100000000 }}", "too large"),
        ("{{ 2 ** 100000 }}", "too large"),
        ("{% include 'x' %}", "TypeError"),
    ],
)
def test_it_refuses_templates_it_cannot_render_safely(template: str, message: str) -> None:
    with pytest.raises(TemplateProblem) as caught:
        check_template(template)
    assert message in str(caught.value)


def test_it_refuses_item_where_there_is_no_deck() -> None:
    with pytest.raises(TemplateProblem, match="'item'"):
        check_template("{{ item }}", frozenset(SAMPLE_VALUES) - {"item"})


@pytest.mark.parametrize(
    ("body", "encoding", "segments"),
    [
        ("", "GSM-7", 0),
        ("a" * 160, "GSM-7", 1),
        ("a" * 161, "GSM-7", 2),
        ("a" * 306, "GSM-7", 2),
        ("a" * 307, "GSM-7", 3),
        ("[" * 80, "GSM-7", 1),  # extension characters count twice
        ("[" * 81, "GSM-7", 2),
        ("\u2019" * 70, "UCS-2", 1),  # a curly apostrophe forces UCS-2
        ("\u2019" * 71, "UCS-2", 2),
        ("a" * 134 + "\u2014", "UCS-2", 3),  # one em dash: 135 units, 67 a segment
        ("\U0001f60a" * 35, "UCS-2", 1),  # an emoji is two UTF-16 units
    ],
)
def test_it_counts_segments(body: str, encoding: str, segments: int) -> None:
    counted = count_segments(body)
    assert (counted.encoding, counted.count) == (encoding, segments)
