"""Message templates: Jinja2, sandboxed, strict about unknown variables."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = [
    "DEFAULT_MESSAGES",
    "SAMPLE_VALUES",
    "VARIABLES",
    "TemplateProblem",
    "check_template",
    "render",
]

#: What every template may use.
VARIABLES: Mapping[str, str] = {
    "partner": "the recipient's name",
    "partners": "both names, e.g. 'Alex and Sam'",
    "planner": "who plans this one, e.g. 'Alex'",
    "when": "day and time in the recipient's zone, e.g. 'Fri 4 Dec at 19:00'",
    "time": "time of day in the recipient's zone, e.g. '19:00'",
    "date": "date in the recipient's zone, e.g. 'Fri 4 Dec'",
    "item": "this occurrence's idea or question from the deck",
    "ritual": "the ritual's title, e.g. 'date night'",
    "household": "the household id",
}

SAMPLE_VALUES: Mapping[str, str] = {
    "partner": "Alex",
    "partners": "Alex and Sam",
    "planner": "Sam",
    "when": "Fri 4 Dec at 19:00",
    "time": "19:00",
    "date": "Fri 4 Dec",
    "item": "Cook a recipe from a cuisine neither of you has tried",
    "ritual": "date night",
    "household": "alex-sam",
}

#: Built-in messages by role, then kind; a ritual's own ``message`` replaces day_of/nudge.
DEFAULT_MESSAGES: Mapping[str, Mapping[str, str]] = {
    "day_of": {
        "date_night": (
            "Date night {{ when }}! Planner: {{ planner }}. Idea: {{ item }}. Reply DONE after."
        ),
        "check_in": (
            "Check-in time, {{ partner }}. Open with one thing you appreciated this week, "
            "then: {{ item }} Reply DONE when you've talked."
        ),
        "appreciation": "{{ partner }}, a small nudge: {{ item }}",
        "custom": "Time for {{ ritual }}, {{ partner }}. Reply DONE when it's done.",
    },
    "plan_ahead": {
        "date_night": (
            "{{ partner }}, you're planning date night {{ when }}. "
            "An idea if you want one: {{ item }}."
        ),
        "custom": "{{ partner }}, you're planning {{ ritual }} {{ when }}.",
    },
    "reminder": {
        "date_night": "Did date night happen? Reply DONE, SKIP or SNOOZE 1d.",
        "check_in": "Did you two get to your check-in? Reply DONE, SKIP or SNOOZE 1h.",
        "custom": "Still on for {{ ritual }}? Reply DONE, SKIP or SNOOZE 2h.",
    },
}


def default_message(role: str, kind: str) -> str:
    by_kind = DEFAULT_MESSAGES["day_of" if role == "nudge" else role]
    return by_kind.get(kind, by_kind["custom"])


class _MessageEnvironment(ImmutableSandboxedEnvironment):
    """No mutation, no attribute tricks, and no operators that build huge values."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > 64:
            raise SecurityError("exponent too large for a message")
        if operator == "*" and any(isinstance(v, str | list | tuple) for v in (left, right)):
            count = right if isinstance(right, int) else left
            if isinstance(count, int) and count > 16:
                raise SecurityError("repetition too large for a message")
        return super().call_binop(context, operator, left, right)


_ENV = _MessageEnvironment(undefined=StrictUndefined, autoescape=False)


class TemplateProblem(ValueError):
    """A template that cannot render; the message names the variable or the syntax error."""


@lru_cache(maxsize=1024)
def _compile(source: str) -> tuple[Template, frozenset[str]]:
    try:
        tree: nodes.Template = _ENV.parse(source)
    except TemplateError as exc:
        raise TemplateProblem(f"template syntax: {exc}") from exc
    names = frozenset(meta.find_undeclared_variables(tree))
    return _ENV.from_string(source), names


@lru_cache(maxsize=1024)
def _globals(template: Template) -> dict[str, Any]:
    """The template's globals as one plain dict: Jinja merges its chain of them on every
    render otherwise, which cost the planner more than the rendering itself."""
    return dict(template.globals)


def names_in(source: str) -> frozenset[str]:
    """The variables `source` uses (so a caller can compute only those)."""
    return _compile(source)[1]


def check_template(source: str, allowed: frozenset[str] | None = None) -> None:
    """Raise ``TemplateProblem`` when `source` is not a template Tend can render."""
    allowed = frozenset(VARIABLES) if allowed is None else allowed
    _template, names = _compile(source)
    unknown = sorted(names - allowed)
    if unknown:
        known = ", ".join(sorted(allowed))
        raise TemplateProblem(f"undefined variable {unknown[0]!r} (known: {known})")
    render(source, {name: SAMPLE_VALUES[name] for name in allowed if name in SAMPLE_VALUES})


def render(source: str, values: Mapping[str, str]) -> str:
    """The message for `values`; whitespace runs collapse to single spaces."""
    template, _names = _compile(source)
    try:
        # What Template.render does, with the globals merged once per template (Jinja would
        # walk its chain of them twice per render).
        context = Context(
            template.environment, {**_globals(template), **values}, template.name, template.blocks
        )
        text = template.environment.concat(template.root_render_func(context))
    except TemplateError as exc:
        raise TemplateProblem(str(exc)) from exc
    except Exception as exc:  # a template is user code: 1 // 0, '%d' % name, [][0] ...
        raise TemplateProblem(f"{type(exc).__name__}: {exc}") from exc
    return " ".join(text.split())
