"""A household's private iCalendar feed, ``GET /calendar/{token}.ics``, and the command that
prints its URL, ``tend calendar-url``: planned occurrences from the real ledger, in the
household's zone across a clock change, with UIDs that stay put; any bad URL is a plain 404.
"""

from __future__ import annotations

import base64
import json
import logging
import textwrap
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from icalendar import Calendar
from itsdangerous import URLSafeTimedSerializer
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

[[rituals]]
id = "alex-run"
kind = "custom"
schedule = "weekly on sun at 08:00"
to = "alex"
message = "Run, {{ partner }}."
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
    """The web app on the ledger, with the ritual file (as `tend web` has the last synced)."""
    file = ritual_file()
    app = create_app(Ledger(engine), clock=lambda: NOW, links=LINKS, rituals=lambda: file)
    with TestClient(app) as client:
        yield client


def feed_path(household: str, links: Links = LINKS, partner: str | None = None) -> str:
    return links.calendar_url(household, partner).removeprefix(links.public_url)


def fetch(client: TestClient, household: str = "alex-sam", partner: str | None = None) -> Calendar:
    answer = client.get(feed_path(household, partner=partner))
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
                OccurrenceRow.household_id == "alex-sam",
                OccurrenceRow.ritual_id.in_(["check-in", "date-night"]),
            )
        ).all()
    found = events(calendar)
    assert len(found) == len(planned) > 14
    summaries = {str(e["summary"]) for e in found.values()}
    assert summaries == {"Check in", "Date night"}  # what both share: see the partner feeds
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
    # The same UIDs as `tend plan --format ics`, so an imported preview is updated, not doubled:
    # the shared feed and the partners' own ones between them have each occurrence once.
    alex, sam = events(fetch(client, partner="alex")), events(fetch(client, partner="sam"))
    file = ritual_file()
    preview = Plan(file)
    expected = {
        f"{o.key}@tend"
        for ritual in preview.rituals_for("alex-sam")
        for o in preview.occurrences("alex-sam", ritual, date(2027, 11, 2), date(2027, 11, 9))
    }
    assert expected <= alex.keys() | sam.keys()
    assert {uid for uid in expected if uid in first} == expected - (alex.keys() ^ sam.keys())
    assert "alex-sam/check-in/2027-11-07T19:00@tend" in expected
    assert "alex-sam/kind_words/2027-11-03T12:00/sam@tend" in expected & sam.keys()


# -- the shared feed and the partners' own ----------------------------------------------------


def test_the_shared_feed_shows_only_what_both_share_never_a_partners_own(
    client: TestClient, engine: Engine
) -> None:
    plan(engine)
    found = events(fetch(client))
    assert found
    assert {uid.split("/")[1] for uid in found} == {"check-in", "date-night"}
    assert not any("kind_words" in uid or "alex-run" in uid for uid in found)


@pytest.mark.parametrize(("partner", "other"), [("alex", "Sam"), ("sam", "Alex")])
def test_a_partner_feed_shows_the_shared_ones_and_their_own_never_the_other_partners(
    client: TestClient, engine: Engine, partner: str, other: str
) -> None:
    plan(engine)
    shared = events(fetch(client))
    calendar = fetch(client, partner=partner)
    own = events(calendar)
    assert str(calendar["x-wr-calname"]) == f"Tend: alex-sam ({partner.title()})"
    assert shared.keys() < own.keys()
    summaries = {str(own[uid]["summary"]) for uid in own.keys() - shared.keys()}
    expected = {f"Kind words for {partner.title()}"}
    if partner == "alex":
        expected.add("Alex run")  # to = "alex": Alex's alone
    assert summaries == expected
    assert not any(other in str(e["summary"]) for e in own.values())
    assert not any(uid.endswith(f"/{other.lower()}@tend") for uid in own)


def forged(url: str, payload: list[str]) -> str:
    """`url`'s calendar token with its payload replaced and its signature kept."""
    token = url.rsplit("/", 1)[-1].removesuffix(".ics")
    _, stamp, signature = token.split(".")
    body = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode())
    return f"/calendar/{body.decode().rstrip('=')}.{stamp}.{signature}.ics"


def test_a_partner_feed_url_cannot_be_turned_into_the_other_partners(
    client: TestClient, engine: Engine
) -> None:
    plan(engine)
    alex = LINKS.calendar_url("alex-sam", "alex")
    assert client.get(alex.removeprefix(PUBLIC_URL)).status_code == 200
    for payload in (["alex-sam", "sam"], ["alex-sam"], ["kim-lee", "kim"]):
        answer = client.get(forged(alex, payload))
        assert answer.status_code == 404, payload
        assert "BEGIN:VCALENDAR" not in answer.text
    # Nor is a partner's feed a household's with another partner's name added to it.
    assert (
        client.get(forged(LINKS.calendar_url("alex-sam"), ["alex-sam", "sam"])).status_code == 404
    )


def test_a_household_feed_url_made_before_partner_feeds_is_still_the_shared_feed(
    client: TestClient, engine: Engine
) -> None:
    plan(engine)
    # What `tend calendar-url --household` has always printed: the household, signed.
    token = URLSafeTimedSerializer(SECRET, salt="tend.calendar").dumps(["alex-sam"])
    answer = client.get(f"/calendar/{token}.ics")
    assert answer.status_code == 200
    assert events(Calendar.from_ical(answer.content)).keys() == events(fetch(client)).keys()


def test_a_partner_feed_of_a_partner_not_in_the_household_is_a_404(
    client: TestClient, engine: Engine
) -> None:
    plan(engine)
    for household, partner in (("alex-sam", "kim"), ("alex-sam", "nobody"), ("kim-lee", "alex")):
        assert client.get(feed_path(household, partner=partner)).status_code == 404


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


def test_calendar_url_with_a_partner_prints_their_own_feed(
    ritual_path: Path, ledger: Engine
) -> None:
    env = {"TEND_PUBLIC_URL": PUBLIC_URL, "TEND_SECRET_KEY": SECRET}
    args = ["--household", "alex-sam", "--config", str(ritual_path)]
    shared = calendar_url(*args, env=env)
    own = calendar_url(*args, "--partner", "sam", env=env)
    assert shared.exit_code == own.exit_code == 0, own.output
    assert own.stdout != shared.stdout
    plan(ledger)
    with TestClient(create_app(Ledger(ledger), clock=lambda: NOW, links=LINKS)) as client:
        answer = client.get(own.stdout.strip().removeprefix(PUBLIC_URL))
    assert answer.status_code == 200
    found = events(Calendar.from_ical(answer.content))
    assert "alex-sam/kind_words/2027-11-03T12:00/sam@tend" in found
    assert "alex-sam/kind_words/2027-11-03T12:00/alex@tend" not in found


def test_calendar_url_of_a_partner_not_in_the_household_lists_its_partners(
    ritual_path: Path,
) -> None:
    result = calendar_url(
        "--household",
        "alex-sam",
        "--partner",
        "kim",
        "--config",
        str(ritual_path),
        env={"TEND_PUBLIC_URL": PUBLIC_URL, "TEND_SECRET_KEY": SECRET},
    )
    assert result.exit_code == 2
    assert result.stdout == ""
    assert "'kim'" in result.stderr and "alex, sam" in result.stderr


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
