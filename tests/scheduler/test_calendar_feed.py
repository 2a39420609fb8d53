"""A household's calendar read from the ledger (:func:`household_calendar`), on both
databases: what became of each occurrence as its STATUS, the window from sixty days back,
the bound on how many events one feed holds, the shared feed against each partner's, and UIDs
equal to ``tend plan --format ics``'s (:func:`plan_calendar`). The web route around it is
tests/tend/test_calendar.py's.

Alex and Sam live in Berlin (UTC+1 in January); the check-in is daily at 12:00 and each
partner's kind words daily at 18:00. It is Monday 12 January 2026, 09:00 UTC; the next days
are planned, Monday to Wednesday.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from icalendar import Calendar
from january_couple import ALEX, CHECK_IN, SAM, at, plan
from ritual_files import couple_file, household_table, partner_table, ritual_file
from sqlalchemy import Engine, insert, update

from rituals.planning import Plan
from scheduler.ledger import Ledger
from scheduler.ledger.rows import OccurrenceRow
from scheduler.reports import calendar
from scheduler.reports.calendar import DAYS_BACK, household_calendar, plan_calendar

TEXT = couple_file(
    ALEX,
    SAM,
    timezone="Europe/Berlin",
    households=household_table("kim-lee", partner_table("kim", email=True)),
    rituals=CHECK_IN
    + """
[[rituals]]
id = "kind-words"
kind = "appreciation"
schedule = "daily at 18:00"
to = "each"
households = ["alex-sam"]
""",
)
NOW = at(9)


def feed(
    engine: Engine,
    household: str = "alex-sam",
    now: datetime = NOW,
    *,
    partner: str | None = None,
    addressed: dict[str, str] | None = None,
) -> dict[str, str]:
    """The feed's events (the shared one, or `partner`'s): UID -> STATUS."""
    body = household_calendar(Ledger(engine), household, now, partner=partner, addressed=addressed)
    assert body is not None
    return {str(e["uid"]): str(e["status"]) for e in Calendar.from_ical(body).walk("VEVENT")}


def set_status(engine: Engine, slot: datetime, status: str, ritual: str = "check-in") -> None:
    with engine.begin() as connection:
        connection.execute(
            update(OccurrenceRow)
            .where(
                OccurrenceRow.household_id == "alex-sam",
                OccurrenceRow.ritual_id == ritual,
                OccurrenceRow.slot == slot,
            )
            .values(status=status)
        )


def add_occurrence(engine: Engine, at: datetime) -> None:
    """An old check-in of alex-sam at the instant `at` (its slot as written in UTC)."""
    with engine.begin() as connection:
        connection.execute(
            insert(OccurrenceRow).values(
                household_id="alex-sam",
                ritual_id="old",
                slot=at.replace(tzinfo=None),
                recipient="",
                kind="check_in",
                at=at,
                status="confirmed",
                created_at=at,
                updated_at=at,
            )
        )


@pytest.fixture
def planned(engine: Engine) -> Engine:
    plan(engine, TEXT, NOW)
    return engine


def test_each_occurrence_shows_what_became_of_it_and_a_cancelled_one_is_left_out(
    planned: Engine,
) -> None:
    set_status(planned, datetime(2026, 1, 12, 12), "confirmed")
    set_status(planned, datetime(2026, 1, 13, 12), "skipped")
    set_status(planned, datetime(2026, 1, 14, 12), "cancelled")
    set_status(planned, datetime(2026, 1, 12, 18), "missed", ritual="kind-words")

    shared, alex, sam = feed(planned), feed(planned, partner="alex"), feed(planned, partner="sam")

    assert shared == {
        "alex-sam/check-in/2026-01-12T12:00@tend": "CONFIRMED",
        "alex-sam/check-in/2026-01-13T12:00@tend": "CANCELLED",
    }
    assert alex["alex-sam/kind-words/2026-01-12T18:00/alex@tend"] == "TENTATIVE"  # missed
    assert sam["alex-sam/kind-words/2026-01-13T18:00/sam@tend"] == "TENTATIVE"  # open
    assert len(alex) == len(sam) == 2 + 3


def test_the_feed_is_one_households_and_none_for_a_household_the_ledger_does_not_know(
    planned: Engine,
) -> None:
    assert all(uid.startswith("alex-sam/") for uid in feed(planned))
    assert sorted(feed(planned, "kim-lee")) == [
        f"kim-lee/check-in/2026-01-{day}T12:00@tend" for day in (12, 13, 14)
    ]
    assert household_calendar(Ledger(planned), "nobody", NOW) is None


def test_the_feed_starts_exactly_sixty_days_back(planned: Engine) -> None:
    edge = NOW - timedelta(days=DAYS_BACK)
    add_occurrence(planned, edge)
    add_occurrence(planned, edge - timedelta(minutes=1))

    old = sorted(uid for uid in feed(planned) if "/old/" in uid)

    assert old == [f"alex-sam/old/{edge:%Y-%m-%dT%H:%M}@tend"]
    assert f"{edge:%Y-%m-%d}" == "2025-11-13"


def test_a_feed_holds_the_newest_events_up_to_its_bound(
    planned: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(calendar, "MAX_EVENTS", 3)

    found = feed(planned, partner="sam")

    # The newest three of Sam's: Wednesday's two, then the newest of Tuesday's.
    assert sorted(found) == [
        "alex-sam/check-in/2026-01-14T12:00@tend",
        "alex-sam/kind-words/2026-01-13T18:00/sam@tend",
        "alex-sam/kind-words/2026-01-14T18:00/sam@tend",
    ]
    events = Ledger(planned).reports.events("alex-sam", NOW - timedelta(days=DAYS_BACK), 2)
    assert [(e.ritual_id, e.recipient, e.slot) for e in events] == [
        ("kind-words", "sam", datetime(2026, 1, 14, 18)),
        ("kind-words", "alex", datetime(2026, 1, 14, 18)),
    ]


def test_the_feeds_uids_are_those_of_tend_plan_for_the_same_days(planned: Engine) -> None:
    file = ritual_file(TEXT)
    deliveries = Plan(file).deliveries_between(date(2026, 1, 12), 3, ["alex-sam"])
    preview = plan_calendar(file, deliveries, NOW)

    uids = sorted(str(e["uid"]) for e in preview.walk("VEVENT"))

    # Between them, the partners' feeds have every occurrence; the shared one, both's.
    alex, sam = feed(planned, partner="alex"), feed(planned, partner="sam")
    assert uids == sorted(alex.keys() | sam.keys())
    assert sorted(alex.keys() & sam.keys()) == sorted(feed(planned))
    assert len(uids) == 9  # one event per occurrence, not per message
    assert "alex-sam/kind-words/2026-01-12T18:00/alex@tend" in uids


def test_the_shared_feed_has_what_both_share_and_a_partners_adds_only_their_own(
    planned: Engine,
) -> None:
    shared = feed(planned)
    alex, sam = feed(planned, partner="alex"), feed(planned, partner="sam")

    assert sorted(shared) == [f"alex-sam/check-in/2026-01-{d}T12:00@tend" for d in (12, 13, 14)]
    assert sorted(alex.keys() - shared.keys()) == [
        f"alex-sam/kind-words/2026-01-{d}T18:00/alex@tend" for d in (12, 13, 14)
    ]
    assert sorted(sam.keys() - shared.keys()) == [
        f"alex-sam/kind-words/2026-01-{d}T18:00/sam@tend" for d in (12, 13, 14)
    ]
    # A ritual sent to one partner alone (to = "alex") is Alex's own too.
    only_alex = {"check-in": "alex"}
    assert feed(planned, addressed=only_alex) == {}
    assert feed(planned, partner="alex", addressed=only_alex) == alex
    assert feed(planned, partner="sam", addressed=only_alex).keys() == sam.keys() - shared.keys()
    # A partner the ledger does not have in this household has no feed.
    assert household_calendar(Ledger(planned), "alex-sam", NOW, partner="kim") is None
    assert household_calendar(Ledger(planned), "kim-lee", NOW, partner="kim") is not None


def test_tend_plans_calendar_is_in_the_households_zone_with_the_feeds_events(
    planned: Engine,
) -> None:
    file = ritual_file(TEXT)
    deliveries = Plan(file).deliveries_between(date(2026, 1, 12), 3, ["alex-sam"])
    preview = plan_calendar(file, deliveries, NOW)
    body = household_calendar(Ledger(planned), "alex-sam", NOW, partner="alex")
    assert body is not None
    feed_calendar = Calendar.from_ical(body)

    assert str(preview["x-wr-timezone"]) == str(feed_calendar["x-wr-timezone"]) == "Europe/Berlin"
    assert [str(tz["tzid"]) for tz in preview.walk("VTIMEZONE")] == ["Europe/Berlin"]
    by_uid = {str(e["uid"]): e for e in preview.walk("VEVENT")}
    shown = list(feed_calendar.walk("VEVENT"))
    assert len(shown) == 6
    for event in shown:
        planned_event = by_uid[str(event["uid"])]
        for name in ("dtstart", "dtend"):
            assert planned_event[name].params["TZID"] == "Europe/Berlin"
            assert planned_event[name].to_ical() == event[name].to_ical()
        for name in ("summary", "categories", "transp"):
            assert planned_event[name].to_ical() == event[name].to_ical(), name
    first = by_uid["alex-sam/check-in/2026-01-12T12:00@tend"]
    assert first["dtstart"].to_ical() == b"20260112T120000"  # noon in Berlin, not 11:00Z
