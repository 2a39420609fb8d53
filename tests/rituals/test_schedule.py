"""Every schedule form of the ritual file, good and bad, from tables of cases."""

from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta
from itertools import islice, pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rituals.clock import QuietHours, TimeWindow, get_zone, resolve
from rituals.schedule import RandomWindow, RRuleSchedule, ScheduleError, parse_schedule

FROM = datetime(2027, 1, 1)  # a Friday


def first(text: str, count: int = 3) -> list[str]:
    schedule = parse_schedule(text)
    return [
        f"{slot:%a %Y-%m-%d %H:%M}" for _, slot in schedule.slots(FROM, FROM + timedelta(days=120))
    ][:count]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "daily at 19:00",
            ["Fri 2027-01-01 19:00", "Sat 2027-01-02 19:00", "Sun 2027-01-03 19:00"],
        ),
        (
            "every day at 7:05",
            ["Fri 2027-01-01 07:05", "Sat 2027-01-02 07:05", "Sun 2027-01-03 07:05"],
        ),
        (
            "weekly on sun at 19:30",
            ["Sun 2027-01-03 19:30", "Sun 2027-01-10 19:30", "Sun 2027-01-17 19:30"],
        ),
        (
            "Weekly on Sunday at 19:30",
            ["Sun 2027-01-03 19:30", "Sun 2027-01-10 19:30", "Sun 2027-01-17 19:30"],
        ),
        (
            "weekly on mon and thu at 18:00",
            ["Mon 2027-01-04 18:00", "Thu 2027-01-07 18:00", "Mon 2027-01-11 18:00"],
        ),
        (
            "weekly on tue, sat at 08:00",
            ["Sat 2027-01-02 08:00", "Tue 2027-01-05 08:00", "Sat 2027-01-09 08:00"],
        ),
        # Fortnights count from Monday 2024-01-01, so every file agrees on which Friday.
        (
            "every 2 weeks on fri at 19:00",
            ["Fri 2027-01-01 19:00", "Fri 2027-01-15 19:00", "Fri 2027-01-29 19:00"],
        ),
        (
            "every 2 weeks on fri at 19:00 starting 2027-01-08",
            ["Fri 2027-01-08 19:00", "Fri 2027-01-22 19:00", "Fri 2027-02-05 19:00"],
        ),
        (
            "every 3 weeks on wed at 12:00",
            ["Wed 2027-01-20 12:00", "Wed 2027-02-10 12:00", "Wed 2027-03-03 12:00"],
        ),
        (
            "monthly on the first sat at 10:00",
            ["Sat 2027-01-02 10:00", "Sat 2027-02-06 10:00", "Sat 2027-03-06 10:00"],
        ),
        (
            "monthly on the last fri at 19:00",
            ["Fri 2027-01-29 19:00", "Fri 2027-02-26 19:00", "Fri 2027-03-26 19:00"],
        ),
        (
            "monthly on the second sunday at 09:00",
            ["Sun 2027-01-10 09:00", "Sun 2027-02-14 09:00", "Sun 2027-03-14 09:00"],
        ),
        (
            "monthly on day 1 at 09:00",
            ["Fri 2027-01-01 09:00", "Mon 2027-02-01 09:00", "Mon 2027-03-01 09:00"],
        ),
        (
            "monthly on day 31 at 09:00",
            ["Sun 2027-01-31 09:00", "Wed 2027-03-31 09:00", "Sat 2027-05-29 09:00"][:2],
        ),
        (
            "cron: 30 19 * * sun",
            ["Sun 2027-01-03 19:30", "Sun 2027-01-10 19:30", "Sun 2027-01-17 19:30"],
        ),
        # Cron counts Sunday as 0 and 7; APScheduler counts Monday as 0: the file means cron's.
        (
            "cron: 30 19 * * 0",
            ["Sun 2027-01-03 19:30", "Sun 2027-01-10 19:30", "Sun 2027-01-17 19:30"],
        ),
        (
            "cron: 30 19 * * 7",
            ["Sun 2027-01-03 19:30", "Sun 2027-01-10 19:30", "Sun 2027-01-17 19:30"],
        ),
        (
            "cron: 0 9 * * 1-5",
            ["Fri 2027-01-01 09:00", "Mon 2027-01-04 09:00", "Tue 2027-01-05 09:00"],
        ),
        (
            "cron: 0 9 * * */3",
            ["Sat 2027-01-02 09:00", "Sun 2027-01-03 09:00", "Wed 2027-01-06 09:00"],
        ),
        (
            "cron: 15 18 * * mon-fri",
            ["Fri 2027-01-01 18:15", "Mon 2027-01-04 18:15", "Tue 2027-01-05 18:15"],
        ),
        # Both day fields set: cron fires when either matches (the 15th, or any Monday).
        (
            "cron: 0 8 15 * mon",
            ["Mon 2027-01-04 08:00", "Mon 2027-01-11 08:00", "Fri 2027-01-15 08:00"],
        ),
        ("cron: 0 12 1 1,7 *", ["Fri 2027-01-01 12:00", "Thu 2027-07-01 12:00"][:1]),
        # A day field that starts with * leaves the other in charge (cron ANDs them then).
        (
            "cron: 0 9 1 * */1",
            ["Fri 2027-01-01 09:00", "Mon 2027-02-01 09:00", "Mon 2027-03-01 09:00"],
        ),
        (
            "cron: 0 9 */10 * mon",
            ["Mon 2027-01-11 09:00", "Mon 2027-02-01 09:00", "Mon 2027-03-01 09:00"],
        ),
        (
            "rrule: FREQ=WEEKLY;INTERVAL=2;BYDAY=FR;BYHOUR=19;BYMINUTE=0",
            ["Fri 2027-01-01 19:00", "Fri 2027-01-15 19:00", "Fri 2027-01-29 19:00"],
        ),
        (
            "rrule: FREQ=MONTHLY;BYMONTHDAY=-1;BYHOUR=20;BYMINUTE=0",
            ["Sun 2027-01-31 20:00", "Sun 2027-02-28 20:00", "Wed 2027-03-31 20:00"],
        ),
        (
            "rrule: DTSTART:20270108T190000\\nRRULE:FREQ=WEEKLY;INTERVAL=2",
            ["Fri 2027-01-08 19:00", "Fri 2027-01-22 19:00", "Fri 2027-02-05 19:00"],
        ),
    ],
)
def test_it_reads_each_schedule_form(text: str, expected: list[str]) -> None:
    assert first(text, len(expected)) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "cannot read schedule"),
        ("sometimes", "cannot read schedule"),
        ("daily at 25:00", "not a time of day"),
        ("daily at 7pm", "cannot read schedule"),
        ("weekly on funday at 19:00", "'funday' is not a day"),
        ("every 0 weeks on fri at 19:00", "1 to 52"),
        ("every 2 weeks on fri at 19:00 starting 2027-02-30", "not a date"),
        ("monthly on the fifth sat at 10:00", "first, second, third, fourth or last"),
        ("monthly on day 32 at 10:00", "1 to 31"),
        ("cron: 30 19 * *", "needs 5 fields"),
        ("cron: 61 19 * * *", "cron:"),
        ("cron: 30 19 * * 9", "day number 0-7"),
        ("cron: 30 19 * * 5-1", "backwards"),
        ("rrule:", "empty"),
        ("rrule: FREQ=BOGUS", "invalid 'FREQ'"),
        ("rrule: FREQ=MINUTELY", "more than once an hour"),
        ("rrule: FREQ=DAILY;BYHOUR=25", "hour must be in 0..23"),
        ("rrule: DTSTART;TZID=Europe/Berlin:20270108T190000\\nRRULE:FREQ=WEEKLY", "DTSTART"),
        ("rrule: FREQ=MONTHLY;BYDAY=1SA", "fires at midnight"),
        ("rrule: FREQ=DAILY;BYHOUR=9;COUNT=3", "COUNT needs a DTSTART"),
        ("every friday at 7pm", "24-hour clock"),
        ("every friday at 19:00", "did you mean 'weekly on fri at 19:00'?"),
        ("0 20 * * 6", "did you mean 'cron: 0 20 * * 6'?"),
        ("cron: 0 25 * * *", "cron: the last value (25) is higher than the maximum value (23)"),
        ("rrule: FREQ=DAILY;INTERVAL=0;BYHOUR=9", "INTERVAL must be at least 1"),
        ("rrule: FREQ=YEARLY;BYDAY=99FR;BYHOUR=9", "rrule:"),
        ("rrule: FREQ=YEARLY;BYEASTER=999999;BYHOUR=9", "rrule:"),
        ("rrule: DTSTART:00010101T000000\\nRRULE:FREQ=YEARLY;INTERVAL=3000", "2000-2099"),
        ("rrule: FREQ=DAILY;BYMONTHDAY=-32;BYHOUR=9", "BYMONTHDAY takes 1 to 31"),
        ("rrule: FREQ=WEEKLY;BYWEEKNO=60;BYHOUR=9", "BYWEEKNO takes 1 to 53"),
        ("every 2 weeks on fri at 19:00 starting 9999-12-31", "use a date in 2000-2099"),
    ],
)
def test_it_explains_a_schedule_it_cannot_read(text: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=None) as caught:
        parse_schedule(text)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("window", "message"),
    [
        ({"per": "week", "between": "10:00-20:00"}, "times"),
        ({"times": 0, "between": "10:00-20:00"}, "times"),
        ({"times": 3, "per": "year", "between": "10:00-20:00"}, "per"),
        ({"times": 3, "between": "20:00-10:00"}, "same day"),
        ({"times": 3, "between": "10-20"}, "between"),
        ({"times": 3, "between": "10:00-20:00", "days": ["someday"]}, "not a day"),
        ({"times": 3, "between": "10:00-20:00", "when": "often"}, "unknown key 'when'"),
        ({"times": 30, "per": "day", "between": "10:00-20:00"}, "at most 10"),
        ({"times": 5, "per": "day", "between": "14:00-16:00"}, "cannot be an hour apart"),
        ({"times": 3, "between": "14:00-16:00", "days": ["sat"]}, "at most 2"),
        (
            {"times": 9, "per": "month", "between": "19:00-19:30", "days": ["sat", "sun"]},
            "at most 8",
        ),
    ],
)
def test_it_explains_a_random_window_it_cannot_use(window: dict[str, object], message: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule(window)
    assert message in str(caught.value)


def test_occurrence_indexes_do_not_depend_on_where_the_range_starts() -> None:
    schedule = parse_schedule("every 2 weeks on fri at 19:00")
    wide = {slot: i for i, slot in schedule.slots(datetime(2026, 1, 1), datetime(2028, 1, 1))}
    narrow = schedule.slots(datetime(2027, 6, 1), datetime(2027, 7, 1))
    assert narrow and all(wide[slot] == i for i, slot in narrow)
    assert [i for i, _ in narrow] == list(range(narrow[0][0], narrow[0][0] + len(narrow)))


def window(**kwargs: object) -> RandomWindow:
    schedule = parse_schedule({"between": "10:00-20:00", **kwargs})
    assert isinstance(schedule, RandomWindow)
    return schedule


def test_random_draws_are_the_same_for_the_same_seed_and_differ_between_seeds() -> None:
    nudges = window(times=3, per="week")
    week = (date(2027, 1, 4), date(2027, 1, 11))
    assert nudges.draw("h|r|alex|157", *week) == nudges.draw("h|r|alex|157", *week)
    assert nudges.draw("h|r|alex|157", *week) != nudges.draw("h|r|sam|157", *week)


def test_three_a_week_land_on_three_different_days_inside_the_window() -> None:
    nudges = window(times=3, per="week")
    for n in range(50):
        drawn = nudges.draw(f"seed-{n}", date(2027, 1, 4), date(2027, 1, 11))
        assert len(drawn) == 3
        assert len({slot.date() for slot in drawn}) == 3
        assert all(TimeWindow.parse("10:00-20:00").contains(slot.time()) for slot in drawn)
        assert all(slot.minute % 5 == 0 for slot in drawn)


def test_several_a_day_are_at_least_an_hour_apart() -> None:
    nudges = window(times=4, per="day")
    for n in range(50):
        drawn = nudges.draw(f"seed-{n}", date(2027, 1, 4), date(2027, 1, 5))
        assert len(drawn) == 4
        gaps = [b - a for a, b in itertools.pairwise(drawn)]
        assert min(gaps) >= timedelta(hours=1)


def test_draws_fall_only_on_the_named_days_and_where_allowed() -> None:
    nudges = window(times=2, per="week", days=["sat", "sun"])
    # A partner in London is quiet until 17:00 there: noon in New York.
    not_before_noon = QuietHours.of(
        get_zone("America/New_York"), [(TimeWindow.parse("00:00-17:00"), get_zone("Europe/London"))]
    )
    for n in range(30):
        drawn = nudges.draw(f"seed-{n}", date(2027, 1, 4), date(2027, 1, 11), not_before_noon)
        assert sorted(slot.strftime("%a") for slot in drawn) == ["Sat", "Sun"]
        assert all(slot.hour >= 12 for slot in drawn)


def test_a_window_with_nowhere_allowed_draws_nothing() -> None:
    nudges = window(times=3, per="week")
    always_quiet = QuietHours.of(
        get_zone("UTC"), [(TimeWindow.parse("09:00-21:00"), get_zone("UTC"))]
    )
    assert nudges.draw("s", date(2027, 1, 4), date(2027, 1, 11), always_quiet) == []


def test_quiet_hours_agree_minute_by_minute_with_exact_conversion_across_dst() -> None:
    # 2027-03-14 is spring-forward in New York but not in London: the shift changes that day.
    quiet = QuietHours.of(
        get_zone("America/New_York"), [(TimeWindow.parse("22:00-08:00"), get_zone("Europe/London"))]
    )
    for day in (date(2027, 3, 13), date(2027, 3, 14), date(2027, 3, 28), date(2027, 7, 1)):
        fast = list(quiet.allowed_minutes(day, range(0, 24 * 60, 5)))
        midnight = datetime.combine(day, datetime.min.time())
        exact = [m for m in range(0, 24 * 60, 5) if quiet.allows(midnight + timedelta(minutes=m))]
        assert fast == exact, day


REBASED_RULES = [
    "daily at 01:30",
    "weekly on mon and thu at 18:00",
    "every 2 weeks on fri at 19:00",
    "every 3 weeks on wed at 12:00 starting 2027-01-08",
    "monthly on the last fri at 19:00",
    "monthly on day 31 at 09:00",
    "rrule: FREQ=MONTHLY;INTERVAL=2;BYHOUR=9",
    "rrule: FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29;BYHOUR=9",
    "rrule: FREQ=WEEKLY;INTERVAL=3;BYDAY=MO,FR;BYHOUR=7;BYMINUTE=15",
    "rrule: FREQ=DAILY;INTERVAL=5;BYHOUR=8,20",
    "rrule: DTSTART:20250317T093000\\nRRULE:FREQ=MONTHLY;INTERVAL=4",
]


@settings(max_examples=300, deadline=None)
@given(
    text=st.sampled_from(REBASED_RULES),
    start=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2040, 1, 1)),
)
def test_walking_a_rule_from_near_the_start_gives_the_slots_of_walking_it_from_its_dtstart(
    text: str, start: datetime
) -> None:
    schedule = parse_schedule(text)
    assert isinstance(schedule, RRuleSchedule)
    from_dtstart = list(islice(schedule.rule.xafter(start, inc=True), 25))
    assert schedule.next_slots(start, 25) == from_dtstart


def test_a_range_ending_on_the_first_instant_of_2100_is_inside_the_planned_years() -> None:
    found = parse_schedule("daily at 19:00").slots(datetime(2099, 12, 25), datetime(2100, 1, 1))
    assert [slot.day for _, slot in found] == list(range(25, 32))


def test_days_may_be_written_together_in_one_string() -> None:
    assert window(times=2, days=["sat and sun"]).days == (5, 6)
    assert window(times=2, days=["mon, tue", "fri"]).days == (0, 1, 4)


def test_quiet_hours_on_a_day_that_starts_in_a_midnight_gap_use_exact_conversion() -> None:
    # Santiago springs forward at midnight on 2025-09-07: 00:00-00:59 do not exist that day.
    santiago = get_zone("America/Santiago")
    quiet = QuietHours.of(santiago, [(TimeWindow.parse("01:00-07:00"), santiago)])
    allowed = quiet.allowed_minutes(date(2025, 9, 7), range(0, 24 * 60, 5))
    assert not any(m < 7 * 60 for m in allowed)
    assert 7 * 60 in allowed


def test_random_draws_skip_times_a_spring_forward_removes_and_stay_an_hour_apart() -> None:
    new_york = get_zone("America/New_York")
    nudges = window(times=2, per="day", between="01:00-04:00")
    quiet = QuietHours.of(new_york, [])
    for n in range(200):
        drawn = nudges.draw(f"h{n}", date(2027, 3, 14), date(2027, 3, 15), quiet)
        assert not any(slot.hour == 2 for slot in drawn)  # 02:00-02:59 does not exist
        first, second = (resolve(slot, new_york) for slot in drawn)
        assert second - first >= timedelta(hours=1), drawn


def test_draws_on_neighbouring_days_are_still_an_hour_apart() -> None:
    nudges = window(times=7, per="week", between="00:00-23:55")
    for n in range(100):
        drawn = nudges.draw(
            f"s{n}", date(2027, 1, 4), date(2027, 1, 11), QuietHours.of(get_zone("UTC"), [])
        )
        assert len({slot.date() for slot in drawn}) == 7
        assert all(b - a >= timedelta(hours=1) for a, b in pairwise(drawn))


# A crontab line with day-of-month and month ``*`` is enumerated as one week repeated (the
# fast path behind every count from the epoch); each year must be exactly APScheduler's.
_cron_values = {
    "minute": st.sampled_from(["0", "15", "*/20", "5,35", "10-12", "*/45"]),
    "hour": st.sampled_from(["9", "18", "*/6", "7,19", "22-23", "*", "0"]),
    "dow": st.sampled_from(["*", "sun", "mon-fri", "0", "7", "1,3,5", "*/2", "sat,sun", "6"]),
}


def _year_by_apscheduler(schedule: object, year: int) -> list[datetime]:
    start, end = datetime(year, 1, 1), datetime(year + 1, 1, 1)
    found = []
    for slot in schedule.iter_from(start):  # type: ignore[attr-defined]
        if slot >= end:
            break
        found.append(slot)
    return found


@settings(max_examples=25, deadline=None)
@given(
    minute=_cron_values["minute"],
    hour=_cron_values["hour"],
    dow=_cron_values["dow"],
    year=st.integers(min_value=2000, max_value=2099),
)
def test_a_weekly_crontab_year_is_the_week_repeated_exactly_as_apscheduler_counts_it(
    minute: str, hour: str, dow: str, year: int
) -> None:
    from rituals.schedule import _year_slots

    schedule = parse_schedule(f"cron: {minute} {hour} * * {dow}")
    assert _year_slots(schedule, year) == _year_by_apscheduler(schedule, year)


@pytest.mark.parametrize("line", ["cron: 0 8 15 * mon", "cron: 0 12 1 1,7 *", "cron: 0 9 */10 * *"])
def test_a_crontab_that_names_days_of_the_month_is_still_counted_by_apscheduler(line: str) -> None:
    from rituals.schedule import _year_slots

    schedule = parse_schedule(line)
    for year in (2024, 2028, 2099):
        assert _year_slots(schedule, year) == _year_by_apscheduler(schedule, year)


@settings(max_examples=40, deadline=None)
@given(
    minute=_cron_values["minute"],
    hour=_cron_values["hour"],
    dow=_cron_values["dow"],
    after=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 1)),
    count=st.integers(min_value=0, max_value=60),
)
def test_the_next_slots_of_a_weekly_crontab_are_apschedulers(
    minute: str, hour: str, dow: str, after: datetime, count: int
) -> None:
    from itertools import islice

    schedule = parse_schedule(f"cron: {minute} {hour} * * {dow}")
    assert schedule.next_slots(after, count) == list(islice(schedule.iter_from(after), count))
