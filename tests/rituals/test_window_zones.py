"""Random windows in the recipient's own zone: a partner who lives elsewhere gets ``between``
on their own clock (``to = "each"`` or one partner); a shared ritual keeps the household's."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from hypothesis import given, settings
from hypothesis import strategies as st
from ritual_files import couple_file, partner_table

from config.loader import parse_ritual_file
from rituals.clock import TimeWindow, resolve
from rituals.planning import Delivery, Plan

TODAY = datetime(2027, 1, 1, tzinfo=UTC)

WINDOW = """
[[rituals]]
id = "appreciation"
kind = "appreciation"
schedule = {{ times = {times}, per = "{per}", between = "{between}" }}
to = "{to}"
"""


def plan_of(
    *,
    home: str = "Europe/Berlin",
    sam_zone: str | None = "America/New_York",
    to: str = "each",
    between: str = "10:00-20:00",
    times: int = 3,
    per: str = "week",
) -> Plan:
    text = couple_file(
        partner_table("alex", phone=True),
        partner_table("sam", phone=True, timezone=sam_zone),
        timezone=home,
        rituals=WINDOW.format(to=to, between=between, times=times, per=per),
    )
    return Plan(parse_ritual_file(text, name="tend.toml", today=TODAY).file)


def of(deliveries: list[Delivery], partner: str) -> list[Delivery]:
    return [d for d in deliveries if d.partner == partner]


def inside(window: TimeWindow, moment: datetime) -> bool:
    return window.contains(moment.time())


def weeks(instants: list[datetime], zone: ZoneInfo) -> Counter[date]:
    """How many of `instants` fall in each week (by its Monday) of `zone`'s calendar."""
    days = [moment.astimezone(zone).date() for moment in instants]
    return Counter(day - timedelta(days=day.weekday()) for day in days)


BERLIN, NEW_YORK = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")
DAYTIME = TimeWindow.parse("10:00-20:00")
# Eight weeks from Monday 2027-03-01: New York springs forward on 03-14, Berlin on 03-28.
# One day more, so that Sam's last Sunday evening (Monday in Berlin) is inside the range.
SPRING = (date(2027, 3, 1), 57)
MONDAYS = [date(2027, 3, 1) + timedelta(weeks=n) for n in range(8)]


def test_a_partner_with_their_own_zone_gets_each_nudge_inside_the_window_on_their_clock() -> None:
    deliveries = plan_of().deliveries_between(*SPRING)
    sams = of(deliveries, "sam")
    assert all(d.due_local.tzinfo == NEW_YORK for d in sams)
    assert all(inside(DAYTIME, d.due_local) for d in sams), [f"{d.due_local}" for d in sams]
    # Three in each of Sam's own weeks (Monday to Sunday in New York).
    assert [weeks([d.due_at for d in sams], NEW_YORK)[m] for m in MONDAYS] == [3] * 8
    # Alex lives in the household's zone: Berlin's 10:00-20:00.
    alexes = of(deliveries, "alex")
    assert all(inside(DAYTIME, d.due_local.astimezone(BERLIN)) for d in alexes)
    assert [weeks([d.due_at for d in alexes], BERLIN)[m] for m in MONDAYS] == [3] * 8


def test_an_occurrence_drawn_on_the_partners_clock_keeps_a_household_slot_that_names_it() -> None:
    for occurrence in {d.occurrence for d in of(plan_of().deliveries_between(*SPRING), "sam")}:
        assert resolve(occurrence.slot, BERLIN) == occurrence.at
        assert occurrence.slot == occurrence.at.astimezone(BERLIN).replace(tzinfo=None)
        assert occurrence.recipient == "sam"


def test_a_partner_without_their_own_zone_draws_exactly_as_before() -> None:
    # The seed is household, ritual, recipient and period, as ever: a zone given to Sam does
    # not move a single one of Alex's nudges.
    with_zone = of(plan_of().deliveries_between(*SPRING), "alex")
    without = of(plan_of(sam_zone=None).deliveries_between(*SPRING), "alex")
    assert [(d.occurrence.key, d.due_at) for d in with_zone] == [
        (d.occurrence.key, d.due_at) for d in without
    ]


def test_a_partner_whose_zone_is_the_households_draws_as_if_they_had_none() -> None:
    same = plan_of(sam_zone="Europe/Berlin").deliveries_between(*SPRING)
    none = plan_of(sam_zone=None).deliveries_between(*SPRING)
    assert [(d.occurrence.key, d.due_at) for d in same] == [
        (d.occurrence.key, d.due_at) for d in none
    ]


def test_a_ritual_for_one_partner_draws_on_that_partners_clock() -> None:
    sams = plan_of(to="sam").deliveries_between(*SPRING)
    assert {d.partner for d in sams} == {"sam"}
    assert all(inside(DAYTIME, d.due_local) for d in sams)
    assert [weeks([d.due_at for d in sams], NEW_YORK)[m] for m in MONDAYS] == [3] * 8


def test_a_shared_ritual_keeps_the_households_zone() -> None:
    deliveries = plan_of(to="both").deliveries_between(*SPRING)
    occurrences = {d.occurrence for d in deliveries}
    assert [weeks([o.at for o in occurrences], BERLIN)[m] for m in MONDAYS] == [3] * 8
    assert all(inside(DAYTIME, o.at.astimezone(BERLIN)) for o in occurrences)
    # Sam reads it on their own clock: six hours earlier most of the year.
    assert any(not inside(DAYTIME, d.due_local) for d in of(deliveries, "sam"))


def test_the_hour_the_households_clock_repeats_is_left_out_of_a_partners_window() -> None:
    # Berlin goes back 03:00 -> 02:00 on Sunday 2027-10-31; its second 02:00-02:59 is
    # 21:00-21:59 on Saturday in New York (still on summer time). A slot there would name
    # the first 02:xx instead, an hour off: that evening Sam's window leaves only 22:00.
    plan = plan_of(between="21:00-22:05", times=1, per="day")
    sams = of(plan.deliveries_between(date(2027, 10, 27), 7), "sam")
    by_day = {d.due_local.date(): d.due_local for d in sams}
    assert date(2027, 10, 30) in by_day and len(by_day) == len(sams)
    assert by_day[date(2027, 10, 30)].time() == time(22, 0)
    assert all(inside(TimeWindow.parse("21:00-22:05"), d.due_local) for d in sams)
    assert all(resolve(d.occurrence.slot, BERLIN) == d.occurrence.at for d in sams)


# ------------------------------------------------------------------------ property

ZONES = sorted(available_timezones() - {"Factory", "localtime"})


@cache
def changes(zone_name: str, year: int) -> tuple[date, ...]:
    """Local days of `year` on which the zone changes its UTC offset."""
    zone = ZoneInfo(zone_name)
    found = []
    moment = datetime(year, 1, 1, 12, tzinfo=UTC)
    while moment.year == year:
        following = moment + timedelta(days=1)
        if moment.astimezone(zone).utcoffset() != following.astimezone(zone).utcoffset():
            found.append(following.astimezone(zone).date())
        moment = following
    return tuple(found)


@st.composite
def windows(draw: st.DrawFn) -> str:
    start = draw(st.integers(min_value=0, max_value=23 * 12 - 1)) * 5
    length = draw(st.integers(min_value=12, max_value=(24 * 60 - 5 - start) // 5)) * 5
    end = start + length
    return f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"


@st.composite
def first_days(draw: st.DrawFn, zone_names: tuple[str, str]) -> date:
    """A plain day, or a few days before a change of either zone (DST days included)."""
    year = draw(st.integers(min_value=2026, max_value=2035))
    near = [day for name in zone_names for day in changes(name, year)]
    if near and draw(st.booleans()):
        return draw(st.sampled_from(near)) - timedelta(days=draw(st.integers(0, 6)))
    return date(year, 1, 1) + timedelta(days=draw(st.integers(0, 364)))


@settings(max_examples=150, deadline=None)
@given(data=st.data(), home=st.sampled_from(ZONES), away=st.sampled_from(ZONES))
def test_every_nudge_for_a_partner_with_their_own_zone_is_inside_the_window_on_their_clock(
    data: st.DataObject, home: str, away: str
) -> None:
    between = data.draw(windows(), label="between")
    first = data.draw(first_days((home, away)), label="first")
    plan = plan_of(home=home, sam_zone=away, between=between)
    window = TimeWindow.parse(between)
    deliveries = plan.deliveries_between(first, 21)
    for partner, zone in (("sam", ZoneInfo(away)), ("alex", ZoneInfo(home))):
        mine = of(deliveries, partner)
        assert all(d.due_local.tzinfo == zone for d in mine)
        assert all(inside(window, d.due_at.astimezone(zone)) for d in mine), [
            f"{d.due_at.astimezone(zone)}" for d in mine
        ]
        # Each slot of the household's clock names its instant, once.
        assert all(resolve(d.occurrence.slot, ZoneInfo(home)) == d.occurrence.at for d in mine)
        assert len({d.occurrence.key for d in mine}) == len(mine)
        # Three in every week of the partner's own that the 21 household days surely cover
        # (two zones' clocks are at most 26 hours apart).
        counted = weeks([d.due_at for d in mine], zone)
        monday = first + timedelta(days=2)
        monday += timedelta(days=(7 - monday.weekday()) % 7)
        while monday + timedelta(days=7) <= first + timedelta(days=19):
            assert counted[monday] == 3, (partner, monday, sorted(counted.items()))
            monday += timedelta(days=7)
