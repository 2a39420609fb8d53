"""Topics in the ledger, on SQLite and PostgreSQL: each occurrence of a ritual that rotates
a list of decks records the deck its item came from (occurrence.deck, migration 0007); what
is sent is what ``tend plan`` previewed; the calendar feed names the topic; and a ledger
planned before topics gets its decks filled in once, with nothing else changed.

The June couple (New York): a "money-and-plans" check-in every Sunday at 18:00, from
Sunday 7 June 2026.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from fake_notifiers import FakeClock, FakeSms, MakeDispatcher
from icalendar import Calendar
from june_couple import COUPLE, HOUSEHOLD, START, ny, plan
from ritual_files import ritual_file
from sqlalchemy import Engine, select, text, update

from notifiers.base import Message, SendResult
from rituals import planning as planning_module
from rituals.decks import topic_title
from rituals.planning import Plan
from scheduler.ledger import Ledger
from scheduler.ledger.rows import DeliveryRow, OccurrenceRow
from scheduler.ledger.schema import downgrade, upgrade
from scheduler.reports.calendar import household_calendar

TOPICS = ("finances", "family-life", "relationship-goals")
MONEY_AND_PLANS = """
[[rituals]]
id = "money-and-plans"
kind = "check_in"
schedule = "weekly on sun at 18:00"
deck = ["finances", "family-life", "relationship-goals"]
message = "This week: {{ topic }}. {{ item }} Reply DONE when you've talked."
"""
TEXT = COUPLE + MONEY_AND_PLANS


class BodySms(FakeSms):
    """The fake SMS provider, keeping each body it was given, by delivery key."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.bodies: dict[str, str] = {}

    def _send(self, message: Message) -> SendResult:
        result = super()._send(message)
        self.bodies[message.key] = message.body
        return result


def occurrences(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(OccurrenceRow.slot, OccurrenceRow.item, OccurrenceRow.deck)
            .where(OccurrenceRow.ritual_id == "money-and-plans")
            .order_by(OccurrenceRow.slot)
        ).mappings()
        return [dict(row) for row in rows]


def previewed(text_: str) -> list[dict[str, Any]]:
    file = ritual_file(text_, START)
    preview = Plan(file)
    [ritual] = [r for r in file.rituals if r.id == "money-and-plans"]
    found = preview.occurrences(HOUSEHOLD, ritual, date(2026, 5, 25), date(2026, 7, 6))
    return [{"slot": o.slot, "item": o.item, "deck": o.deck} for o in found]


def test_each_occurrence_records_the_deck_its_item_came_from_as_the_preview_draws_it(
    engine: Engine,
) -> None:
    plan(engine, TEXT, days=28)

    recorded = occurrences(engine)
    assert [row["slot"].date() for row in recorded] == [date(2026, 6, 7 + 7 * n) for n in range(4)]
    expected = {row["slot"]: row for row in previewed(TEXT)}
    assert recorded == [expected[row["slot"]] for row in recorded]
    decks = [row["deck"] for row in recorded]
    assert set(decks) == set(TOPICS)  # three topics in four weeks: each came
    assert decks[3] == decks[0]  # and the first came back in the fourth week
    assert decks[:3] != decks[1:4]


def test_what_is_sent_on_the_day_is_what_tend_plan_previewed(
    engine: Engine, clock: FakeClock, make_dispatcher: MakeDispatcher
) -> None:
    file = plan(engine, TEXT, days=14)
    sms = BodySms(clock)
    dispatcher = make_dispatcher(engine, sms=sms)

    clock.set(ny(6, 7, 18, 1))
    dispatcher.run_until_idle()

    preview = {
        d.partner: d.text
        for d in Plan(file).deliveries_between(date(2026, 6, 7), 1)
        if d.occurrence.ritual == "money-and-plans"
    }
    [row] = [r for r in occurrences(engine) if r["slot"].date() == date(2026, 6, 7)]
    topic = topic_title(row["deck"])
    said = f"This week: {topic}. {row['item']} Reply DONE when you've talked."
    assert preview == dict.fromkeys(("alex", "sam"), said)
    with engine.connect() as connection:
        sent = connection.execute(
            select(DeliveryRow.partner_key, DeliveryRow.body, DeliveryRow.status)
            .join(OccurrenceRow, OccurrenceRow.id == DeliveryRow.occurrence_id)
            .where(OccurrenceRow.ritual_id == "money-and-plans", DeliveryRow.status == "sent")
        ).all()
    assert {r.partner_key: r.body for r in sent} == preview
    assert sorted(sms.bodies.values()) == sorted(preview.values())


def test_the_calendar_feed_names_each_occurrences_topic_before_its_idea(engine: Engine) -> None:
    plan(engine, TEXT, days=28)

    body = household_calendar(Ledger(engine), HOUSEHOLD, START + timedelta(days=1))

    assert body is not None
    events = [e for e in Calendar.from_ical(body).walk("VEVENT") if "Money" in str(e["summary"])]
    by_start = {e.decoded("dtstart").date(): str(e["description"]) for e in events}
    for row in occurrences(engine):
        assert by_start[row["slot"].date()] == (
            f"Topic: {topic_title(row['deck'])}\nIdea: {row['item']}"
        )


def test_a_release_with_topics_fills_in_the_decks_of_a_ledger_planned_before_them(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The ledger as the release before planned it: the same items, no deck recorded.
    single = COUPLE + MONEY_AND_PLANS.replace(
        'deck = ["finances", "family-life", "relationship-goals"]', 'deck = "finances"'
    ).replace("{{ topic }}", "Money")
    with monkeypatch.context() as patch:
        patch.setattr(planning_module, "PLANNING_RULES", planning_module.PLANNING_RULES - 1)
        plan(engine, single, days=14)
    with engine.begin() as connection:
        connection.execute(update(OccurrenceRow).values(deck=None))
        bodies_before = dict(
            connection.execute(select(DeliveryRow.id, DeliveryRow.body)).tuples().all()
        )
    before = occurrences(engine)
    assert before and all(row["deck"] is None for row in before)

    plan(engine, single, now=START + timedelta(minutes=5), days=14)

    after = occurrences(engine)
    assert [(r["slot"], r["item"]) for r in after] == [(r["slot"], r["item"]) for r in before]
    assert {r["deck"] for r in after} == {"finances"}
    with engine.connect() as connection:
        bodies_after = dict(
            connection.execute(select(DeliveryRow.id, DeliveryRow.body)).tuples().all()
        )
    assert bodies_after == bodies_before


def test_going_back_to_0006_drops_the_deck_and_keeps_the_occurrences(engine: Engine) -> None:
    plan(engine, TEXT, days=14)
    with engine.connect() as connection:
        deliveries = connection.execute(text("SELECT count(*) FROM delivery")).scalar()
    count = len(occurrences(engine))

    downgrade(engine, "0006")
    with engine.connect() as connection:
        columns = connection.execute(text("SELECT * FROM occurrence")).keys()
        assert "deck" not in columns
        assert "item" in columns
        assert connection.execute(text("SELECT count(*) FROM occurrence")).scalar() == count
        assert connection.execute(text("SELECT count(*) FROM delivery")).scalar() == deliveries

    upgrade(engine)
    assert [row["deck"] for row in occurrences(engine)] == [None] * count
    with engine.begin() as connection:  # and the column takes a deck again
        connection.execute(
            update(OccurrenceRow)
            .where(OccurrenceRow.ritual_id == "money-and-plans")
            .values(deck="feelings")
        )
    assert {row["deck"] for row in occurrences(engine)} == {"feelings"}


def test_a_deck_name_longer_than_any_column_width_is_recorded_whole(engine: Engine) -> None:
    # A file's own deck may have any name TOML allows: the column is text, not a short string.
    name = "our-" + "very-" * 60 + "long-deck"
    text_ = (
        COUPLE
        + MONEY_AND_PLANS.replace(
            'deck = ["finances", "family-life", "relationship-goals"]',
            f'deck = ["finances", "{name}"]',
        )
        + f'\n[decks.{name}]\nitems = ["What is one thing you want to say today?"]\n'
    )
    plan(engine, text_, days=14)
    assert name in {row["deck"] for row in occurrences(engine)}
