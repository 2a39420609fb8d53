"""The real ``tend`` command, run as a separate process exactly as users run it."""

from __future__ import annotations

import json
import re
import textwrap
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from icalendar import Calendar
from ritual_files import couple_file, partner_table
from tend_process import ERROR_LINE, ROOT, tend

EXAMPLE = ROOT / "examples" / "tend.toml"
EXAMPLE_RITUALS = ("date-night", "check-in", "money-and-plans", "appreciation", "reunion")
PLAN_KEYS = {
    "household",
    "ritual",
    "kind",
    "recipient",
    "channel",
    "due_local",
    "due_utc",
    "role",
    "item",
    "deck",
    "text",
}

# One household in New York, one partner by SMS without quiet hours, one ritual at 01:30:
# the hour that happens twice when the clocks go back on Sunday 2027-11-07.
NEW_YORK = """\
[[households]]
id = "night-owls"
timezone = "America/New_York"

  [[households.partners]]
  id = "pat"
  name = "Pat"
  phone = "+15551230001"
  channels = ["sms"]

[[rituals]]
id = "late-call"
kind = "custom"
schedule = "daily at {at}"
message = "Call each other, {{{{ partner }}}}. Reply DONE after."
"""

BROKEN = """\
timezone = "America/New_York"

[[households]]
id = "alex-sam"
partners = [{ id = "alex", name = "Alex", phone = "+1555" }]

[[rituals]]
id = "check-in"
kind = "check_in"
schedule = "cron: 30 19 * *"
"""


def write(directory: Path, text: str, name: str = "rituals.toml") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def plan_json(*args: str, cwd: Path) -> list[dict[str, Any]]:
    result = tend("plan", "--format", "json", *args, cwd=cwd)
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)  # the whole output is one JSON document
    assert isinstance(plan, list)
    return plan


@pytest.fixture
def new_york(tmp_path: Path) -> Path:
    return write(tmp_path, NEW_YORK.format(at="01:30"), "new-york.toml")


# -- tend check ---------------------------------------------------------------------------------


def test_check_accepts_the_example_and_prints_a_summary(tmp_path: Path) -> None:
    result = tend("check", "--config", str(EXAMPLE), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{EXAMPLE}: OK: 1 household, 2 partners, 5 rituals" in result.stdout
    for ritual in EXAMPLE_RITUALS:
        assert ritual in result.stdout


def test_check_on_a_broken_file_exits_2_with_file_line_path_message_on_stdout(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, BROKEN)
    result = tend("check", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stdout.splitlines()
    assert len(lines) == 2, result.stdout
    matches = [ERROR_LINE.match(line) for line in lines]
    assert all(matches), lines
    found = [(m["file"], int(m["line"]), m["path"]) for m in matches if m]
    assert found == [
        (str(path), 5, "households.0.partners.0.phone"),
        (str(path), 10, "rituals.0.schedule"),
    ]
    assert "needs 5 fields" in lines[1]


def test_check_reads_the_file_named_by_tend_config(tmp_path: Path, new_york: Path) -> None:
    elsewhere = tmp_path / "somewhere-else"
    elsewhere.mkdir()
    result = tend("check", cwd=elsewhere, env={"TEND_CONFIG": str(new_york)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{new_york}: OK: 1 household, 1 partner, 1 ritual" in result.stdout


def test_check_reads_tend_toml_in_the_working_directory(tmp_path: Path) -> None:
    write(tmp_path, NEW_YORK.format(at="01:30"), "tend.toml")
    result = tend("check", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "tend.toml: OK: 1 household, 1 partner, 1 ritual" in result.stdout


def test_check_prefers_the_config_option_to_tend_config(tmp_path: Path, new_york: Path) -> None:
    broken = write(tmp_path, BROKEN)
    result = tend(
        "check", "--config", str(new_york), cwd=tmp_path, env={"TEND_CONFIG": str(broken)}
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert str(new_york) in result.stdout


# Five independent mistakes: a zone and quiet hours that do not parse (the household fails
# its schema), a planner who is not a partner, and a ritual with both a schedule nobody can
# read and a deck that does not exist.
FIVE_MISTAKES = """\
timezone = "America/New_York"

[[households]]
id = "alex-sam"
timezone = "Mars/Olympus"

  [[households.partners]]
  id = "alex"
  name = "Alex"
  phone = "+15551230001"
  quiet_hours = "22:00-25:00"

  [[households.partners]]
  id = "sam"
  name = "Sam"
  phone = "+15551230002"

[[rituals]]
id = "date-night"
kind = "date_night"
schedule = "weekly on fri at 19:00"
planner = "jamie"

[[rituals]]
id = "check-in"
kind = "check_in"
schedule = "weekly on funday at 19:30"
deck = "no-such-deck"
"""


def test_check_reports_every_independent_mistake_in_one_run(tmp_path: Path) -> None:
    path = write(tmp_path, FIVE_MISTAKES)
    result = tend("check", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    matches = [ERROR_LINE.match(line) for line in result.stdout.splitlines()]
    assert all(matches), result.stdout
    found = [(m["file"], int(m["line"]), m["path"], m["msg"]) for m in matches if m]
    assert [(file, line, where) for file, line, where, _ in found] == [
        (str(path), 5, "households.0.timezone"),
        (str(path), 11, "households.0.partners.0.quiet_hours"),
        (str(path), 22, "rituals.0.planner"),
        (str(path), 27, "rituals.1.schedule"),
        (str(path), 28, "rituals.1.deck"),
    ], result.stdout
    messages = [message for *_, message in found]
    assert messages[0].startswith("unknown time zone 'Mars/Olympus'")
    assert messages[1].startswith("'25:00' is not a time of day")
    assert messages[2].startswith("unknown partner 'jamie' in household 'alex-sam'")
    assert "'funday' is not a day" in messages[3]
    assert messages[4].startswith("unknown deck 'no-such-deck'")


# A Berlin household whose second partner lives in New York, and a shared random window.
SHARED_RITUAL = """
[[rituals]]
id = "appreciation"
kind = "appreciation"
to = "{to}"
schedule = {{ times = 3, per = "week", between = "10:00-20:00" }}
"""


def shared_window(sam_zone: str | None, to: str) -> str:
    return couple_file(
        partner_table("alex", phone=True),
        partner_table("sam", phone=True, timezone=sam_zone),
        timezone="Europe/Berlin",
        rituals=SHARED_RITUAL.format(to=to),
    )


def test_check_warns_that_a_shared_window_is_on_the_households_clock_when_zones_differ(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, shared_window("America/New_York", "both"))
    result = tend("check", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    [line] = [line for line in result.stderr.splitlines() if ": warning: " in line]
    match = ERROR_LINE.match(line)
    assert match, line
    assert (match["file"], int(match["line"]), match["path"]) == (
        str(path),
        21,
        "rituals.0.schedule",
    )
    # Six hours apart most of the year, five for a few weeks around the clock changes.
    assert re.search(
        r"warning: with to = 'both' the window 10:00-20:00 is drawn on the clock of household "
        r"'alex-sam' \(Europe/Berlin\): for Sam \(America/New_York\) that is "
        r"0[45]:00-1[45]:00 \(on \d{4}-\d\d-\d\d\); with to = 'each' each partner gets it "
        r"on their own clock$",
        match["msg"],
    ), line


@pytest.mark.parametrize(
    ("sam_zone", "to"),
    [
        ("America/New_York", "each"),
        ("Europe/Berlin", "both"),
        (None, "both"),
    ],
)
def test_check_says_nothing_of_windows_each_partner_reads_on_their_own_clock(
    tmp_path: Path, sam_zone: str | None, to: str
) -> None:
    path = write(tmp_path, shared_window(sam_zone, to))
    result = tend("check", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "warning" not in result.stderr


def test_check_without_any_file_says_how_to_name_one(tmp_path: Path) -> None:
    result = tend("check", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout.splitlines() == [
        "tend.toml:1: (file): no such file (give --config FILE or set TEND_CONFIG)"
    ]


# -- tend plan: JSON ----------------------------------------------------------------------------


def test_plan_json_is_one_array_of_deliveries_with_the_documented_keys(tmp_path: Path) -> None:
    plan = plan_json("--config", str(EXAMPLE), "--from", "2026-11-30", "--days", "14", cwd=tmp_path)
    assert plan, "two weeks of the example plan something"
    assert {d["ritual"] for d in plan} == set(EXAMPLE_RITUALS)
    for delivery in plan:
        assert set(delivery) >= PLAN_KEYS, delivery
        assert delivery["household"] == "alex-sam"
        assert delivery["recipient"] in ("alex", "sam")
        assert delivery["channel"] == "sms"
        assert delivery["due_utc"].endswith("Z")
        local = datetime.fromisoformat(delivery["due_local"])
        assert local.utcoffset() is not None
        utc = datetime.fromisoformat(delivery["due_utc"].removesuffix("Z") + "+00:00")
        assert local == utc  # the same instant, shown in two zones


def test_plan_in_new_york_fires_once_a_day_across_the_autumn_clock_change(
    tmp_path: Path, new_york: Path
) -> None:
    """The acceptance case: 01:30 happens twice on 2027-11-07; it fires once, the first time."""
    plan = plan_json("--config", str(new_york), "--from", "2027-11-05", "--days", "4", cwd=tmp_path)
    assert len(plan) == 4
    local_days = [datetime.fromisoformat(d["due_local"]).date() for d in plan]
    assert local_days == [date(2027, 11, 5 + i) for i in range(4)]
    assert [d["due_utc"] for d in plan] == [
        "2027-11-05T05:30:00Z",  # EDT
        "2027-11-06T05:30:00Z",  # EDT
        "2027-11-07T05:30:00Z",  # the first 01:30, still EDT
        "2027-11-08T06:30:00Z",  # EST
    ]
    assert [datetime.fromisoformat(d["due_local"]).utcoffset() for d in plan] == [
        timedelta(hours=-4),
        timedelta(hours=-4),
        timedelta(hours=-4),
        timedelta(hours=-5),
    ]
    for delivery in plan:
        assert delivery["household"] == "night-owls"
        assert delivery["ritual"] == "late-call"
        assert delivery["kind"] == "custom"
        assert delivery["recipient"] == "pat"
        assert delivery["channel"] == "sms"
        assert delivery["text"] == "Call each other, Pat. Reply DONE after."
        assert datetime.fromisoformat(delivery["due_local"]).strftime("%H:%M") == "01:30"


def test_plan_in_new_york_shifts_a_time_skipped_in_spring_forward_by_the_gap(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, NEW_YORK.format(at="02:30"), "spring.toml")
    plan = plan_json("--config", str(path), "--from", "2027-03-13", "--days", "3", cwd=tmp_path)
    assert [(d["due_local"], d["due_utc"]) for d in plan] == [
        ("2027-03-13T02:30:00-05:00", "2027-03-13T07:30:00Z"),
        ("2027-03-14T03:30:00-04:00", "2027-03-14T07:30:00Z"),  # 02:30 does not exist
        ("2027-03-15T02:30:00-04:00", "2027-03-15T06:30:00Z"),
    ]


# -- tend plan: iCalendar and table -------------------------------------------------------------


def ics_events(*args: str, cwd: Path) -> list[Any]:
    result = tend("plan", "--format", "ics", *args, cwd=cwd)
    assert result.returncode == 0, result.stderr
    calendar = Calendar.from_ical(result.stdout)
    return list(calendar.walk("VEVENT"))


def test_plan_ics_has_one_event_per_occurrence_with_unique_stable_uids(
    tmp_path: Path, new_york: Path
) -> None:
    args = ("--config", str(new_york), "--from", "2027-11-05", "--days", "4")
    events = ics_events(*args, cwd=tmp_path)
    assert len(events) == 4
    uids = [str(event["UID"]) for event in events]
    assert len(set(uids)) == 4
    # On the household's clock, as the feed has them: 01:30 in New York, the first of the two
    # on the night the clocks go back.
    assert {event["DTSTART"].params["TZID"] for event in events} == {"America/New_York"}
    assert [event["DTSTART"].to_ical() for event in events] == [
        b"20271105T013000",
        b"20271106T013000",
        b"20271107T013000",
        b"20271108T013000",
    ]
    assert [event.decoded("DTSTART").astimezone(UTC) for event in events] == [
        datetime(2027, 11, 5, 5, 30, tzinfo=UTC),
        datetime(2027, 11, 6, 5, 30, tzinfo=UTC),
        datetime(2027, 11, 7, 5, 30, tzinfo=UTC),
        datetime(2027, 11, 8, 6, 30, tzinfo=UTC),
    ]
    again = [str(event["UID"]) for event in ics_events(*args, cwd=tmp_path)]
    assert again == uids


def test_plan_ics_of_the_example_has_one_event_per_occurrence_not_per_delivery(
    tmp_path: Path,
) -> None:
    args = ("--config", str(EXAMPLE), "--from", "2026-11-30", "--days", "14")
    occurrences = {d["occurrence"] for d in plan_json(*args, cwd=tmp_path)}
    deliveries = len(plan_json(*args, cwd=tmp_path))
    events = ics_events(*args, cwd=tmp_path)
    assert len(occurrences) < deliveries  # both partners, reminders: several messages each
    assert len(events) == len(occurrences)
    uids = {str(event["UID"]) for event in events}
    assert len(uids) == len(events)
    assert uids == {str(event["UID"]) for event in ics_events(*args, cwd=tmp_path)}


TOPIC_FILE = couple_file(
    rituals="""
[[rituals]]
id = "money-and-plans"
kind = "check_in"
schedule = "weekly on sat at 10:00"
deck = ["finances", "family-life", "relationship-goals"]
message = "This week: {{ topic }}. {{ item }}"
"""
)


def test_plan_json_gives_each_occurrences_deck_and_the_topics_take_turns(tmp_path: Path) -> None:
    config = write(tmp_path, TOPIC_FILE)
    plan = plan_json("--config", str(config), "--from", "2027-01-01", "--days", "42", cwd=tmp_path)
    alex = [d for d in plan if d["recipient"] == "alex"]
    assert len(alex) == 6  # six Saturdays
    decks = [d["deck"] for d in alex]
    turns = ["finances", "family-life", "relationship-goals"]
    assert decks == [turns[(turns.index(decks[0]) + n) % 3] for n in range(6)]
    titles = {"finances": "Finances", "family-life": "Family life"}
    titles["relationship-goals"] = "Relationship goals"
    for delivery in plan:
        assert delivery["text"] == f"This week: {titles[delivery['deck']]}. {delivery['item']}"


@pytest.mark.parametrize("columns", ["80", "160"])  # the narrow listing and the wide table
def test_plan_shows_each_deliverys_deck(tmp_path: Path, columns: str) -> None:
    config = write(tmp_path, TOPIC_FILE)
    result = tend(
        "plan",
        "--config",
        str(config),
        "--from",
        "2027-01-01",
        "--days",
        "21",
        cwd=tmp_path,
        env={"COLUMNS": columns},
    )
    assert result.returncode == 0, result.stderr
    for deck in ("finances", "family-life", "relationship-goals"):
        assert deck in result.stdout
    if columns == "160":
        assert re.search(r"^\s*day\s+time\s+ritual\s+deck\s+role", result.stdout, re.MULTILINE)
    else:
        assert re.search(r"money-and-plans \(day_of\) to Alex by sms, deck f", result.stdout)


def test_check_and_reply_report_an_unknown_deck_in_a_list_at_its_line(tmp_path: Path) -> None:
    text = TOPIC_FILE.replace('"family-life"', '"famly-life"')
    config = write(tmp_path, text)
    line = text.splitlines().index('deck = ["finances", "famly-life", "relationship-goals"]') + 1
    for args in (("check",), ("reply", "--from", "+15551230001", "DONE")):
        result = tend(*args, "--config", str(config), cwd=tmp_path)
        assert result.returncode == 2, result.stdout + result.stderr
        said = result.stdout + result.stderr
        assert f"{config}:{line}: rituals.0.deck.1: unknown deck 'famly-life'" in said, args


def test_plan_table_shows_the_ritual_ids(tmp_path: Path) -> None:
    result = tend(
        "plan", "--config", str(EXAMPLE), "--from", "2026-11-30", "--days", "14", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    for ritual in EXAMPLE_RITUALS:
        assert ritual in result.stdout


@pytest.mark.parametrize("columns", ["80", "160"])  # the narrow listing and the wide table
def test_plan_shows_a_message_exactly_as_sent_brackets_and_emoji_codes_too(
    tmp_path: Path, columns: str
) -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        '"What made you laugh today?"', '"What made you [laugh] today? :heart:"'
    )
    assert "[laugh]" in text
    config = write(tmp_path, text)
    result = tend(
        "plan",
        "--config",
        str(config),
        "--from",
        "2026-11-30",
        "--days",
        "14",
        cwd=tmp_path,
        env={"COLUMNS": columns},
    )
    assert result.returncode == 0, result.stderr
    flat = " ".join(result.stdout.split())
    assert "What made you [laugh] today? :heart:" in flat
    assert "\u2764" not in result.stdout


# -- tend plan: mistakes ------------------------------------------------------------------------


def test_plan_for_an_unknown_household_exits_2(tmp_path: Path) -> None:
    result = tend("plan", "--config", str(EXAMPLE), "--household", "nope", cwd=tmp_path)
    assert result.returncode == 2
    assert "unknown household 'nope'" in result.stderr
    assert result.stdout == ""


def test_plan_from_an_impossible_date_exits_2_with_a_clear_message(tmp_path: Path) -> None:
    result = tend("plan", "--config", str(EXAMPLE), "--from", "2027-13-01", cwd=tmp_path)
    assert result.returncode == 2
    assert "--from '2027-13-01': month must be in 1..12 (write a date like" in result.stderr
    assert result.stdout == ""


def test_plan_on_a_broken_file_writes_the_errors_to_stderr_and_nothing_to_stdout(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, BROKEN)
    result = tend("plan", "--format", "json", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert [line.partition(": ")[0] for line in lines] == [f"{path}:5", f"{path}:10"]
    assert all(ERROR_LINE.match(line) for line in lines), lines


# -- tend config schema -------------------------------------------------------------------------


def test_config_schema_prints_the_json_schema_of_the_ritual_file(tmp_path: Path) -> None:
    result = tend("config", "schema", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert schema["type"] == "object"
    assert {"households", "rituals", "decks", "timezone"} <= set(schema["properties"])
    assert "households" in schema.get("required", [])


def test_config_schema_gives_a_rituals_deck_as_a_name_or_a_list_of_names(tmp_path: Path) -> None:
    result = tend("config", "schema", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    deck = json.loads(result.stdout)["$defs"]["Ritual"]["properties"]["deck"]
    [forms] = [part["oneOf"] for part in deck["anyOf"] if "oneOf" in part]
    assert {form["type"] for form in forms} == {"string", "array"}
    [listed] = [form for form in forms if form["type"] == "array"]
    assert listed["items"] == {"type": "string"}
    assert (listed["minItems"], listed["uniqueItems"]) == (1, True)


def test_plan_outside_the_supported_years_exits_2(tmp_path: Path) -> None:
    result = tend("plan", "--config", str(EXAMPLE), "--from", "1026-12-01", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr == "--from '1026-12-01': Tend plans the years 2000 to 2099\n"


def test_a_bad_environment_variable_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("PORT=abc\n", encoding="utf-8")
    result = tend("check", "--config", str(EXAMPLE), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("environment: PORT: Input should be a valid integer")
    assert "Traceback" not in result.stderr
