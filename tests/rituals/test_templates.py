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


# Templates are user code run by the worker for every delivery it plans: whatever they say,
# a rendering stops within its budget with a TemplateProblem that says why.
@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ lipsum(10**8) }}", "undefined variable 'lipsum'"),
        (
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            "too large for a message",
        ),
        (
            "{% for i in range(5000) %}{% for j in range(5000) %}{% endfor %}{% endfor %}",
            "too much work for a message",
        ),
        ("{% for i in 'abc' recursive %}{{ loop(i) }}{% endfor %}", "recursive loops"),
        (
            "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}"
            "{{ f(40) }}",
            "too much work for a message",
        ),
        ("{{ 'x'*16*16*16*16*16*16 }}", "too large for a message"),
        ("{% set a = partner %}" + "{% set a = a ~ a %}" * 40 + "{{ a }}", "too large"),
        ("{% set a = partner %}" + "{% set a = a.replace('A', a) %}" * 40 + "{{ a }}", "too large"),
        ("{% set a = partner %}" + "{% set a = a + a %}" * 40 + "{{ a }}", "too large"),
        ("{{ '%0999999999d' % 1 }}", "too large for a message"),
        ("{{ '%0999999999d' | format(1) }}", "too large for a message"),
        ("{{ '{:>999999999}'.format(1) }}", "too large for a message"),
        ("{{ '{:{w}}'.format(1, w=999999999) }}", "nested format fields"),
        ("{{ 'x'.ljust(999999999) }}", "too large for a message"),
        ("{{ partner | center(999999999) }}", "too large for a message"),
        ("{{ range(9999) | list | join(partner * 16) }}", "too large for a message"),
        ("{% set x = 10**64 %}{% set x = x**64 %}{% set x = x**64 %}{{ x }}", "number too large"),
        ("{% set x = 3**60 %}" + "{% set x = x*x %}" * 30 + "{{ x }}", "number too large"),
        ("{{" + "(" * 2000 + "1" + ")" * 2000 + "}}", "template syntax"),
        ("{{ partner | nofilter }}", "No filter named 'nofilter'"),
        ("x" * 10_001, "at most 10,000 characters"),
    ],
)
def test_a_template_that_would_run_long_or_build_a_huge_value_is_refused(
    template: str, message: str
) -> None:
    with pytest.raises(TemplateProblem) as caught:
        check_template(template)
    assert message in str(caught.value)


def test_a_message_longer_than_the_longest_a_notifier_takes_is_refused_while_it_renders() -> None:
    # 900 times 159 characters: within every step and value limit, but the output is not.
    long = "{% for i in range(900) %}{{ item * 3 }}{% endfor %}"
    with pytest.raises(TemplateProblem, match="longer than 100,000 characters"):
        render(long, SAMPLE_VALUES)


def test_loops_filters_and_formatting_a_message_may_use_still_work() -> None:
    template = (
        "{% for name in partners.split(' and ') %}{{ name | upper }}{{ ', ' if not loop.last }}"
        "{% endfor %}: {{ '%s!' % partner }} {{ '{}?'.format(ritual) }} {{ item | truncate(9) }}"
        " {{ '-' * 3 }} {{ partner ~ '/' ~ household }}"
    )
    assert render(template, SAMPLE_VALUES) == (
        "ALEX, SAM: Alex! date night? Cook... --- Alex/alex-sam"
    )


def test_the_budget_is_per_rendering_so_one_heavy_template_does_not_starve_the_next() -> None:
    heavy = "{% for i in range(900) %}.{% endfor %}"
    for _ in range(3):
        assert render(heavy, SAMPLE_VALUES) == "." * 900
