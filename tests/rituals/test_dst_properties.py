"""Property tests over every IANA zone, 2026-2036: the time promises of DESIGN.md.

The expected instants are found here without ``fold``: by trying every UTC offset the zone
uses near the slot and keeping those that read back as the slot on the wall clock.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import cache
from itertools import pairwise
from zoneinfo import ZoneInfo, available_timezones

from hypothesis import given, settings
from hypothesis import strategies as st

from rituals.clock import resolve
from rituals.schedule import parse_schedule

ZONES = sorted(available_timezones())
zones = st.sampled_from(ZONES)
slots = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2036, 12, 31, 23, 59))
minutes = st.integers(min_value=0, max_value=24 * 60 - 1)


def offsets_near(slot: datetime, zone: ZoneInfo) -> set[timedelta]:
    """Every UTC offset the zone uses within two days of the slot, hour by hour."""
    rough = slot.replace(tzinfo=UTC)
    found = set()
    for hours in range(-48, 49):
        offset = (rough + timedelta(hours=hours)).astimezone(zone).utcoffset()
        assert offset is not None
        found.add(offset)
    return found


def instants_of(slot: datetime, zone: ZoneInfo) -> list[datetime]:
    """Every UTC instant whose wall-clock reading in `zone` is `slot`."""
    found = set()
    for offset in offsets_near(slot, zone):
        instant = (slot - offset).replace(tzinfo=UTC)
        if instant.astimezone(zone).replace(tzinfo=None) == slot:
            found.add(instant)
    return sorted(found)


def assert_resolved_by_the_rules(zone_name: str, slot: datetime) -> None:
    zone = ZoneInfo(zone_name)
    slot = slot.replace(second=0, microsecond=0)
    instant = resolve(slot, zone)
    assert instant.tzinfo is UTC
    candidates = instants_of(slot, zone)
    if candidates:
        # The slot exists (once, or twice in a fall-back): the first instant.
        assert instant == candidates[0]
    else:
        # The slot falls in a gap: shifted forward by the gap's length.
        change = max(t for t in transitions(zone_name) if t <= instant)
        before = (change - timedelta(minutes=1)).astimezone(zone).utcoffset()
        after = change.astimezone(zone).utcoffset()
        assert before is not None and after is not None
        gap = after - before
        assert gap > timedelta(0)
        assert instant.astimezone(zone).replace(tzinfo=None) == slot + gap


@cache
def transitions(zone_name: str) -> list[datetime]:
    """Instants (UTC) in 2026-2036 where the zone's offset changes, to the minute."""
    zone = ZoneInfo(zone_name)
    found = []
    step = timedelta(days=7)
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    offset = moment.astimezone(zone).utcoffset()
    while moment < datetime(2037, 1, 1, tzinfo=UTC):
        following = moment + step
        if following.astimezone(zone).utcoffset() != offset:
            low, high = moment, following  # the change lies in (low, high]
            while high - low > timedelta(minutes=1):
                middle = low + (high - low) / 2
                if middle.astimezone(zone).utcoffset() == offset:
                    low = middle
                else:
                    high = middle
            found.append(high.replace(second=0, microsecond=0))
            offset = following.astimezone(zone).utcoffset()
        moment = following
    return found


ZONES_WITH_TRANSITIONS = [z for z in ZONES if transitions(z)]


def slot_near(zone_name: str, which: int, minutes_away: int) -> datetime:
    """A wall-clock slot `minutes_away` from one of the zone's changes, as read just before it."""
    changes = transitions(zone_name)
    change = changes[which % len(changes)]
    before = (change - timedelta(minutes=1)).astimezone(ZoneInfo(zone_name)).replace(tzinfo=None)
    return before + timedelta(minutes=1 + minutes_away)


def test_the_zones_under_test_include_the_named_dst_cases() -> None:
    assert {"America/New_York", "Australia/Sydney", "Australia/Lord_Howe", "Europe/Berlin"} <= set(
        ZONES_WITH_TRANSITIONS
    )
    assert "Asia/Kolkata" in ZONES and "Asia/Kolkata" not in ZONES_WITH_TRANSITIONS


@settings(max_examples=3000, deadline=None)
@given(
    zone_name=st.sampled_from(ZONES_WITH_TRANSITIONS),
    which=st.integers(min_value=0),
    minutes_away=st.integers(min_value=-180, max_value=180),
)
def test_slots_around_every_kind_of_transition_follow_the_rules(
    zone_name: str, which: int, minutes_away: int
) -> None:
    assert_resolved_by_the_rules(zone_name, slot_near(zone_name, which, minutes_away))


@settings(max_examples=2000, deadline=None)
@given(zone_name=zones, slot=slots)
def test_every_slot_resolves_to_one_instant_by_the_promised_rules(
    zone_name: str, slot: datetime
) -> None:
    assert_resolved_by_the_rules(zone_name, slot)


@settings(max_examples=400, deadline=None)
@given(
    zone_name=zones,
    start=st.dates(min_value=date(2026, 1, 1), max_value=date(2036, 10, 1)),
    minute_of_day=minutes,
    days=st.integers(min_value=1, max_value=90),
)
def test_a_daily_schedule_fires_once_every_local_day_across_transitions(
    zone_name: str, start: date, minute_of_day: int, days: int
) -> None:
    zone = ZoneInfo(zone_name)
    hour, minute = divmod(minute_of_day, 60)
    schedule = parse_schedule(f"daily at {hour:02d}:{minute:02d}")
    begin = datetime.combine(start, datetime.min.time())
    found = schedule.slots(begin, begin + timedelta(days=days))
    assert [slot.date() for _, slot in found] == [start + timedelta(days=i) for i in range(days)]
    instants = [resolve(slot, zone) for _, slot in found]
    assert instants == sorted(set(instants))
    # Indexes are consecutive: each day is its own occurrence.
    indexes = [index for index, _ in found]
    assert indexes == list(range(indexes[0], indexes[0] + days))


# Few examples: a new cron line counts its slots from the epoch once (about 7 ms a year).
@settings(max_examples=40, deadline=None)
@given(slot=slots)
def test_a_cron_and_a_phrase_for_the_same_time_agree(slot: datetime) -> None:
    cron = parse_schedule(f"cron: {slot.minute} {slot.hour} * * *")
    phrase = parse_schedule(f"daily at {slot.hour:02d}:{slot.minute:02d}")
    day = datetime.combine(slot.date(), datetime.min.time())
    window = (day, day + timedelta(days=3))
    assert cron.slots(*window) == phrase.slots(*window)


@settings(max_examples=1500, deadline=None)
@given(
    zone_name=st.sampled_from(ZONES_WITH_TRANSITIONS),
    which=st.integers(min_value=0),
    minutes_away=st.integers(min_value=-120, max_value=120),
)
def test_a_daily_time_inside_a_gap_or_fold_still_fires_once_that_day(
    zone_name: str, which: int, minutes_away: int
) -> None:
    zone = ZoneInfo(zone_name)
    at = slot_near(zone_name, which, minutes_away)
    schedule = parse_schedule(f"daily at {at:%H:%M}")
    begin = datetime.combine(at.date() - timedelta(days=2), datetime.min.time())
    found = schedule.slots(begin, begin + timedelta(days=5))
    assert [slot.date() for _, slot in found] == [
        begin.date() + timedelta(days=i) for i in range(5)
    ]
    instants = [resolve(slot, zone) for _, slot in found]
    assert instants == sorted(set(instants))
    assert all(b - a >= timedelta(hours=20) for a, b in pairwise(instants))


def test_every_zone_resolves_the_slots_around_each_of_its_changes() -> None:
    """Not sampled: every zone, every change in 2026-2036, slots across the gap or fold."""
    checked = 0
    for zone_name in ZONES_WITH_TRANSITIONS:
        for which in range(len(transitions(zone_name))):
            for minutes_away in (-61, -1, 0, 1, 15, 29, 30, 59, 60, 61):
                assert_resolved_by_the_rules(zone_name, slot_near(zone_name, which, minutes_away))
                checked += 1
    assert checked > 20_000


def test_every_zone_without_changes_keeps_one_offset() -> None:
    for zone_name in sorted(set(ZONES) - set(ZONES_WITH_TRANSITIONS)):
        zone = ZoneInfo(zone_name)
        slot = datetime(2031, 6, 15, 2, 30)
        offset = slot.replace(tzinfo=zone).utcoffset()
        assert offset is not None
        assert resolve(slot, zone) == (slot - offset).replace(tzinfo=UTC), zone_name
