"""Message templates: Jinja2, sandboxed, strict about unknown variables, bounded in cost."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from functools import lru_cache, wraps
from string import Formatter
from time import monotonic
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateError, meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

__all__ = [
    "DEFAULT_MESSAGES",
    "EMAIL_MESSAGES",
    "MAX_OUTPUT",
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
    "topic": "the deck the item comes from, by name: 'family-life' is 'Family life'",
    "ritual": "the ritual's title, e.g. 'date night'",
    "household": "the household id",
    "channel": "how this message goes: 'sms', 'email' or 'console' (e-mail replies are not read)",
}

SAMPLE_VALUES: Mapping[str, str] = {
    "partner": "Alex",
    "partners": "Alex and Sam",
    "planner": "Sam",
    "when": "Fri 4 Dec at 19:00",
    "time": "19:00",
    "date": "Fri 4 Dec",
    "item": "Cook a recipe from a cuisine neither of you has tried",
    "topic": "Date ideas",
    "ritual": "date night",
    "household": "alex-sam",
    "channel": "sms",
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


#: The built-in messages as e-mails say them, where the text asks for a reply: nobody reads
#: the replies to an e-mail, which carries a confirm link ("Done it? Confirm here: ...")
#: instead, added by the e-mail notifier under the text.
EMAIL_MESSAGES: Mapping[str, Mapping[str, str]] = {
    "day_of": {
        "date_night": "Date night {{ when }}! Planner: {{ planner }}. Idea: {{ item }}.",
        "check_in": (
            "Check-in time, {{ partner }}. Open with one thing you appreciated this week, "
            "then: {{ item }}"
        ),
        "custom": "Time for {{ ritual }}, {{ partner }}.",
    },
    "reminder": {
        "date_night": "Did date night happen?",
        "check_in": "Did you two get to your check-in?",
        "custom": "Still on for {{ ritual }}?",
    },
}


def default_message(role: str, kind: str, channel: str = "sms") -> str:
    """The built-in message of a role and kind, worded for `channel`: a text (and the
    console, answered with ``tend reply``) asks for a reply; an e-mail does not."""
    role = "day_of" if role == "nudge" else role
    by_kind = DEFAULT_MESSAGES[role]
    source = by_kind.get(kind, by_kind["custom"])
    by_email = EMAIL_MESSAGES.get(role, {}) if channel == "email" else {}
    if kind in by_kind:
        return by_email.get(kind, source)
    return by_email.get("custom", source)


#: What one rendering may cost. A template is user code that runs in the worker for every
#: delivery it plans, so its cost is bounded in every dimension: with no loop or call able to
#: run more than MAX_STEPS times and no value larger than MAX_VALUE, a rendering is at most
#: milliseconds; MAX_SECONDS is the backstop behind that, not the first defence.
MAX_SOURCE = 10_000  # characters of a template
MAX_VALUE = 10_000  # characters (or items) of any value a template builds
MAX_OUTPUT = 100_000  # characters of a rendered message: the e-mail notifier's own limit
MAX_STEPS = 1_000  # loop iterations, calls and filters in one rendering
MAX_SECONDS = 0.5  # wall-clock time of one rendering
MAX_INT_BITS = 4_096  # an integer a template computes (2 ** 4096 has 1,234 digits)


class _Budget:
    """What is left of one rendering's steps and time."""

    __slots__ = ("deadline", "steps")

    def __init__(self) -> None:
        self.steps = MAX_STEPS
        self.deadline = monotonic() + MAX_SECONDS

    def tick(self) -> None:
        self.steps -= 1
        if self.steps < 0:
            raise SecurityError(
                f"too much work for a message: over {MAX_STEPS} loop steps and calls"
            )
        if monotonic() > self.deadline:
            raise SecurityError(f"too slow for a message: over {MAX_SECONDS:g} s to render")


_BUDGET: ContextVar[_Budget | None] = ContextVar("tend_template_budget", default=None)


def _tick() -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.tick()


def _too_large(what: str) -> SecurityError:
    return SecurityError(f"{what} too large for a message (over {MAX_VALUE:,} characters)")


def _capped(value: Any) -> Any:
    """`value`, unless it is larger than a message may build; an iterator is counted as it
    is consumed."""
    if isinstance(value, str | list | tuple | dict | set | frozenset):
        if len(value) > MAX_VALUE:
            raise _too_large("a value")
    elif isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > MAX_INT_BITS:
            raise SecurityError("a number too large for a message")
    elif isinstance(value, Iterator):
        return _counted(value)
    return value


def _counted(items: Iterable[Any]) -> Iterator[Any]:
    """`items`, one step of the budget each (loops, and lazy filters such as ``map``)."""
    for n, item in enumerate(items):
        if n >= MAX_VALUE:
            raise _too_large("a sequence")
        _tick()
        yield item


_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_format(text: str, percent: bool) -> None:
    """Refuse a format string whose widths or precisions would build a huge value
    ('%0999999999d', '{:>999999999}'), before it builds it."""
    if percent:
        numbers = [n for match in _PERCENT_SPEC.finditer(text) for n in match.groups() if n]
    else:
        try:
            specs = [spec or "" for _, _, spec, _ in Formatter().parse(text)]
        except ValueError:
            return  # not a format string: str.format says so itself
        if any("{" in spec for spec in specs):
            raise SecurityError("nested format fields are not allowed in a message")
        numbers = [n for spec in specs for n in re.findall(r"\d+", spec)]
    for number in numbers:
        if number == "*" or int(number) > MAX_VALUE:
            raise _too_large("a formatted field")


def _check_arguments(args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
    """Numbers passed to a filter or method are sizes more often than not (``center``,
    ``indent``, ``ljust``, ``zfill``): none may ask for more than a message may build."""
    for value in (*args, *kwargs.values()):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_VALUE:
            raise SecurityError(
                f"the number {value} is too large for a message (at most {MAX_VALUE:,})"
            )


def _bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    # A filter is called as f([context | environment,] value, *arguments).
    skip = 2 if getattr(function, "jinja_pass_arg", None) is not None else 1

    @wraps(function)  # keeps jinja_pass_arg, so Jinja passes the context as before
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _tick()
        _check_arguments(args[skip:], kwargs)
        if name == "format" and len(args) >= skip and isinstance(args[skip - 1], str):
            _check_format(args[skip - 1], percent=True)
        return _capped(function(*args, **kwargs))

    return bounded


class _Bounds(NodeTransformer):
    """Rewrites a parsed template so that its loops count against the budget and the
    strings it joins are capped (``~`` is not an operator the sandbox can intercept)."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        if node.recursive:
            raise TemplateProblem("recursive loops are not allowed in a message")
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, "_counted", [], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Filter(node, "_capped", [], [], None, None, lineno=node.lineno)


class _MessageEnvironment(ImmutableSandboxedEnvironment):
    """No mutation, no attribute tricks, and nothing that builds huge values or runs long:
    every operator, call, filter and loop is checked against the limits above."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=False)
        # lipsum(10**8) would write a book; the rest of Jinja's globals are harmless.
        self.globals.pop("lipsum", None)
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}
        self.filters["_counted"] = _counted
        self.filters["_capped"] = _capped

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > 64:
            raise SecurityError("exponent too large for a message")
        if operator == "*" and any(isinstance(v, str | list | tuple) for v in (left, right)):
            count = right if isinstance(right, int) else left
            sequence = left if isinstance(right, int) else right
            if isinstance(count, int) and count > 16:
                raise SecurityError("repetition too large for a message")
            if isinstance(count, int) and len(sequence) * count > MAX_VALUE:
                raise _too_large("a repeated value")
        if isinstance(left, int) and isinstance(right, int):
            bits = left.bit_length() * abs(right) if operator == "**" else 0
            if operator == "*":
                bits = left.bit_length() + right.bit_length()
            if bits > MAX_INT_BITS:
                raise SecurityError("a number too large for a message")
        if operator == "%" and isinstance(left, str):
            _check_format(left, percent=True)
        return _capped(super().call_binop(context, operator, left, right))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _tick()
        _check_arguments(args, kwargs)
        return _capped(super().call(__context, __obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            _check_format(value.__self__, percent=False)
        return wrapped

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        bounded = _Bounds().visit(tree)
        assert isinstance(bounded, nodes.Template)
        return bounded


_ENV = _MessageEnvironment()


class TemplateProblem(ValueError):
    """A template that cannot render; the message names the variable or the syntax error."""


@lru_cache(maxsize=1024)
def _compile(source: str) -> tuple[Template, frozenset[str]]:
    if len(source) > MAX_SOURCE:
        raise TemplateProblem(f"a template is at most {MAX_SOURCE:,} characters")
    try:
        tree: nodes.Template = _ENV.parse(source)
        template = _ENV.from_string(tree)
    except TemplateProblem:
        raise
    except TemplateError as exc:
        raise TemplateProblem(f"template syntax: {exc}") from exc
    except Exception as exc:  # RecursionError for "((((...", and what else a parser may raise
        raise TemplateProblem(f"template syntax: {type(exc).__name__}: {exc}") from exc
    return template, frozenset(meta.find_undeclared_variables(tree))


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
    token = _BUDGET.set(_Budget())
    try:
        # What Template.render does, with the globals merged once per template (Jinja would
        # walk its chain of them twice per render), and the output counted as it is written.
        context = Context(
            template.environment, {**_globals(template), **values}, template.name, template.blocks
        )
        parts: list[str] = []
        size = 0
        for part in template.root_render_func(context):
            size += len(part)
            if size > MAX_OUTPUT:
                raise TemplateProblem(f"the message is longer than {MAX_OUTPUT:,} characters")
            parts.append(part)
        text = "".join(parts)
    except TemplateProblem:
        raise
    except TemplateError as exc:
        raise TemplateProblem(str(exc)) from exc
    except Exception as exc:  # a template is user code: 1 // 0, '%d' % name, [][0] ...
        raise TemplateProblem(f"{type(exc).__name__}: {exc}") from exc
    finally:
        _BUDGET.reset(token)
    return " ".join(text.split())
