"""Malformed ritual files: each problem is reported as ``FILE:LINE: dotted.path: message``."""

from __future__ import annotations

import re
import textwrap
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.loader import LoadedFile, RitualFileError, load_ritual_file, parse_ritual_file

TODAY = datetime(2026, 11, 25, tzinfo=UTC)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tend.toml"


def write(tmp_path: Path, text: str, name: str = "tend.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems_of(path: Path) -> RitualFileError:
    with pytest.raises(RitualFileError) as caught:
        load_ritual_file(path, today=TODAY)
    return caught.value


@dataclass(frozen=True)
class Expected:
    """One error line: its exact line and dotted path, and a distinctive part of the message."""

    line: int
    dotted: str
    says: str


# Each case is a whole (small) ritual file and every line `tend check` must print for it.
MALFORMED = [
    pytest.param(
        """\
        timezone = "UTC"
        [[households]]
        id = "h"
          [[households.partners]]
          id = "p"
          name = "Pat"
          phone = "+15550143"
        """,
        [Expected(7, "households.0.partners.0.phone", "too short: include the area code")],
        id="a phone number without its area code",
    ),
    pytest.param(
        """\
        timezone = "UTC"
        [[households]]
        id = "h"
        partners = [{ id = "p", name = "Pat" }, { id = "q", name = "Quinn" }]

        [[rituals]]
        id = "dates"
        kind = "date_night"
        schedule = "weekly on fri at 19:00"
        to = "each"
        planner = "p"
        """,
        [Expected(11, "rituals.0.planner", "nobody plans for the other")],
        id="a planner on a ritual each partner has alone",
    ),
    pytest.param(
        """\
        timezone = "UTC"
        [[households]]
        id = "h"
        partners = [{ id = "p", name = "Pat" }]

        [[rituals]]
        id = "talk"
        kind = "check_in"
        schedule = "weekly on sun at 19:30"
        households = []
        """,
        [Expected(10, "rituals.0.households", "empty: leave it out")],
        id="an empty list of households",
    ),
    pytest.param(
        """\
        timezone = "UTC"
        [[households]]
        id = "h"
        partners = [{ id = "p", name = "Pat" }]

        [[rituals]]
        id = "talk"
        kind = "check_in"
        schedule = "weekly on sun at 19:30"
        deck = "questons"
        message = "Ask: {{ item }}"
        """,
        [Expected(10, "rituals.0.deck", "unknown deck 'questons'")],
        id="a misspelt deck is reported once, not again at {{ item }}",
    ),
    pytest.param(
        """\
        timezone = "UTC"
        [[households]]
        id = "h"
        partners = [{ id = "p", name = "Pat" }]

        [[rituals]]
        id = "nudges"
        kind = "appreciation"
        schedule = { times = 5, per = "day", between = "14:00-16:00" }
        """,
        [Expected(9, "rituals.0.schedule", "cannot be an hour apart inside 14:00-16:00")],
        id="a random window too small for its draws",
    ),
    pytest.param(
        """\
        timezone = "UTC"
        [[households]]
        id = "h"
        name = = "Pat"
        """,
        [Expected(4, "toml", "not valid TOML: Invalid value")],
        id="a TOML syntax error at the line tomllib names",
    ),
    pytest.param(
        """\
        timezone = "UTC"
        colour = "blue"
        [[households]]
        id = "h"
        partners = [{ id = "p", name = "Pat" }]
        """,
        [Expected(2, "colour", "unknown key 'colour'")],
        id="an unknown top-level key",
    ),
    pytest.param(
        """\
        timezone = "UTC"

        [[households]]
        id = "h"

          [[households.partners]]
          name = "Pat"
          phone = "+15551230001"
        """,
        [Expected(6, "households.0.partners.0.id", "missing required key 'id'")],
        id="a partner without an id at its table header",
    ),
    pytest.param(
        """\
        timezone = "UTC"

        [[households]]
        id = "h"

          [[households.partners]]
          id = "pat"
          name = "Pat"
          phone = "+1555"
        """,
        [Expected(9, "households.0.partners.0.phone", "not a possible phone number")],
        id="a phone number that is not E.164",
    ),
    pytest.param(
        """\
        timezone = "UTC"

        [[households]]
        id = "h"

          [[households.partners]]
          id = "pat"
          name = "Pat"
          phone = "5551230001"
        """,
        [Expected(9, "households.0.partners.0.phone", "E.164 form with a '+'")],
        id="a phone number without a plus",
    ),
    pytest.param(
        """\
        timezone = "UTC"

        [[households]]
        id = "h"

          [[households.partners]]
          id = "pat"
          name = "Pat"
          email = "pat.example.com"
        """,
        [Expected(9, "households.0.partners.0.email", "not a valid email address")],
        id="an email address without an at sign",
    ),
    pytest.param(
        """\
        timezone = "UTC"

        [[households]]
        id = "h"

          [[households.partners]]
          id = "pat"
          name = "Pat"
          phone = "+15551230001"
          channels = ["sms", "pigeon"]
        """,
        [Expected(10, "households.0.partners.0.channels.1", "'sms', 'email' or 'console'")],
        id="an unknown channel",
    ),
    pytest.param(
        """\
        timezone = "UTC"

        [[households]]
        id = "h"

          [[households.partners]]
          id = "pat"
          name = "Pat"
          email = "pat@example.com"
          channels = ["email", "sms"]
        """,
        [Expected(10, "households.0.partners.0.channels", "'sms' but the partner has no phone")],
        id="the sms channel for a partner without a phone",
    ),
    pytest.param(
        """\
        [[households]]
        id = "h"
        timezone = "Mars/Olympus_Mons"
        partners = [{ id = "p", name = "Pat" }]
        """,
        [Expected(3, "households.0.timezone", "unknown time zone 'Mars/Olympus_Mons'")],
        id="an unknown household time zone",
    ),
    pytest.param(
        """\
        timezone = "UTC"

        [[households]]
        id = "h"

          [[households.partners]]
          id = "pat"
          name = "Pat"
          timezone = "Europe/Atlantis"
        """,
        [Expected(9, "households.0.partners.0.timezone", "unknown time zone 'Europe/Atlantis'")],
        id="an unknown partner time zone",
    ),
    pytest.param(
        """\
        # no default zone here

        [[households]]
        id = "h"
        partners = [{ id = "p", name = "Pat" }]
        """,
        [Expected(3, "households.0", "no time zone")],
        id="no time zone anywhere at the household",
    ),
    pytest.param(
        """\
        timezone = "UTC"

        [[households]]
        id = "h"
        partners = [{ id = "p", name = "Pat" }]

        [[households]]
        id = "h"
        partners = [{ id = "q", name = "Quinn" }]
        """,
        [Expected(8, "households.1.id", "duplicate id 'h'")],
        id="a duplicate household id at the second one",
    ),
    pytest.param(
        """\
        timezone = "UTC"

        [[households]]
        id = "h"

          [[households.partners]]
          id = "pat"
          name = "Pat"

          [[households.partners]]
          id = "pat"
          name = "Patricia"
        """,
        [Expected(11, "households.0.partners.1.id", "duplicate id 'pat'")],
        id="a duplicate partner id at the second one",
    ),
    pytest.param(
        """\
        timezone = "UTC"
        [[households]]
        id = "h"
        partners = [{ id = "p", name = "Pat" }]

        [[rituals]]
        id = "hello"
        kind = "custom"
        schedule = "daily at 09:00"
        message = "Hello"

        [[rituals]]
        id = "hello"
        kind = "custom"
        schedule = "daily at 19:00"
        message = "Good evening"
        """,
        [Expected(13, "rituals.1.id", "duplicate id 'hello'")],
        id="a duplicate ritual id at the second one",
    ),
    pytest.param(
        """\
        timezone = "UTC"
        [[households]]
        id = "h"
        partners = [{ id = "p", name = "Pat" }]

        [[rituals]]
        id = "talk"
        kind = "check_in"
        schedule = "weekly on sun at 19:30"
        deck = "questions-we-never-wrote"
        """,
        [Expected(10, "rituals.0.deck", "unknown deck 'questions-we-never-wrote'")],
        id="an unknown deck at the deck line",
    ),
    pytest.param(
        """\
        timezone = "UTC"
        [[households]]
        id = "h"
        partners = [{ id = "p", name = "Pat" }]

        [[rituals]]
        id = "talk"
        kind = "check_in"
        schedule = "weekly on sun at 19:30"
        deck = "tiny"

        [decks.tiny]
        description = "nothing yet"
        items = []
        """,
        # Only the deck itself: the ritual naming it is not told the deck is unknown.
        [Expected(14, "decks.tiny.items", "at least 1 item")],
        id="an empty deck at its items and not again at the ritual",
    ),
    pytest.param(
        """\
        timezone = "UTC"
        [[households]]
        id = "h"
        partners = [{ id = "pat", name = "Pat" }, { id = "sam", name = "Sam" }]

        [[rituals]]
        id = "thanks"
        kind = "appreciation"
        schedule = "daily at 12:00"
        to = "kim"
        """,
        [Expected(10, "rituals.0.to", "unknown partner 'kim' in household 'h'")],
        id="an unknown partner in to",
    ),
    pytest.param(
        """\
        timezone = "UTC"
        [[households]]
        id = "h"
        partners = [{ id = "pat", name = "Pat" }, { id = "sam", name = "Sam" }]

        [[rituals]]
        id = "date"
        kind = "date_night"
        schedule = "weekly on fri at 19:00"
        planner = "kim"
        plan_ahead = "2d"
        """,
        [Expected(10, "rituals.0.planner", "unknown partner 'kim' in household 'h'")],
        id="an unknown partner as planner",
    ),
    pytest.param(
        """\
        timezone = "UTC"
        [[households]]
        id = "h"
        partners = [{ id = "p", name = "Pat" }]

        [[rituals]]
        id = "talk"
        kind = "check_in"
        schedule = "weekly on sun at 19:30"
        households = [
          "h",
          "nope",
        ]
        """,
        [Expected(12, "rituals.0.households.1", "unknown household 'nope'")],
        id="an unknown household in households at its element",
    ),
    pytest.param(
        """\
        timezone = "UTC"
        [[households]]
        id = "h"
        partners = [{ id = "p", name = "Pat" }]

        [[rituals]]
        id = "hello"
        kind = "custom"
        schedule = "daily at 09:00"
        message = "Morning, {{ nickname }}!"
        """,
        [Expected(10, "rituals.0.message", "undefined variable 'nickname'")],
        id="a template using an undefined variable",
    ),
    pytest.param(
        """\
        timezone = "UTC"
        [[households]]
        id = "h"
        partners = [{ id = "p", name = "Pat" }]

        [[rituals]]
        id = "hello"
        kind = "custom"
        schedule = "daily at 09:00"
        message = "Psst: {{ item }}"
        """,
        [Expected(10, "rituals.0.message", "undefined variable 'item'")],
        id="a template using item in a ritual without a deck",
    ),
    pytest.param(
        """\
        timezone = "UTC"
        [[households]]
        id = "h"
        partners = [{ id = "p", name = "Pat" }]

        [[rituals]]
        id = "hello"
        kind = "custom"
        schedule = "daily at 09:00"
        message = "Morning, {{ partner }"
        """,
        [Expected(10, "rituals.0.message", "template syntax")],
        id="a template syntax error",
    ),
    pytest.param(
        """\
        timezone = "UTC"

        [[households]]
        id = "h"

          [[households.partners]]
          id = "pat"
          name = "Pat"
          quiet_hours = "08:00-08:00"
        """,
        [Expected(9, "households.0.partners.0.quiet_hours", "covers the whole day")],
        id="quiet hours covering the whole day",
    ),
    pytest.param(
        """\
        timezone = "UTC"

        [[households]]
        id = "h"

          [[households.partners]]
          id = "pat"
          name = "Pat"
          quiet_hours = "10pm-8am"
        """,
        [Expected(9, "households.0.partners.0.quiet_hours", "is not a time of day")],
        id="quiet hours that are not a span of times",
    ),
    pytest.param(
        """\
        timezone = "UTC"
        [[households]]
        id = "h"
        partners = [{ id = "p", name = "Pat" }]

        [[rituals]]
        id = "hello"
        kind = "custom"
        schedule = "whenever we feel like it"
        message = "Hello"
        """,
        [Expected(9, "rituals.0.schedule", "cannot read schedule 'whenever we feel like it'")],
        id="a schedule that cannot be parsed",
    ),
    pytest.param(
        """\
        timezone = "UTC"
        [[households]]
        id = "h"
        partners = [{ id = "p", name = "Pat" }]

        [[rituals]]
        id = "hello"
        kind = "custom"
        schedule = "cron: 0 9 * *"
        message = "Hello"
        """,
        [Expected(9, "rituals.0.schedule", "needs 5 fields")],
        id="a cron line with four fields",
    ),
    pytest.param(
        """\
        timezone = "UTC"
        [[households]]
        id = "h"
        partners = [{ id = "p", name = "Pat" }]

        [[rituals]]
        id = "hello"
        kind = "custom"
        schedule = "cron: 0 9 31 2 *"
        message = "Hello"
        """,
        [Expected(9, "rituals.0.schedule", "never fires after 2026-11-25")],
        id="a cron line that never fires",
    ),
    pytest.param(
        """\
        timezone = "UTC"
        [[households]]
        id = "h"
        partners = [{ id = "p", name = "Pat" }]

        [[rituals]]
        id = "hello"
        kind = "custom"
        schedule = "rrule: FREQ=DAILY;BYHOUR=9;UNTIL=20200101T000000"
        message = "Hello"
        """,
        [Expected(9, "rituals.0.schedule", "never fires after 2026-11-25")],
        id="a recurrence rule that ended before any ritual could start",
    ),
    pytest.param(
        """\
        timezone = "UTC"
        [[households]]
        id = "h"
        partners = [{ id = "p", name = "Pat" }]

        [[rituals]]
        id = "hello"
        kind = "custom"
        schedule = "cron: */10 * * * *"
        message = "Hello"
        """,
        [Expected(9, "rituals.0.schedule", "fires more than once an hour")],
        id="a schedule firing more than hourly",
    ),
    pytest.param(
        """\
        timezone = "UTC"
        [[households]]
        id = "h"
        partners = [{ id = "p", name = "Pat" }]

        [[rituals]]
        id = "thanks"
        kind = "appreciation"
        schedule = { times = 3, per = "week", between = "20:00-10:00" }
        """,
        [Expected(9, "rituals.0.schedule", "'20:00-10:00' must start before it ends")],
        id="a random window that crosses midnight",
    ),
    pytest.param(
        """\
        timezone = "Europe/Paris"

        [[households]]
        id = "h"

          [[households.partners]]
          id = "pat"
          name = "Pat"
          quiet_hours = "21:00-09:00"

          [[households.partners]]
          id = "sam"
          name = "Sam"
          quiet_hours = "08:00-10:00"

        [[rituals]]
        id = "thanks"
        kind = "appreciation"
        schedule = { times = 2, per = "week", between = "07:00-10:00" }
        """,
        [Expected(19, "rituals.0.schedule", "falls in a partner's quiet hours")],
        id="a random window inside the partners' quiet hours",
    ),
    pytest.param(
        """\
        timezone = "UTC"
        [[households]]
        id = "h"
        partners = [{ id = "p", name = "Pat" }]

        [[rituals]]
        id = "date"
        kind = "date_night"
        schedule = "weekly on fri at 19:00"
        plan_ahead = "soon"
        """,
        [Expected(10, "rituals.0.plan_ahead", "'soon' is not a duration")],
        id="a duration that is not one",
    ),
    pytest.param(
        """\
        timezone = "UTC"
        [[households]]
        id = "h"
        partners = [{ id = "p", name = "Pat" }]

        [[rituals]]
        id = "date"
        kind = "date_night"
        schedule = "weekly on fri at 19:00"
        grace = 30
        """,
        # A bare number would silently mean 30 seconds.
        [Expected(10, "rituals.0.grace", "a duration is a string like '2h'")],
        id="a duration written as a bare number",
    ),
    pytest.param(
        """\
        timezone = "UTC"
        [[households]]
        id = "h"
        partners = [{ id = "p", name = "Pat" }]

        [[rituals]]
        id = "hug"
        kind = "custom"
        schedule = "daily at 18:00"
        """,
        [Expected(6, "rituals.0.message", "a custom ritual needs a message")],
        id="a custom ritual without a message at its table header",
    ),
    pytest.param(
        """\
        timezone = "Mars/Olympus_Mons"
        [[households]]
        id = "h"
        partners = [{ id = "p", name = "Pat" }]

        [[rituals]]
        id = "thanks"
        kind = "appreciation"
        schedule = { times = 1, per = "day", between = "10:00-12:00" }
        """,
        # Said once, where it is written; not as "no time zone" at the household.
        [Expected(1, "timezone", "unknown time zone 'Mars/Olympus_Mons'")],
        id="an unknown default time zone once at its own line",
    ),
    pytest.param(
        """\
        timezone = "UTC"
        [[households]]
        id = "h"
        partners = [{ id = "p", name = "Pat", phone = "+15551230001" }]

        [[rituals]]
        id = "talk"
        kind = "custom"
        schedule = "weekly on sun at 19:30"
        message = "Talk, {{ partner }}."
        plan_ahead_message = "{{ partner | nofilter }}"
        planner = "p"
        plan_ahead = "1d"
        """,
        [Expected(11, "rituals.0.plan_ahead_message", "No filter named 'nofilter'")],
        id="an unknown Jinja filter",
    ),
    pytest.param(
        """\
        timezone = "UTC"
        [[households]]
        id = "h"
        partners = [{ id = "p", name = "Pat", phone = "+15551230001" }]

        [[rituals]]
        id = "talk"
        kind = "custom"
        schedule = "weekly on sun at 19:30"
        message = "{{ lipsum(10**8) }}"
        """,
        [Expected(10, "rituals.0.message", "undefined variable 'lipsum'")],
        id="lipsum, which writes a book",
    ),
    pytest.param(
        """\
        timezone = "UTC"
        [[households]]
        id = "h"
        partners = [{ id = "p", name = "Pat", phone = "+15551230001" }]

        [[rituals]]
        id = "talk"
        kind = "custom"
        schedule = "weekly on sun at 19:30"
        message = "{% for i in range(5000) %}{% for j in range(5000) %}{% endfor %}{% endfor %}"
        """,
        [Expected(10, "rituals.0.message", "too much work for a message")],
        id="loops that would run for hours",
    ),
    pytest.param(
        """\
        timezone = "UTC"
        [[households]]
        id = "h"
        partners = [{ id = "p", name = "Pat", phone = "+15551230001" }]

        [[rituals]]
        id = "talk"
        kind = "custom"
        schedule = "weekly on sun at 19:30"
        message = "{{ 'x'*16*16*16*16*16*16 }}"
        """,
        [Expected(10, "rituals.0.message", "too large for a message")],
        id="a repetition that builds 16 million characters",
    ),
    pytest.param(
        """\
        timezone = "UTC"
        [[households]]
        id = "h"
        partners = [{ id = "p", name = "Pat", phone = "+15551230001" }]

        [[rituals]]
        id = "talk"
        kind = "custom"
        schedule = "weekly on sun at 19:30"
        message = "{% for i in range(500) %}{{ partner }} {% endfor %}"
        """,
        [Expected(10, "rituals.0.message", "longer than one SMS can be")],
        id="a message longer than an SMS can be",
    ),
    pytest.param(
        """\
        timezone = "UTC"
        [[households]]
        id = "h"
        partners = [{ id = "p", name = "Pat", phone = "+15551230001" }]

        [[rituals]]
        id = "talk"
        kind = "custom"
        schedule = "weekly on sun at 19:30"
        message = "Hi"
        freezes_per_month = true
        """,
        [Expected(11, "rituals.0.freezes_per_month", "valid integer")],
        id="a number of freezes written as true",
    ),
    pytest.param(
        """\
        timezone = "UTC"
        [[households]]
        id = "h"
        partners = [{ id = "p", name = "Pat", phone = "+15551230001" }]

        [[rituals]]
        id = "talk"
        kind = "custom"
        schedule = "rrule: FREQ=WEEKLY;INTERVAL=1000000;BYDAY=MO;BYHOUR=9;BYMINUTE=0"
        message = "Hi"
        """,
        [Expected(9, "rituals.0.schedule", "years between rounds")],
        id="an rrule interval past any date Python can hold",
    ),
    pytest.param(
        """\
        timezone = "UTC"
        [[households]]
        id = "h"
        partners = [{ id = "p", name = "Pat", phone = "+15551230001" }]

        [[rituals]]
        id = "talk"
        kind = "custom"
        schedule = "rrule: FREQ=DAILY;INTERVAL=999999999;BYHOUR=9;BYMINUTE=0"
        message = "Hi"
        """,
        [Expected(9, "rituals.0.schedule", "years between rounds")],
        id="a daily rrule interval of a billion days",
    ),
    pytest.param(
        """\
        timezone = "UTC"
        [[households]]
        id = "h"
        partners = [
          { id = "p", name = "Pat", phone = "+15551230001" },
          { id = "q", name = "Quinn", phone = "+1 555 123 0001" },
        ]

        [[rituals]]
        id = "talk"
        kind = "custom"
        schedule = "weekly on sun at 19:30"
        message = "Hi"
        """,
        [Expected(6, "households.0.partners.1.phone", "the same number as partner 'p'")],
        id="two partners of a household on one number",
    ),
    pytest.param(
        """\
        timezone = "UTC"
        [[households]]
        id = "h"
        partners = [{ id = "p", name = "Pat", phone = "+15551230002x5" }]

        [[rituals]]
        id = "talk"
        kind = "custom"
        schedule = "weekly on sun at 19:30"
        message = "Hi"
        """,
        [Expected(4, "households.0.partners.0.phone", "has an extension (5)")],
        id="a phone number with an extension",
    ),
]


@pytest.mark.parametrize(("text", "expected"), MALFORMED)
def test_it_reports_a_malformed_file_at_the_exact_line_and_path(
    tmp_path: Path, text: str, expected: list[Expected]
) -> None:
    path = write(tmp_path, text)
    error = problems_of(path)
    assert [(p.line, p.dotted) for p in error.problems] == [(e.line, e.dotted) for e in expected]
    lines = error.lines()
    assert len(lines) == len(expected)
    for line, want in zip(lines, expected, strict=True):
        prefix = f"{path}:{want.line}: {want.dotted}: "
        assert line.startswith(prefix), line
        assert want.says in line.removeprefix(prefix), line


def test_there_are_at_least_eighteen_malformed_cases() -> None:
    assert len(MALFORMED) >= 18


def test_it_points_at_the_element_of_a_multi_line_array(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        timezone = "UTC"
        [[households]]
        id = "h"
        partners = [{ id = "p", name = "Pat" }]

        [[rituals]]
        id = "talk"
        kind = "check_in"
        schedule = "weekly on sun at 19:30"
        deck = "ours"

        [decks.ours]
        items = [
          "What made you laugh this week?",
          "What are you looking forward to?",
          "   ",
          "What should we stop doing?",
        ]
        """,
    )
    error = problems_of(path)
    assert [(p.line, p.dotted) for p in error.problems] == [(16, "decks.ours.items.2")]
    assert error.lines()[0].startswith(f"{path}:16: decks.ours.items.2: ")


def test_it_reports_every_problem_at_once_sorted_by_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        timezone = "America/New_York"

        [[households]]
        id = "alex-sam"

          [[households.partners]]
          id = "alex"
          name = "Alex"
          phone = "+1555"

        [[rituals]]
        id = "check-in"
        kind = "check_in"
        schedule = "weekly on sun at 19:30"
        deck = "missing-deck"

        [[rituals]]
        id = "hug"
        kind = "custom"
        schedule = "cron: 0 18 * *"
        message = "Hug, {{ partner }}!"

        [decks.ours]
        items = "not a list"
        """,
    )
    error = problems_of(path)
    # Schema errors come first from pydantic, cross-table ones after; the report is by line.
    assert [(p.line, p.dotted) for p in error.problems] == [
        (9, "households.0.partners.0.phone"),
        (15, "rituals.0.deck"),
        (20, "rituals.1.schedule"),
        (24, "decks.ours.items"),
    ]
    lines = error.lines()
    assert lines[0].startswith(f"{path}:9: households.0.partners.0.phone: ")
    assert "not a possible phone number" in lines[0]
    assert lines[1].startswith(f"{path}:15: rituals.0.deck: unknown deck 'missing-deck'")
    assert lines[2].startswith(f"{path}:20: rituals.1.schedule: cron: needs 5 fields")
    assert lines[3].startswith(f"{path}:24: decks.ours.items: ")
    assert str(error) == "\n".join(lines)


# A table the schema refuses is still checked for the rest of what it says, and nothing is
# reported because of a value left out: each case is a file and every (line, path) it gets.
REFUSED_AND_THE_REST = [
    pytest.param(
        """\
        [[households]]
        id = "h"
        timezone = "Mars/Olympus"
        partners = [{ id = "pat", name = "Pat" }]
        """,
        [(3, "households.0.timezone")],
        id="a zone that does not parse is not also no zone",
    ),
    pytest.param(
        """\
        timezone = "UTC"
        [[households]]
        id = "h"
        partners = [{ id = "pat", name = "Pat", phone = "+1555", channels = ["sms"] }]

        [[rituals]]
        id = "call"
        kind = "custom"
        schedule = "daily at 19:00"
        message = "Call, {{ partner }}"
        to = "pat"

        [[rituals]]
        id = "walk"
        kind = "custom"
        schedule = "daily at 08:00"
        message = "Walk, {{ partner }}"
        to = "kim"
        """,
        [(4, "households.0.partners.0.phone"), (18, "rituals.1.to")],
        id="a partner whose phone is refused is still a partner others name",
    ),
    pytest.param(
        """\
        timezone = "UTC"
        [[households]]
        id = "h"
        partners = [{ id = "pat", name = "Pat" }]

        [[rituals]]
        id = "hug"
        kind = "custom"
        schedule = "daily at 18:00"
        message = 3
        deck = "no-such-deck"
        """,
        [(10, "rituals.0.message"), (11, "rituals.0.deck")],
        id="a message that is not text is not also a missing message",
    ),
    pytest.param(
        """\
        timezone = "UTC"
        [[households]]
        id = "h"
        partners = [{ id = "pat", name = "Pat" }]

        [[rituals]]
        id = "hug"
        kind = "custom"
        schedule = "every 0 weeks on fri at 19:00"
        message = "Hug, {{ partnr }}"
        """,
        [(9, "rituals.0.schedule"), (10, "rituals.0.message")],
        id="a schedule that does not parse and a template in the same ritual",
    ),
    pytest.param(
        """\
        timezone = "UTC"
        [[households]]
        id = "h"
        partners = [{ id = "pat", name = "Pat" }, { id = "sam", name = "Sam" }]

        [[rituals]]
        id = "dates"
        kind = "date_night"
        schedule = "weekly on fri at 19:00"
        planner = 5
        plan_ahead = "2d"
        """,
        [(10, "rituals.0.planner")],
        id="a planner that is not text is not also plan_ahead without a planner",
    ),
    pytest.param(
        """\
        timezone = "UTC"
        [[households]]
        id = "h"
        timezone = "Europe/Bxrlin"
        partners = [{ id = "pat", name = "Pat", quiet_hours = "20:00-10:00" }]

        [[rituals]]
        id = "thanks"
        kind = "appreciation"
        schedule = { times = 2, per = "week", between = "08:00-09:00" }
        to = "pat"
        """,
        [(4, "households.0.timezone")],
        id="no firing check on the default zone of a household whose own zone is refused",
    ),
    pytest.param(
        """\
        timezone = "UTC"
        [[households]]
        id = "h"
        partners = [{ id = "Pat!", name = "Pat" }]

        [[rituals]]
        id = "call"
        kind = "custom"
        schedule = "daily at 19:00"
        message = "Call"
        to = "pat"
        """,
        [(4, "households.0.partners.0.id")],
        id="a household without its ids is not used to judge the partners rituals name",
    ),
    pytest.param(
        """\
        timezone = "UTC"
        [[households]]
        id = "h"
        partners = [{ id = "pat", name = "Pat", phone = "+15551230001", channels = ["fax"] }]

        [[rituals]]
        id = "letter"
        kind = "custom"
        schedule = "weekly on sun at 10:00"
        message = "LONG"
        """.replace("LONG", "A long letter. " * 120),
        [(4, "households.0.partners.0.channels.0")],
        id="channels that are refused do not make a partner texted",
    ),
]


@pytest.mark.parametrize(("text", "expected"), REFUSED_AND_THE_REST)
def test_a_table_the_schema_refuses_is_still_checked_for_the_rest_of_it(
    tmp_path: Path, text: str, expected: list[tuple[int, str]]
) -> None:
    error = problems_of(write(tmp_path, text))
    assert [(p.line, p.dotted) for p in error.problems] == expected, error.lines()


def test_a_valid_file_loads_without_warnings() -> None:
    loaded = load_ritual_file(EXAMPLE, today=TODAY)
    assert isinstance(loaded, LoadedFile)
    assert loaded.path == str(EXAMPLE)
    assert loaded.warnings == []
    assert [h.id for h in loaded.file.households] == ["alex-sam"]
    assert [p.id for p in loaded.file.households[0].partners] == ["alex", "sam"]
    assert [r.id for r in loaded.file.rituals] == [
        "date-night",
        "check-in",
        "money-and-plans",
        "appreciation",
        "reunion",
    ]
    assert "reunion-prompts" in loaded.file.decks


def test_a_message_needing_more_than_two_sms_segments_is_a_warning_not_an_error(
    tmp_path: Path,
) -> None:
    long_message = "Hello {{ partner }}! " + "Remember to breathe together. " * 12
    path = write(
        tmp_path,
        f"""\
        timezone = "UTC"
        [[households]]
        id = "h"
        partners = [{{ id = "p", name = "Pat", phone = "+15551230001" }}]

        [[rituals]]
        id = "hello"
        kind = "custom"
        schedule = "daily at 09:00"
        message = "{long_message}"
        """,
    )
    loaded = load_ritual_file(path, today=TODAY)
    assert [(w.severity, w.line, w.dotted) for w in loaded.warnings] == [
        ("warning", 10, "rituals.0.message")
    ]
    [line] = loaded.warning_lines()
    assert line.startswith(f"{path}:10: rituals.0.message: warning: ")
    assert "needs 3 segments" in line


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.toml"
    error = problems_of(path)
    assert error.lines() == [
        f"{path}:1: (file): no such file (give --config FILE or set TEND_CONFIG)"
    ]


def warnings_of(tmp_path: Path, text: str) -> list[str]:
    loaded = load_ritual_file(write(tmp_path, text), today=TODAY)
    return [line.split(": ", 1)[1] for line in loaded.warning_lines()]


def test_a_ritual_that_has_ended_is_a_warning_so_yesterdays_good_file_stays_good(
    tmp_path: Path,
) -> None:
    [line] = warnings_of(
        tmp_path,
        """\
        timezone = "UTC"
        [[households]]
        id = "h"
        partners = [{ id = "p", name = "Pat" }]

        [[rituals]]
        id = "hello"
        kind = "custom"
        schedule = "rrule: FREQ=DAILY;BYHOUR=9;UNTIL=20260601T000000"
        message = "Hello"
        """,
    )
    assert line.startswith("rituals.0.schedule: warning: ")
    assert "has ended: it fires no more after" in line


def test_quiet_hours_written_the_wrong_way_round_get_a_warning(tmp_path: Path) -> None:
    assert warnings_of(
        tmp_path,
        """\
        timezone = "Europe/London"
        [[households]]
        id = "h"
          [[households.partners]]
          id = "mia"
          name = "Mia"
          quiet_hours = "07:00-22:30"
        """,
    ) == [
        "households.0.partners.0.quiet_hours: warning: 07:00-22:30 keeps 15h30m quiet, "
        "midday included; did you mean '22:30-07:00'?"
    ]


def test_a_zone_that_is_not_a_place_gets_a_warning(tmp_path: Path) -> None:
    [line] = warnings_of(
        tmp_path,
        """\
        [[households]]
        id = "h"
        timezone = "EST"
        partners = [{ id = "p", name = "Pat" }]
        """,
    )
    assert line.startswith("households.0.timezone: warning: 'EST' is not a place")


def test_a_ritual_that_always_falls_in_quiet_hours_gets_a_warning(tmp_path: Path) -> None:
    [line] = warnings_of(
        tmp_path,
        """\
        timezone = "America/New_York"
        [[households]]
        id = "h"
          [[households.partners]]
          id = "mia"
          name = "Mia"
          timezone = "Europe/London"
          quiet_hours = "22:30-07:00"

        [[rituals]]
        id = "call"
        kind = "custom"
        schedule = "daily at 19:30"
        message = "Video call at {{ time }}?"
        """,
    )
    assert line == (
        "rituals.0.schedule: warning: 00:30 (Europe/London) falls in Mia's quiet hours "
        "(22:30-07:00): their messages will wait until 07:00"
    )


ELSEWHERE = """\
timezone = "Europe/Berlin"

[[households]]
id = "h"

  [[households.partners]]
  id = "pat"
  name = "Pat"

  [[households.partners]]
  id = "sam"
  name = "Sam"
  timezone = "America/New_York"
  quiet_hours = "00:00-09:00"

[[rituals]]
id = "thanks"
kind = "appreciation"
schedule = {{ times = 2, per = "week", between = "08:00-10:00" }}
to = "{to}"
"""


@pytest.mark.parametrize("to", ["each", "sam"])
def test_a_window_for_one_partner_is_checked_on_their_own_clock(tmp_path: Path, to: str) -> None:
    # 08:00-10:00 in Berlin is quiet in New York; 09:00-10:00 in New York is not.
    assert warnings_of(tmp_path, ELSEWHERE.format(to=to)) == []


def test_a_shared_window_is_checked_on_the_households_clock(tmp_path: Path) -> None:
    error = problems_of(write(tmp_path, ELSEWHERE.format(to="both")))
    assert [(p.line, p.dotted) for p in error.problems] == [(19, "rituals.0.schedule")]
    assert "never fires for household 'h'" in error.lines()[0]


def test_the_sms_length_warning_uses_the_decks_longest_item(tmp_path: Path) -> None:
    long_item = "Ask about " + "the small things, " * 16
    [line] = warnings_of(
        tmp_path,
        f"""\
        timezone = "UTC"
        [[households]]
        id = "h"
        partners = [{{ id = "p", name = "Pat" }}]

        [[rituals]]
        id = "talk"
        kind = "check_in"
        schedule = "weekly on sun at 19:30"
        deck = "mine"

        [decks.mine]
        items = ["Short one?", "{long_item}"]
        """,
    )
    assert line.startswith("rituals.0.message: warning: an SMS of this message needs 3 segments")
    assert "with the item 'Ask about the small things" in line


def test_a_template_that_fails_only_with_a_real_name_is_an_error_at_its_line(
    tmp_path: Path,
) -> None:
    error = problems_of(
        write(
            tmp_path,
            """\
            timezone = "UTC"
            [[households]]
            id = "h"
            partners = [{ id = "sam", name = "Sam" }]

            [[rituals]]
            id = "hi"
            kind = "custom"
            schedule = "daily at 09:00"
            message = "Hi {{ partner[3] }}"
            """,
        )
    )
    [line] = error.lines()
    assert line.startswith(f"{tmp_path / 'tend.toml'}:10: rituals.0.message: ")
    assert "with this file's names and deck items" in line


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ('"{{ 1 // 0 }}"', "ZeroDivisionError"),
        ('"{{ item[45] }}"', "has no element 45"),
    ],
)
def test_a_template_that_raises_is_an_error_not_a_crash(
    tmp_path: Path, value: str, says: str
) -> None:
    error = problems_of(
        write(
            tmp_path,
            f"""\
            timezone = "UTC"
            [[households]]
            id = "h"
            partners = [{{ id = "p", name = "Pat" }}]

            [[rituals]]
            id = "talk"
            kind = "check_in"
            schedule = "weekly on sun at 19:30"
            message = {value}

            [decks.check-in-questions]
            items = ["Short one?"]
            """,
        )
    )
    [line] = error.lines()
    assert ":10: rituals.0.message: " in line
    assert says in line


def test_deeply_nested_toml_is_an_error_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "tend.toml"
    path.write_text("extra = " + "[" * 2000 + "]" * 2000 + "\n", encoding="utf-8")
    error = problems_of(path)
    assert error.lines()[0].startswith(f"{path}:")
    assert "not valid TOML" in error.lines()[0]


def test_a_duration_beyond_a_year_is_an_error(tmp_path: Path) -> None:
    error = problems_of(
        write(
            tmp_path,
            """\
            timezone = "UTC"
            [[households]]
            id = "h"
            partners = [{ id = "p", name = "Pat" }]

            [[rituals]]
            id = "talk"
            kind = "check_in"
            schedule = "weekly on sun at 19:30"
            remind_after = "2000000w"
            """,
        )
    )
    assert [(p.line, p.dotted) for p in error.problems] == [(10, "rituals.0.remind_after")]
    assert "at most 366d" in error.lines()[0]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('name = "Sam"', 'name = "Sam\\nBcc: eve@example.com"', "one line of printable text"),
        ('name = "Sam"', 'name = "Sam\\u2028x"', "one line of printable text"),
        ('name = "Sam"', 'name = "Sam\\u202eevil"', "one line of printable text"),
        ('name = "Sam"', 'name = "Sam =?utf-8?q?=0D=0A?="', "must not contain '=?'"),
        ('id = "date-night"', 'id = "date-night"\ntitle = "Date\\rnight"', "one line"),
    ],
)
def test_names_and_titles_are_one_line_of_text(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    # They go into e-mail headers (To, Subject) and SMS: a line break or an encoded word
    # could add header lines of their own.
    text = EXAMPLE.read_text().replace(old, new, 1)
    error = problems_of(write(tmp_path, text))
    assert any(message in line for line in error.lines()), error.lines()


def test_a_name_with_an_emoji_sequence_is_fine(tmp_path: Path) -> None:
    name = "Sam \u2764\ufe0f\u200d\U0001f525"  # a zero-width joiner is not a control
    text = EXAMPLE.read_text().replace('name = "Sam"', f'name = "{name}"', 1)
    file = load_ritual_file(write(tmp_path, text), today=TODAY).file
    assert file.households[0].partners[1].name == name


def test_a_byte_order_mark_at_the_start_is_accepted(tmp_path: Path) -> None:
    # Notepad and some other Windows editors write one before UTF-8 text.
    path = tmp_path / "tend.toml"
    path.write_bytes(b"\xef\xbb\xbf" + EXAMPLE.read_bytes())
    loaded = load_ritual_file(path, today=TODAY)
    assert loaded.file == load_ritual_file(EXAMPLE, today=TODAY).file


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_a_byte_that_is_not_utf8_is_reported_at_its_own_line(tmp_path: Path, bom: bytes) -> None:
    path = tmp_path / "tend.toml"
    text = EXAMPLE.read_bytes().replace(b'name = "Sam"', b'name = "S\xe9m"')  # Latin-1
    path.write_bytes(bom + text)
    line = text[: text.index(b"S\xe9m")].count(b"\n") + 1
    [problem] = problems_of(path).lines()
    assert problem == (
        f"{path}:{line}: (file): not UTF-8: byte 0xe9 at column 12; save the file as UTF-8"
    )


# Any value in any field: the loader reports problems, and never raises anything else.
_VALUES = st.one_of(
    st.text(max_size=60),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.booleans(),
    st.floats(allow_nan=True),
    st.lists(st.text(max_size=5), max_size=3),
    st.builds(
        lambda n, f: f"rrule: FREQ={f};INTERVAL={n};BYHOUR=9;BYMINUTE=0",
        st.integers(min_value=-5, max_value=10**18),
        st.sampled_from(["YEARLY", "MONTHLY", "WEEKLY", "DAILY", "HOURLY"]),
    ),
    st.builds(lambda s: "{{ " + s + " }}", st.text(max_size=30)),
)
_FIELDS = [
    ("rituals", 0, "schedule"),
    ("rituals", 0, "message"),
    ("rituals", 0, "plan_ahead"),
    ("rituals", 0, "grace"),
    ("rituals", 0, "freezes_per_month"),
    ("rituals", 0, "reply_window"),
    ("rituals", 2, "schedule"),
    ("households", 0, "timezone"),
    ("households", 0, "partners", 0, "phone"),
    ("households", 0, "partners", 0, "quiet_hours"),
    ("households", 0, "partners", 1, "timezone"),
    ("decks", "reunion-prompts", "items"),
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changes=st.lists(st.tuples(st.sampled_from(_FIELDS), _VALUES), min_size=1, max_size=3))
def test_whatever_a_field_holds_the_loader_reports_problems_and_never_crashes(
    changes: list[tuple[tuple[str | int, ...], object]],
) -> None:
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    for path, value in changes:
        table = data
        for part in path[:-1]:
            table = table[part]
        table[path[-1]] = value
    try:
        text = tomli_w.dumps(data)
    except (TypeError, ValueError):  # a value TOML cannot hold (NaN is fine, None is not)
        return
    try:
        parse_ritual_file(text, name="tend.toml", today=TODAY)
    except RitualFileError as exc:
        assert all(re.match(r"tend\.toml:\d+: ", line) for line in exc.lines())


REPLYING = """\
timezone = "UTC"
[[households]]
id = "h"

  [[households.partners]]
  id = "p"
  name = "Pat"
  phone = "+15551230001"
  email = "pat@example.com"
  channels = {channels}

[[rituals]]
id = "walk"
kind = "custom"
schedule = "daily at 09:00"
message = "{message}"
"""


def test_a_message_asking_an_email_for_a_reply_is_a_warning_naming_the_channel_variable(
    tmp_path: Path,
) -> None:
    [line] = warnings_of(
        tmp_path,
        REPLYING.format(
            channels='["sms", "email"]', message="Walk, {{ partner }}. Reply DONE after."
        ),
    )
    assert line.startswith("rituals.0.message: warning: ")
    assert "e-mail replies are not read" in line
    assert "{% if channel" in line


@pytest.mark.parametrize(
    ("channels", "message"),
    [
        pytest.param('["sms"]', "Walk. Reply DONE after.", id="texts-only"),
        pytest.param(
            '["sms", "email"]',
            "Walk.{% if channel != 'email' %} Reply DONE after.{% endif %}",
            id="worded-by-channel",
        ),
        pytest.param('["email"]', "Walk, {{ partner }}.", id="no-reply-asked"),
    ],
)
def test_a_message_that_asks_no_email_for_a_reply_is_no_warning(
    tmp_path: Path, channels: str, message: str
) -> None:
    assert warnings_of(tmp_path, REPLYING.format(channels=channels, message=message)) == []
