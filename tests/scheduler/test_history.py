"""The history heatmap (:mod:`scheduler.reports.history`, :mod:`scheduler.reports.heatmap`)
on both databases, from a ledger the planner filled and replies changed.

Alex and Sam are the June couple (New York). Their Sunday check-in from 7 June 2026 goes
through every state: both confirm, one confirms, Sam skips with June's freeze, Alex skips
with none left, nobody answers, a pause covers it, its messages fail, and the last one is
still open on Monday 27 July.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date, datetime

import pytest
from june_couple import ALEX, SAM, Replies, ny, plan, rituals, send_due
from sqlalchemy import Engine, update

from config.model import RitualFile
from rituals.streaks import Outcome
from scheduler.ledger import Records
from scheduler.ledger.rows import DeliveryRow, OccurrenceRow
from scheduler.reports.heatmap import heatmap_svg
from scheduler.reports.history import (
    LABELS,
    STATES,
    Cell,
    RitualHistory,
    day_text,
    household_history,
    months_before,
)
from scheduler.reports.streaks import household_streaks

NOW = ny(7, 27, 8)  # Monday 27 July 2026, 08:00 in New York
SVG = "{http://www.w3.org/2000/svg}"

CHECK_INS = [
    (date(2026, 6, 7), "both", "Sun 7 Jun 2026: kept by Alex and Sam"),
    (date(2026, 6, 14), "one", "Sun 14 Jun 2026: kept by Alex"),
    (date(2026, 6, 21), "freeze", "Sun 21 Jun 2026: skipped by Sam with a freeze"),
    (date(2026, 6, 28), "missed", "Sun 28 Jun 2026: skipped by Alex, no freeze left: missed"),
    (date(2026, 7, 5), "missed", "Sun 5 Jul 2026: missed"),
    (date(2026, 7, 12), "paused", "Sun 12 Jul 2026: paused"),
    (date(2026, 7, 19), "failed", "Sun 19 Jul 2026: not sent (Tend's fault)"),
    (date(2026, 7, 26), "open", "Sun 26 Jul 2026: still open"),
]


def fail_deliveries(engine: Engine, ritual: str, slot: datetime) -> None:
    """What a dispatcher that could not reach the provider leaves: every message about the
    occurrence failed (a permanent error), none sent."""
    with engine.begin() as connection:
        ids = connection.execute(
            OccurrenceRow.__table__.select()
            .with_only_columns(OccurrenceRow.id)
            .where(OccurrenceRow.ritual_id == ritual, OccurrenceRow.slot == slot)
        ).scalars()
        connection.execute(
            update(DeliveryRow)
            .where(DeliveryRow.occurrence_id.in_(list(ids)))
            .values(status="failed", last_error="21610: unsubscribed")
        )


def seeded(engine: Engine, text: str | None = None) -> RitualFile:
    """The couple's eight Sundays, as the module's docstring tells them."""
    file = plan(engine, text or rituals(), days=60)
    reply = Replies(engine, file)

    def sunday(month: int, day: int, *texts: tuple[str, str]) -> None:
        moment = ny(month, day, 19, 45)
        send_due(engine, moment)
        for sender, body in texts:
            reply(sender, body, moment)

    sunday(6, 7, (ALEX, "DONE"), (SAM, "DONE"))
    sunday(6, 14, (ALEX, "DONE"))
    sunday(6, 21, (SAM, "SKIP"))
    sunday(6, 28, (ALEX, "SKIP"))
    sunday(7, 5)
    send_due(engine, ny(7, 10, 9))
    assert reply(ALEX, "PAUSE 1w", ny(7, 10, 9)).text.startswith("Paused until")
    sunday(7, 12)
    fail_deliveries(engine, "check-in", datetime(2026, 7, 19, 19, 30))
    sunday(7, 19)
    sunday(7, 26)
    send_due(engine, NOW)
    return file


def history_of(engine: Engine, file: RitualFile, **options: str) -> tuple[RitualHistory, ...]:
    with engine.begin() as connection:
        return household_history(Records(connection), file, "alex-sam", NOW, **options)


def test_each_cell_says_what_became_of_the_occurrence_in_every_state(engine: Engine) -> None:
    file = seeded(engine)

    found = {r.title: r for r in history_of(engine, file)}

    assert list(found) == ["check in", "date night", "appreciation (Alex)", "appreciation (Sam)"]
    check_in = found["check in"]
    assert (check_in.ritual, check_in.weekly, check_in.recipient) == ("check-in", True, None)
    assert [(c.day, c.state) for c in check_in.cells] == [(d, s) for d, s, _ in CHECK_INS]
    for cell, (_, _, note) in zip(check_in.cells, CHECK_INS, strict=True):
        assert cell.note.startswith(note), cell.note
    assert {c.state for c in check_in.cells} == set(STATES)
    assert found["appreciation (Alex)"].recipient == "alex"


def test_the_picture_agrees_with_the_streaks(engine: Engine) -> None:
    """Every occurrence streaks judge has the cell its outcome says."""
    file = seeded(engine)
    expected = {
        Outcome.KEPT: {"both", "one"},
        Outcome.FROZEN: {"freeze"},
        Outcome.PAUSED: {"paused"},
        Outcome.UNSENT: {"failed", "open"},
        Outcome.OPEN: {"open"},
        Outcome.SKIPPED: {"missed"},
        Outcome.MISSED: {"missed"},
    }
    history = history_of(engine, file)
    with engine.begin() as connection:
        streaks = household_streaks(Records(connection), file, "alex-sam", NOW, save=False)

    assert [(s.ritual.id, s.recipient) for s in streaks] == [
        (r.ritual, r.recipient if r.ritual == "appreciation" else None) for r in history
    ]
    for series, row in zip(streaks, history, strict=True):
        assert len(series.judged) == len(row.cells), row.title
        for (_, outcome), cell in zip(series.judged, row.cells, strict=True):
            assert cell.state in expected[outcome], (row.title, cell)


def test_a_partner_sees_the_shared_rituals_and_only_their_own_nudges(engine: Engine) -> None:
    file = seeded(engine)

    alex = history_of(engine, file, partner="alex")
    sam = history_of(engine, file, partner="sam")

    assert [(r.ritual, r.title, r.recipient) for r in alex] == [
        ("check-in", "check in", None),
        ("date-night", "date night", None),
        ("appreciation", "appreciation", "alex"),
    ]
    assert [r.recipient for r in sam] == [None, None, "sam"]
    assert alex[0].cells == sam[0].cells
    assert history_of(engine, file, partner="kim") == ()


def test_a_ritual_sent_to_one_partner_alone_is_theirs(engine: Engine) -> None:
    text = (
        rituals()
        + '\n[[rituals]]\nid = "note"\nkind = "custom"\nmessage = "A note for you."\n'
        + 'schedule = "daily at 12:00"\nto = "sam"\n'
    )
    file = seeded(engine, text)

    alex = [r.ritual for r in history_of(engine, file, partner="alex")]
    sam = {r.ritual: r for r in history_of(engine, file, partner="sam")}

    assert "note" not in alex
    assert sam["note"].recipient == "sam"
    assert sam["note"].weekly is False
    # A daily ritual: one cell per day, each note with its time.
    assert len(sam["note"].cells) == (date(2026, 7, 26) - date(2026, 6, 1)).days + 1
    assert sam["note"].cells[0].note.startswith("Mon 1 Jun 2026 12:00: ")


def test_the_history_reaches_back_months_and_no_further(engine: Engine) -> None:
    file = seeded(engine)
    with engine.begin() as connection:
        found = household_history(Records(connection), file, "alex-sam", NOW, months=1)

    assert [c.day for c in found[0].cells] == [d for d, _, _ in CHECK_INS if d >= date(2026, 6, 27)]


@pytest.mark.parametrize(
    ("day", "months", "start"),
    [
        (date(2026, 7, 27), 12, date(2025, 7, 27)),
        (date(2026, 3, 31), 1, date(2026, 2, 28)),
        (date(2026, 1, 15), 13, date(2024, 12, 15)),
    ],
)
def test_months_before(day: date, months: int, start: date) -> None:
    assert months_before(day, months) == start


def test_day_text_is_the_same_in_every_locale() -> None:
    assert day_text(date(2026, 12, 12)) == "Sat 12 Dec 2026"


# --------------------------------------------------------------------------------- the SVG


def rects(svg: str) -> list[ET.Element]:
    return [r for r in ET.fromstring(svg).iter(f"{SVG}rect") if r.get("data-state")]


def test_the_svg_has_a_square_per_cell_with_its_state_day_and_tooltip(engine: Engine) -> None:
    file = seeded(engine)
    history = history_of(engine, file)

    svg = heatmap_svg(history, today=date(2026, 7, 27), title="Alex and Sam")

    root = ET.fromstring(svg)
    assert root.get("role") == "img"
    assert root.get("width") == "100%"
    assert root.get("viewBox", "").startswith("0 0 ")
    title = root.find(f"{SVG}title")
    assert title is not None
    assert title.text == "Alex and Sam"
    assert root.get("aria-labelledby") == title.get("id")
    squares = rects(svg)
    assert len(squares) == sum(len(r.cells) for r in history)
    check_in = squares[: len(CHECK_INS)]
    assert [(r.get("data-day"), r.get("data-state")) for r in check_in] == [
        (d.isoformat(), s) for d, s, _ in CHECK_INS
    ]
    for square, cell in zip(squares, [c for r in history for c in r.cells], strict=True):
        tooltip = square.find(f"{SVG}title")
        assert tooltip is not None
        assert tooltip.text == cell.note
        assert square.get("fill") == f"url(#tend-hm-{cell.state})"
    # Nothing to load: no image, script, link or font.
    assert "<script" not in svg
    assert "href" not in svg
    assert "@import" not in svg


def test_the_legend_shows_every_state_with_its_own_pattern() -> None:
    svg = heatmap_svg([], today=date(2026, 7, 27))

    root = ET.fromstring(svg)
    legend = [r.get("data-legend") for r in root.iter(f"{SVG}rect") if r.get("data-legend")]
    assert legend == list(STATES)
    texts = [t.text for t in root.iter(f"{SVG}text")]
    for state in STATES:
        assert LABELS[state] in texts
    patterns = {p.get("id"): ET.tostring(p) for p in root.iter(f"{SVG}pattern")}
    assert set(patterns) == {f"tend-hm-{s}" for s in STATES}
    # Missed and still open differ by their outline; every other state by its pattern.
    filled = [patterns[f"tend-hm-{s}"] for s in STATES if s not in ("missed", "open")]
    assert len(set(filled)) == len(filled)


def test_titles_names_and_deck_items_are_escaped(engine: Engine) -> None:
    text = (
        rituals()
        .replace('name = "Sam"', 'name = "<b>Sam</b>"')
        .replace(
            'id = "check-in"\n',
            'id = "check-in"\ntitle = "<script>alert(1)</script>"\ndeck = "mine"\n',
        )
        + '\n[decks.mine]\nitems = ["<img src=x onerror=alert(1)> & more"]\n'
    )
    file = seeded(engine, text)
    history = history_of(engine, file)
    assert history[0].title == "<script>alert(1)</script>"
    assert history[0].cells[0].note == (
        "Sun 7 Jun 2026: kept by <b>Sam</b> and Alex (<img src=x onerror=alert(1)> & more)"
    )

    svg = heatmap_svg(history, today=date(2026, 7, 27), title="<i>us</i>")

    root = ET.fromstring(svg)  # well-formed: nothing got through as markup
    assert "<script>" not in svg
    assert "<img" not in svg
    assert "<b>" not in svg
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in svg
    assert "<script>alert(1)</script>" in [t.text for t in root.iter(f"{SVG}text")]
    assert not list(root.iter(f"{SVG}script"))
    assert not list(root.iter(f"{SVG}img"))


def test_a_busy_ritual_stacks_its_week_in_squares_that_keep_inside_the_week() -> None:
    """Three a day (21 a week): three narrower columns of 7 within the week's column."""
    cells = tuple(Cell(date(2026, 7, 20 + i // 3), "both", f"cell {i}") for i in range(21))
    svg = heatmap_svg(
        [RitualHistory("r", "often", False, cells)], today=date(2026, 7, 27), title="t"
    )

    squares = rects(svg)
    assert len(squares) == 21
    xs = sorted({float(r.get("x", "0")) for r in squares})
    ys = sorted({float(r.get("y", "0")) for r in squares})
    assert (len(xs), len(ys)) == (3, 7)
    assert max(xs) + float(squares[0].get("width", "0")) <= min(xs) + 12
