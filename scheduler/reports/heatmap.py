"""The history heatmap as an inline SVG, drawn by Tend (no fonts, images or scripts to load):
the couple's page and ``tend streaks --format svg``.

Like a contribution graph: columns are weeks (Monday first), from the week the history
starts to this week, months named along the top. One row per ritual, its title above it.
A ritual that happens at most weekly has one square per week; one that happens more often
stacks a week's occurrences top to bottom in time order, up to 7 high (a daily ritual: Monday
at the top, Sunday at the bottom), in narrower side-by-side squares beyond that (an hourly
ritual), so every occurrence keeps a square of its own.

Every square is a ``<rect>`` with ``data-state`` and ``data-day`` and a ``<title>`` (the
cell's note: the date and what happened), filled with its state's colour AND pattern, so the
states are told apart without colour too: solid for kept by both, a hollow centre for kept by
one, a hatch for a freeze, dots for a pause, an outline for missed, a cross for not sent, a
dashed outline for still open. Every colour has at least 3:1 contrast against white (WCAG
1.4.11, non-text contrast); text is #1f2328 on white. A legend under the rows shows each
state's swatch and label. ``viewBox`` and ``width="100%"`` let it scale down to a 320 px
screen; the page gives the same history as a table for screen readers.

Every text from the ritual file or the ledger (titles, names, deck items) is XML-escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, timedelta
from xml.sax.saxutils import escape, quoteattr

from scheduler.reports.history import LABELS, STATES, RitualHistory, State, months_before

__all__ = ["COLOURS", "heatmap_svg"]

#: Each state's colour (all at least 3:1 against white).
COLOURS: dict[State, str] = {
    "both": "#116329",  # dark green, solid
    "one": "#9a6700",  # amber, hollow centre
    "freeze": "#0550ae",  # blue, white hatch
    "paused": "#57606a",  # grey, white dots
    "missed": "#cf222e",  # red outline, white inside
    "failed": "#8250df",  # purple, white cross
    "open": "#6e7781",  # grey dashed outline
}
_TEXT = "#1f2328"
_PREFIX = "tend-hm"

CELL = 10  # a square's side
PITCH = 12  # a square and its gap
LANES = 7  # at most this many squares stacked in a week column
LEFT = 4
TOP = 40  # the title line and the months' names
LABEL = 16  # a ritual's title line
ROW_GAP = 8
LEGEND_COLUMNS = 3
LEGEND_WIDTH = 190
LEGEND_LINE = 18
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _patterns() -> str:
    """One ``<pattern>`` per state, in the square's own units (0..1), so it fits a square of
    any size."""
    marks: dict[State, str] = {
        "both": "",
        "one": '<rect x="0.3" y="0.3" width="0.4" height="0.4" fill="#fff"/>',
        "freeze": (
            '<path d="M0,0.5 L0.5,0 M0,1 L1,0 M0.5,1 L1,0.5" stroke="#fff" stroke-width="0.12"/>'
        ),
        "paused": (
            '<circle cx="0.3" cy="0.3" r="0.12" fill="#fff"/>'
            '<circle cx="0.7" cy="0.7" r="0.12" fill="#fff"/>'
        ),
        "missed": "",
        "failed": '<path d="M0.2,0.2 L0.8,0.8 M0.8,0.2 L0.2,0.8" stroke="#fff" '
        'stroke-width="0.16"/>',
        "open": "",
    }
    parts = []
    for state in STATES:
        ground = "#fff" if state in ("missed", "open") else COLOURS[state]
        parts.append(
            f'<pattern id="{_PREFIX}-{state}" patternUnits="objectBoundingBox" '
            f'patternContentUnits="objectBoundingBox" width="1" height="1">'
            f'<rect width="1" height="1" fill="{ground}"/>{marks[state]}</pattern>'
        )
    return "".join(parts)


def _square(state: State, x: float, y: float, size: float, extra: str = "") -> str:
    """A square's ``<rect ...`` opening (the caller closes it): its pattern, and an outline
    for those drawn as one."""
    stroke = ""
    if state == "missed":
        stroke = f' stroke="{COLOURS[state]}" stroke-width="1.5"'
    elif state == "open":
        stroke = f' stroke="{COLOURS[state]}" stroke-width="1.5" stroke-dasharray="2 1.5"'
    if stroke:  # the outline drawn inside the square's bounds
        x, y, size = x + 0.75, y + 0.75, size - 1.5
    return (
        f'<rect x="{x:g}" y="{y:g}" width="{size:g}" height="{size:g}" '
        f'fill="url(#{_PREFIX}-{state})"{stroke}{extra}'
    )


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def heatmap_svg(history: Sequence[RitualHistory], *, today: date, title: str = "History") -> str:
    """The heatmap of `history` (rows as :func:`~scheduler.reports.history.household_history`
    gives them) up to `today`, as one ``<svg>`` element."""
    first = months_before(today, 12)
    for row in history:
        if row.cells:
            first = min(first, row.cells[0].day)
    start = _monday(first)
    weeks = (_monday(today) - start).days // 7 + 1
    width = LEFT * 2 + weeks * PITCH
    body: list[str] = []
    # The months' names, over the week their first day falls in.
    month = date(first.year, first.month, 1)
    while month <= today:
        if month >= start:
            x = LEFT + (month - start).days // 7 * PITCH
            body.append(
                f'<text x="{x}" y="{TOP - 6}" font-size="9" fill="{_TEXT}">'
                f"{_MONTHS[month.month - 1]}</text>"
            )
        month = date(month.year + month.month // 12, month.month % 12 + 1, 1)
    y = TOP
    for row in history:
        body.append(
            f'<text x="{LEFT}" y="{y + LABEL - 4}" font-size="11" font-weight="bold" '
            f'fill="{_TEXT}">{escape(row.title)}</text>'
        )
        y += LABEL
        per_week: dict[int, int] = {}
        placed: list[tuple[int, int]] = []
        for cell in row.cells:
            week = (cell.day - start).days // 7
            index = per_week.get(week, 0)
            per_week[week] = index + 1
            placed.append((week, index))
        busiest = max(per_week.values(), default=1)
        lanes = min(busiest, LANES)
        across = math.ceil(busiest / lanes)
        size = (PITCH / across) - (PITCH - CELL) / across
        body.append(f"<g data-ritual={quoteattr(row.ritual)} aria-label={quoteattr(row.title)}>")
        for cell, (week, index) in zip(row.cells, placed, strict=True):
            left = LEFT + week * PITCH + (index // lanes) * (PITCH / across)
            top = y + (index % lanes) * PITCH
            extra = f' data-state="{cell.state}" data-day="{cell.day.isoformat()}"'
            body.append(
                f"{_square(cell.state, left, top, size, extra)}><title>{escape(cell.note)}</title>"
                "</rect>"
            )
        body.append("</g>")
        y += lanes * PITCH + ROW_GAP
    if not history:
        body.append(
            f'<text x="{LEFT}" y="{y + 12}" font-size="11" fill="{_TEXT}">No rituals yet.</text>'
        )
        y += 20
    # The legend: each state's swatch and label.
    columns = max(1, min(LEGEND_COLUMNS, width // LEGEND_WIDTH))
    body.append('<g class="legend">')
    for number, state in enumerate(STATES):
        x = LEFT + (number % columns) * LEGEND_WIDTH
        top = y + (number // columns) * LEGEND_LINE
        swatch = _square(state, x, top, CELL, f' data-legend="{state}"')
        body.append(
            f"{swatch}/>"
            f'<text x="{x + CELL + 5}" y="{top + CELL - 1}" font-size="10" fill="{_TEXT}">'
            f"{escape(LABELS[state])}</text>"
        )
    body.append("</g>")
    height = y + math.ceil(len(STATES) / columns) * LEGEND_LINE + 4
    width = max(width, LEFT * 2 + columns * LEGEND_WIDTH)
    heading = escape(title)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" '
        f'aria-labelledby="{_PREFIX}-title" viewBox="0 0 {width} {height}" width="100%" '
        f'preserveAspectRatio="xMinYMin meet" font-family="sans-serif">'
        f'<title id="{_PREFIX}-title">{heading}</title>'
        f"<defs>{_patterns()}</defs>"
        f'<text x="{LEFT}" y="14" font-size="12" font-weight="bold" fill="{_TEXT}">'
        f"{heading}</text>" + "".join(body) + "</svg>"
    )
