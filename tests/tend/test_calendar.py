"""A household's private iCalendar feed, ``GET /calendar/{token}.ics``, and the command that
prints its URL, ``tend calendar-url``: planned occurrences from the real ledger, in the
household's zone across a clock change, with UIDs that stay put; any bad URL is a plain 404.
"""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from icalendar import Calendar
from ritual_files import couple_file, household_table, partner_table
from sqlalchemy import Engine, insert, select, update
from typer.testing import CliRunner

from config.loader import parse_ritual_file
from config.model import RitualFile
from notifiers.links import Links
from rituals.planning import Plan
from scheduler.ledger import Ledger
from scheduler.ledger.engine import make_engine
from scheduler.ledger.rows import OccurrenceRow
from scheduler.planner import plan_horizon, sync_file
from scheduler.reports.calendar import DAYS_BACK, household_calendar
from tend.cli import app as cli
from tend.web import create_app

PUBLIC_URL = "https://tend.example.com"
SECRET = "calendar-test-secret-key"
LINKS = Links(PUBLIC_URL, SECRET)
# Monday 1 November 2027, noon in New York; the clocks go back on Sunday the 7th at 02:00.
NOW = datetime(2027, 11, 1, 16, 0, tzinfo=UTC)

RITUALS = couple_file(
    partner_table("alex", email=True),
    partner_table("sam", email=True),
    timezone="America/New_York",
    households=household_table(
        "kim-lee", partner_table("kim", email=True), timezone="Europe/Berlin"
    ),
    rituals="""
[[rituals]]
id = "check-in"
kind = "check_in"
schedule = "daily at 19:00"

[[rituals]]
id = "date-night"
kind = "date_night"
schedule = "weekly on sat at 19:00"
households = ["alex-sam"]

[[rituals]]
id = "kind_words"
kind = "appreciation"
schedule = "weekly on wed at 12:00"
to = "each"
households = ["alex-sam"]
""",
)


def ritual_file() -> RitualFile:
    return parse_ritual_file(RITUALS, name="rituals.toml", today=NOW).file


def plan(engine: Engine, now: datetime = NOW) -> None:
    """What the worker's plan job does: sync the file, then plan the next 14 days."""
    file = ritual_file()
    synced = sync_file(Ledger(engine), file, now)
    plan_horizon(
        Ledger(engine), Plan(file), now, generation=synced.generation, changed=synced.changed
    )


def occurrence_at(engine: Engine, household: str, ritual: str, slot: datetime) -> int:
    with engine.connect() as connection:
        found: int = connection.execute(
            select(OccurrenceRow.id).where(
                OccurrenceRow.household_id == household,
                OccurrenceRow.ritual_id == ritual,
                OccurrenceRow.slot == slot,
            )
        ).scalar_one()
    return found


def set_status(engine: Engine, occurrence: int, status: str) -> None:
    with engine.begin() as connection:
        connection.execute(
            update(OccurrenceRow).where(OccurrenceRow.id == occurrence).values(status=status)
        )


def add_occurrence(
    engine: Engine, household: str, ritual: str, at: datetime, slot: datetime
) -> None:
    with engine.begin() as connection:
        connection.execute(
            insert(OccurrenceRow).values(
                household_id=household,
                ritual_id=ritual,
                slot=slot,
                recipient="",
                kind="custom",
                at=at,
                status="open",
                created_at=at,
                updated_at=at,
            )
        )


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(Ledger(engine), clock=lambda: NOW, links=LINKS)) as client:
        yield client


def feed_path(household: str, links: Links = LINKS) -> str:
    return links.calendar_url(household).removeprefix(links.public_url)


def fetch(client: TestClient, household: str = "alex-sam") -> Calendar:
    answer = client.get(feed_path(household))
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/calendar; charset=utf-8"
    assert answer.headers["cache-control"] == "private, max-age=300"
    return Calendar.from_ical(answer.content)


def events(calendar: Calendar) -> dict[str, Any]:
    """The VEVENTs by UID (each UID once)."""
    found = list(calendar.walk("VEVENT"))
    by_uid = {str(event["uid"]): event for event in found}
    assert len(by_uid) == len(found), "UIDs repeat"
    return by_uid


def app_logs(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """What the app logged (the test client logs each URL it requests, as a browser would)."""
    return [r for r in caplog.records if not r.name.startswith("httpx")]


def local_start(event: Any) -> datetime:
    start: datetime = event.decoded("dtstart")
    return start


# -- the feed ------------------------------------------------------------------------------------


def test_the_feed_has_one_event_per_planned_occurrence_of_the_household(
    client: TestClient, engine: Engine
) -> None:
    plan(engine)
    calendar = fetch(client)
    assert str(calendar["x-wr-calname"]) == "Tend: alex-sam"
    assert calendar["refresh-interval"].to_ical() == b"PT1H"
    assert calendar["refresh-interval"].params["VALUE"] == "DURATION"
    assert calendar["x-published-ttl"].to_ical() == b"PT1H"
    with engine.connect() as connection:
        planned = connection.execute(
            select(OccurrenceRow.ritual_id, OccurrenceRow.slot, OccurrenceRow.recipient).where(
                OccurrenceRow.household_id == "alex-sam"
            )
        ).all()
    found = events(calendar)
    assert len(found) == len(planned) > 14
    summaries = {str(e["summary"]) for e in found.values()}
    assert summaries == {"Check in", "Date night", "Kind words for Alex", "Kind words for Sam"}
    # Nothing of the other household (in Berlin) leaks in.
    assert not any("kim-lee" in uid for uid in found)
    [night, *_] = sorted(
        (e for e in found.values() if str(e["summary"]) == "Date night"), key=local_start
    )
    assert str(night["status"]) == "TENTATIVE"
    assert "Idea: " in str(night["description"])
    assert str(night["description"]).endswith(" plans.")
    assert ("Alex plans." in str(night["description"])) != (
        "Sam plans." in str(night["description"])
    )
    assert night.decoded("dtend") - night.decoded("dtstart") == timedelta(hours=2)
    assert [str(c) for c in night["categories"].cats] == ["date_night"]


def test_times_are_the_households_wall_clock_across_the_autumn_clock_change(
    client: TestClient, engine: Engine
) -> None:
    plan(engine)
    calendar = fetch(client)
    assert [str(tz["tzid"]) for tz in calendar.walk("VTIMEZONE")] == ["America/New_York"]
    check_ins = {
        local_start(e).date(): e
        for e in events(calendar).values()
        if str(e["summary"]) == "Check in"
    }
    before, after = check_ins[date(2027, 11, 6)], check_ins[date(2027, 11, 7)]
    for event in (before, after):
        assert event["dtstart"].params["TZID"] == "America/New_York"
        assert local_start(event).hour == 19
    assert local_start(before).astimezone(UTC) == datetime(2027, 11, 6, 23, tzinfo=UTC)  # EDT
    assert local_start(after).astimezone(UTC) == datetime(2027, 11, 8, 0, tzinfo=UTC)  # EST
    # Python subtracts two times of one zone on the wall clock; the instants are 25 h apart.
    assert local_start(after).astimezone(UTC) - local_start(before) == timedelta(hours=25)


def test_the_second_0130_of_the_night_the_clocks_go_back_is_written_in_utc(
    engine: Engine,
) -> None:
    """``TZID=America/New_York:20271107T013000`` means the first 01:30 (EDT)."""
    plan(engine)
    slot = datetime(2027, 11, 7, 1, 30)
    add_occurrence(engine, "alex-sam", "night-owl", datetime(2027, 11, 7, 5, 30, tzinfo=UTC), slot)
    add_occurrence(
        engine, "alex-sam", "night-owl-2", datetime(2027, 11, 7, 6, 30, tzinfo=UTC), slot
    )
    with engine.connect() as connection:
        body = household_calendar(Ledger(connection), "alex-sam", NOW)
    assert body is not None
    found = events(Calendar.from_ical(body))
    first = found["alex-sam/night-owl/2027-11-07T01:30@tend"]
    second = found["alex-sam/night-owl-2/2027-11-07T01:30@tend"]
    assert first["dtstart"].params["TZID"] == "America/New_York"
    assert "TZID" not in second["dtstart"].params
    assert second["dtstart"].to_ical() == b"20271107T063000Z"
    assert local_start(second) - local_start(first) == timedelta(hours=1)


def test_uids_are_stable_across_fetches_and_replanning_and_match_tend_plan(
    client: TestClient, engine: Engine
) -> None:
    plan(engine)
    first = events(fetch(client))
    again = events(fetch(client))
    assert first.keys() == again.keys()
    plan(engine, NOW + timedelta(days=1))  # the next day's plan adds a day, changes nothing
    later = events(fetch(client))
    assert first.keys() < later.keys()
    assert all(local_start(later[uid]) == local_start(first[uid]) for uid in first)
    # The same UIDs as `tend plan --format ics`, so an imported preview is updated, not doubled.
    file = ritual_file()
    preview = Plan(file)
    expected = {
        f"{o.key}@tend"
        for ritual in preview.rituals_for("alex-sam")
        for o in preview.occurrences("alex-sam", ritual, date(2027, 11, 2), date(2027, 11, 9))
    }
    assert expected <= first.keys()
    assert "alex-sam/check-in/2027-11-07T19:00@tend" in expected
    assert "alex-sam/kind_words/2027-11-03T12:00/sam@tend" in expected


def test_cancelled_occurrences_are_left_out_and_the_rest_show_what_became_of_them(
    client: TestClient, engine: Engine
) -> None:
    plan(engine)
    ids = {
        day: occurrence_at(engine, "alex-sam", "check-in", datetime(2027, 11, day, 19))
        for day in (2, 3, 4, 5)
    }
    set_status(engine, ids[2], "confirmed")
    set_status(engine, ids[3], "skipped")
    set_status(engine, ids[4], "cancelled")
    set_status(engine, ids[5], "missed")
    found = events(fetch(client))
    status = {
        day: str(found[f"alex-sam/check-in/2027-11-{day:02}T19:00@tend"]["status"])
        for day in (2, 3, 5, 6)
    }
    assert status == {2: "CONFIRMED", 3: "CANCELLED", 5: "TENTATIVE", 6: "TENTATIVE"}
    assert "alex-sam/check-in/2027-11-04T19:00@tend" not in found


def test_the_feed_reaches_back_sixty_days(client: TestClient, engine: Engine) -> None:
    plan(engine)
    for days in (DAYS_BACK - 1, DAYS_BACK + 1):
        at = NOW - timedelta(days=days)
        add_occurrence(engine, "alex-sam", "old", at, at.replace(tzinfo=None))
    found = events(fetch(client))
    old = sorted(uid for uid in found if "/old/" in uid)
    assert old == [f"alex-sam/old/{NOW - timedelta(days=DAYS_BACK - 1):%Y-%m-%dT%H:%M}@tend"]


def test_a_household_with_nothing_planned_has_an_empty_calendar(
    client: TestClient, engine: Engine
) -> None:
    plan(engine)
    with engine.begin() as connection:
        connection.execute(
            update(OccurrenceRow)
            .where(OccurrenceRow.household_id == "kim-lee")
            .values(status="cancelled")
        )
    calendar = fetch(client, "kim-lee")
    assert events(calendar) == {}
    assert str(calendar["x-wr-calname"]) == "Tend: kim-lee"


def as_calendar(url: str) -> str:
    """Another kind's link with its token put where a calendar token goes."""
    token = url.rsplit("/", 1)[-1]
    return f"/calendar/{token}.ics"


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/calendar/not-a-token.ics", id="garbage"),
        pytest.param(feed_path("alex-sam")[:-7] + "abc.ics", id="forged-signature"),
        pytest.param(feed_path("nobody"), id="no-such-household"),
        pytest.param(as_calendar(LINKS.unsubscribe_url("alex-sam", "sam")), id="unsubscribe"),
        pytest.param(as_calendar(LINKS.confirm_url("alex-sam", 1, "sam")), id="confirm"),
        pytest.param(
            feed_path("alex-sam", Links(PUBLIC_URL, "another-secret-key-123")), id="other-key"
        ),
        pytest.param(feed_path("alex-sam").removesuffix(".ics"), id="without-ics"),
    ],
)
def test_a_bad_calendar_url_is_a_plain_404(
    client: TestClient, engine: Engine, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    plan(engine)
    caplog.set_level(logging.DEBUG)
    answer = client.get(path)
    assert answer.status_code == 404
    assert "BEGIN:VCALENDAR" not in answer.text
    if path.endswith(".ics"):
        assert answer.text == client.get("/calendar/not-a-token.ics").text
    token = path.rsplit("/", 1)[-1].removesuffix(".ics")
    assert not [r for r in app_logs(caplog) if token in r.getMessage()]


def test_without_a_secret_key_there_is_no_feed(engine: Engine) -> None:
    plan(engine)
    with TestClient(create_app(Ledger(engine), clock=lambda: NOW, links=None)) as client:
        answer = client.get(feed_path("alex-sam"))
    assert answer.status_code == 404
    assert "BEGIN:VCALENDAR" not in answer.text


def test_a_ledger_that_cannot_be_read_is_a_503_that_does_not_log_the_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    unmigrated = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        with TestClient(create_app(Ledger(unmigrated), clock=lambda: NOW, links=LINKS)) as client:
            path = feed_path("alex-sam")
            answer = client.get(path)
    finally:
        unmigrated.dispose()
    assert answer.status_code == 503
    assert "reading a calendar feed failed" in caplog.text
    token = path.rsplit("/", 1)[-1].removesuffix(".ics")
    assert not [r for r in app_logs(caplog) if token in r.getMessage()]


def test_a_household_removed_from_the_ritual_file_has_no_feed_any_more(engine: Engine) -> None:
    plan(engine)
    file = ritual_file()
    kept = file.model_copy(update={"households": file.households[:1]})
    gone = file.households[1].id
    with TestClient(
        create_app(Ledger(engine), clock=lambda: NOW, links=LINKS, rituals=lambda: file)
    ) as c:
        assert c.get(feed_path(gone)).status_code == 200
    with TestClient(
        create_app(Ledger(engine), clock=lambda: NOW, links=LINKS, rituals=lambda: kept)
    ) as c:
        assert c.get(feed_path(gone)).status_code == 404
        assert c.get(feed_path(file.households[0].id)).status_code == 200


def test_an_unknown_household_has_no_calendar(engine: Engine) -> None:
    plan(engine)
    with engine.connect() as connection:
        assert household_calendar(Ledger(connection), "nobody", NOW) is None


# -- tend calendar-url ---------------------------------------------------------------------------


@pytest.fixture
def ritual_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The ritual file, in a working directory without a `.env` or stray TEND_ variables."""
    monkeypatch.chdir(tmp_path)
    for name in ("TEND_PUBLIC_URL", "TEND_SECRET_KEY", "TEND_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "rituals.toml"
    path.write_text(textwrap.dedent(RITUALS), encoding="utf-8")
    return path


def calendar_url(*args: str, env: dict[str, str]) -> Any:
    return CliRunner().invoke(cli, ["calendar-url", *args], env=env)


def test_calendar_url_prints_a_url_the_web_app_serves(ritual_path: Path, ledger: Engine) -> None:
    result = calendar_url(
        "--household",
        "alex-sam",
        "--config",
        str(ritual_path),
        env={"TEND_PUBLIC_URL": f"{PUBLIC_URL}/", "TEND_SECRET_KEY": SECRET},
    )
    assert result.exit_code == 0, result.output
    url = result.stdout.removesuffix("\n")
    assert "\n" not in url
    assert url.startswith(f"{PUBLIC_URL}/calendar/")
    assert url.endswith(".ics")
    plan(ledger)
    with TestClient(create_app(Ledger(ledger), clock=lambda: NOW, links=LINKS)) as client:
        answer = client.get(url.removeprefix(PUBLIC_URL))
    assert answer.status_code == 200
    assert "alex-sam/check-in/2027-11-07T19:00@tend" in events(Calendar.from_ical(answer.content))


@pytest.mark.parametrize(
    ("env", "named", "not_named"),
    [
        ({}, ["TEND_PUBLIC_URL", "TEND_SECRET_KEY"], []),
        ({"TEND_PUBLIC_URL": PUBLIC_URL}, ["TEND_SECRET_KEY"], ["TEND_PUBLIC_URL"]),
        ({"TEND_SECRET_KEY": SECRET}, ["TEND_PUBLIC_URL"], ["TEND_SECRET_KEY"]),
    ],
)
def test_calendar_url_without_its_settings_names_the_missing_variables(
    ritual_path: Path, env: dict[str, str], named: list[str], not_named: list[str]
) -> None:
    result = calendar_url("--household", "alex-sam", "--config", str(ritual_path), env=env)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert all(name in result.stderr for name in named)
    assert not any(name in result.stderr for name in not_named)


def test_calendar_url_of_an_unknown_household_lists_the_known_ones(ritual_path: Path) -> None:
    result = calendar_url(
        "--household",
        "robin-kai",
        "--config",
        str(ritual_path),
        env={"TEND_PUBLIC_URL": PUBLIC_URL, "TEND_SECRET_KEY": SECRET},
    )
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "robin-kai" in result.stderr
    assert "alex-sam, kim-lee" in result.stderr
