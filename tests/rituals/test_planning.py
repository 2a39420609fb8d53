"""From a ritual file to occurrences and deliveries: planners, quiet hours, recipients."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from textwrap import dedent

import pytest

from config.loader import parse_ritual_file
from rituals.clock import TimeWindow, get_zone
from rituals.planning import Delivery, Plan, after_quiet_hours
from rituals.templates import default_message

TODAY = datetime(2027, 1, 1, tzinfo=UTC)

COUPLE = """
timezone = "America/New_York"

[[households]]
id = "alex-sam"

  [[households.partners]]
  id = "alex"
  name = "Alex"
  phone = "+15551230001"
  {alex}

  [[households.partners]]
  id = "sam"
  name = "Sam"
  email = "sam@example.com"
  {sam}
"""


def plan_of(rituals: str, alex: str = "", sam: str = "", extra: str = "") -> Plan:
    text = dedent(COUPLE).format(alex=alex, sam=sam) + extra + dedent(rituals)
    return Plan(parse_ritual_file(text, name="tend.toml", today=TODAY).file)


def rows(deliveries: list[Delivery]) -> list[tuple[str, str, str]]:
    return [(d.role, d.partner, d.due_local.strftime("%a %Y-%m-%d %H:%M %Z")) for d in deliveries]


DATE_NIGHT = """
[[rituals]]
id = "date-night"
kind = "date_night"
schedule = "weekly on tue at 19:00"
plan_ahead = "3d"
"""


def test_the_planner_alternates_and_is_nudged_ahead_at_the_same_wall_clock_time() -> None:
    plan = plan_of(DATE_NIGHT)
    # 2027-03-14 is spring-forward in New York: the nudge three days before stays at 19:00.
    deliveries = plan.deliveries_between(date(2027, 3, 9), 14)
    planners = [d.partner for d in deliveries if d.role == "plan_ahead"]
    assert rows(deliveries) == [
        ("plan_ahead", planners[0], "Sat 2027-03-06 19:00 EST"),
        ("day_of", "alex", "Tue 2027-03-09 19:00 EST"),
        ("day_of", "sam", "Tue 2027-03-09 19:00 EST"),
        ("plan_ahead", planners[1], "Sat 2027-03-13 19:00 EST"),
        ("day_of", "alex", "Tue 2027-03-16 19:00 EDT"),
        ("day_of", "sam", "Tue 2027-03-16 19:00 EDT"),
    ]
    # Turns follow the occurrence index, so any preview agrees on whose turn it is.
    assert planners == [["alex", "sam"][d.occurrence.index % 2] for d in deliveries[::3]]
    first, second = (d for d in deliveries if d.role == "plan_ahead")
    assert first.partner != second.partner
    assert f"Planner: {'Alex' if first.partner == 'alex' else 'Sam'}." in deliveries[1].text


def test_a_fixed_planner_plans_every_time() -> None:
    plan = plan_of(DATE_NIGHT + 'planner = "sam"\n')
    planners = {
        d.partner for d in plan.deliveries_between(date(2027, 3, 1), 60) if d.role == "plan_ahead"
    }
    assert planners == {"sam"}


def test_a_preview_of_part_of_the_range_agrees_with_the_whole() -> None:
    plan = plan_of(DATE_NIGHT)
    whole = {d.occurrence.key: d.text for d in plan.deliveries_between(date(2027, 1, 1), 120)}
    part = {d.occurrence.key: d.text for d in plan.deliveries_between(date(2027, 2, 10), 10)}
    again = {
        d.occurrence.key: d.text
        for d in plan_of(DATE_NIGHT).deliveries_between(date(2027, 2, 10), 10)
    }
    assert part and part.items() <= whole.items()
    assert again == part


def test_a_delivery_inside_quiet_hours_waits_for_their_end_in_the_partners_own_zone() -> None:
    plan = plan_of(
        """
        [[rituals]]
        id = "late"
        kind = "custom"
        schedule = "daily at 19:00"
        message = "It is {{ when }} for {{ partner }}"
        """,
        alex='quiet_hours = "22:00-08:00"\n  timezone = "Europe/London"',
        sam='quiet_hours = "18:00-20:00"',
    )
    deliveries = plan.deliveries_between(date(2027, 1, 5), 1)
    assert rows(deliveries) == [
        ("day_of", "sam", "Tue 2027-01-05 20:00 EST"),
        ("day_of", "alex", "Wed 2027-01-06 08:00 GMT"),
    ]
    # The message names the occurrence's time in the reader's own zone.
    assert deliveries[1].text == "It is Wed 6 Jan at 00:00 for Alex"
    assert deliveries[0].text == "It is Tue 5 Jan at 19:00 for Sam"


def test_each_partner_gets_their_own_nudges_outside_their_quiet_hours() -> None:
    plan = plan_of(
        """
        [[rituals]]
        id = "appreciation"
        kind = "appreciation"
        schedule = { times = 3, per = "week", between = "08:00-22:00" }
        to = "each"
        """,
        alex='quiet_hours = "08:00-12:00"',
        sam='quiet_hours = "15:00-22:00"',
    )
    deliveries = plan.deliveries_between(date(2027, 1, 4), 28)
    by_partner = {p: [d for d in deliveries if d.partner == p] for p in ("alex", "sam")}
    assert len(by_partner["alex"]) == len(by_partner["sam"]) == 12
    assert all(d.role == "nudge" for d in deliveries)
    assert all(12 <= d.due_local.hour < 22 for d in by_partner["alex"])
    assert all(8 <= d.due_local.hour < 15 for d in by_partner["sam"])
    assert {d.occurrence.recipient for d in by_partner["alex"]} == {"alex"}
    assert [d.due_local for d in by_partner["alex"]] != [d.due_local for d in by_partner["sam"]]


def test_a_ritual_for_one_partner_reaches_only_them_and_reminds_after() -> None:
    plan = plan_of(
        """
        [[rituals]]
        id = "sams-walk"
        kind = "custom"
        schedule = "weekly on sat at 09:00"
        to = "sam"
        message = "Walk time, {{ partner }}"
        remind_after = "2h"
        """
    )
    assert rows(plan.deliveries_between(date(2027, 1, 4), 7)) == [
        ("day_of", "sam", "Sat 2027-01-09 09:00 EST"),
        ("reminder", "sam", "Sat 2027-01-09 11:00 EST"),
    ]


def test_a_ritual_naming_households_skips_the_others() -> None:
    other = """
[[households]]
id = "kim-lee"
timezone = "Asia/Kolkata"
  [[households.partners]]
  id = "kim"
  name = "Kim"
"""
    plan = plan_of(
        """
        [[rituals]]
        id = "check-in"
        kind = "check_in"
        schedule = "weekly on sun at 19:30"
        households = ["kim-lee"]
        """,
        extra=other,
    )
    deliveries = plan.deliveries_between(date(2027, 1, 4), 7)
    assert rows(deliveries) == [("day_of", "kim", "Sun 2027-01-10 19:30 IST")]
    assert deliveries[0].channel == "console"


def test_the_first_preferred_channel_is_used() -> None:
    plan = plan_of(DATE_NIGHT, alex='email = "alex@example.com"\n  channels = ["email", "sms"]')
    channels = {d.partner: d.channel for d in plan.deliveries_between(date(2027, 1, 4), 7)}
    assert channels == {"alex": "email", "sam": "email"}


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        # 02:30 does not exist on 2027-03-14 in New York: it happens at 03:30.
        (
            "daily at 02:30",
            ["Sat 2027-03-13 02:30 EST", "Sun 2027-03-14 03:30 EDT", "Mon 2027-03-15 02:30 EDT"],
        ),
        # 01:30 happens twice on 2027-11-07: once, at the first.
        (
            "daily at 01:30",
            ["Sat 2027-11-06 01:30 EDT", "Sun 2027-11-07 01:30 EDT", "Mon 2027-11-08 01:30 EST"],
        ),
    ],
)
def test_a_household_meets_each_daily_slot_once_across_dst(
    schedule: str, expected: list[str]
) -> None:
    plan = plan_of(
        f"""
        [[rituals]]
        id = "night"
        kind = "custom"
        schedule = "{schedule}"
        to = "alex"
        message = "hello"
        """
    )
    first = date.fromisoformat(expected[0].split()[1])
    assert [r[2] for r in rows(plan.deliveries_between(first, 3))] == expected


def test_a_date_night_names_a_planner_and_nudges_them_three_days_ahead_by_default() -> None:
    plan = plan_of(
        """
        [[rituals]]
        id = "date-night"
        kind = "date_night"
        schedule = "weekly on fri at 19:00"
        """
    )
    deliveries = plan.deliveries_between(date(2027, 1, 8), 1)
    assert [(d.role, d.due_local.strftime("%a %H:%M")) for d in deliveries] == [
        ("plan_ahead", "Tue 19:00"),
        ("day_of", "Fri 19:00"),
        ("day_of", "Fri 19:00"),
    ]
    assert deliveries[0].occurrence.planners == (deliveries[0].partner,)


def test_waiting_out_quiet_hours_in_a_repeated_hour_never_moves_a_message_earlier() -> None:
    london = get_zone("Europe/London")
    quiet = TimeWindow.parse("22:00-01:30")
    # 01:10 GMT on 2025-10-26 is the second 01:10 in London; quiet ends at the second 01:30.
    due = datetime(2025, 10, 26, 1, 10, tzinfo=UTC)
    assert after_quiet_hours(due, quiet, london) == datetime(2025, 10, 26, 1, 30, tzinfo=UTC)
    # The first 01:10 (BST) waits for the first 01:30.
    first = datetime(2025, 10, 26, 0, 10, tzinfo=UTC)
    assert after_quiet_hours(first, quiet, london) == datetime(2025, 10, 26, 0, 30, tzinfo=UTC)


# ----------------------------------------------------------------------------- wording by channel

CHECK_IN = """
[[rituals]]
id = "check-in"
kind = "check_in"
schedule = "weekly on mon at 19:00"
remind_after = "2h"
"""
BOTH_CHANNELS = 'email = "alex@example.com"\n  channels = ["sms", "email"]'


def texts(plan: Plan) -> dict[tuple[str, str], Delivery]:
    return {(d.partner, d.role): d for d in plan.deliveries_between(date(2027, 1, 4), 1)}


def test_a_text_asks_for_a_reply_and_an_email_does_not_since_email_replies_are_not_read() -> None:
    found = texts(plan_of(CHECK_IN))
    alex, sam = found["alex", "day_of"], found["sam", "day_of"]
    item = alex.occurrence.item
    assert alex.channel == "sms"
    assert alex.text == (  # word for word as before
        "Check-in time, Alex. Open with one thing you appreciated this week, then: "
        f"{item} Reply DONE when you've talked."
    )
    assert sam.channel == "email"
    assert sam.text == (
        f"Check-in time, Sam. Open with one thing you appreciated this week, then: {item}"
    )
    assert found["alex", "reminder"].text == (
        "Did you two get to your check-in? Reply DONE, SKIP or SNOOZE 1h."
    )
    assert found["sam", "reminder"].text == "Did you two get to your check-in?"


@pytest.mark.parametrize("kind", ["date_night", "check_in", "appreciation", "custom"])
@pytest.mark.parametrize("role", ["day_of", "plan_ahead", "reminder"])
def test_no_built_in_email_asks_for_a_reply(kind: str, role: str) -> None:
    source = default_message(role, kind, "email")
    assert not re.search(r"(?i:\breply\b)|\bDONE\b|\bSKIP\b|\bSNOOZE\b", source)
    sms = default_message(role, kind, "sms")
    assert default_message(role, kind) == sms == default_message(role, kind, "console")


def test_a_delivery_carries_its_wording_for_the_partners_later_channels() -> None:
    found = texts(plan_of(CHECK_IN, alex=BOTH_CHANNELS))
    alex = found["alex", "day_of"]
    assert alex.channel == "sms" and alex.text.endswith("Reply DONE when you've talked.")
    fallback = dict(alex.fallback_texts)
    assert list(fallback) == ["email"]
    assert fallback["email"] == alex.text.removesuffix(" Reply DONE when you've talked.")
    # Sam has one channel: nothing else to word.
    assert found["sam", "day_of"].fallback_texts == ()


def test_a_ritual_of_its_own_words_each_channel_with_the_channel_variable() -> None:
    own = """
    [[rituals]]
    id = "walk"
    kind = "custom"
    schedule = "weekly on mon at 19:00"
    message = "Walk time, {{ partner }}.{% if channel == 'sms' %} Reply DONE after.{% endif %}"
    """
    found = texts(plan_of(own, alex=BOTH_CHANNELS))
    alex, sam = found["alex", "day_of"], found["sam", "day_of"]
    assert alex.text == "Walk time, Alex. Reply DONE after."
    assert dict(alex.fallback_texts) == {"email": "Walk time, Alex."}
    assert sam.text == "Walk time, Sam."
