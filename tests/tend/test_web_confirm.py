"""The e-mail's confirm link: a signed token, valid for 7 days. Opening it (GET) shows what it
confirms and a button, and records nothing (mail scanners and previews fetch every link); the
button (POST to the same URL) confirms the occurrence for that partner once. A bad, expired
or foreign link records nothing."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from fastapi.testclient import TestClient
from ledger_setup import add_household, reset_postgres
from ritual_files import couple_file, partner_table, ritual_file
from sqlalchemy import Engine, insert, select

from notifiers.base import Message, Recipient
from notifiers.email import compose
from notifiers.links import Links
from scheduler.ledger import Ledger, Records
from scheduler.ledger.engine import make_engine
from scheduler.ledger.rows import CompletionRow, OccurrenceRow
from scheduler.ledger.schema import upgrade
from tend.web import create_app

NOW = datetime(2026, 12, 5, 21, tzinfo=UTC)
LINKS = Links("https://tend.example.com", "confirm-test-secret-key")


def fill(engine: Engine) -> dict[str, int]:
    """Two households; alex-sam has an open, a cancelled and another open occurrence."""
    ids: dict[str, int] = {}
    add_household(engine, "alex-sam", {"alex": {}, "sam": {}}, NOW)
    add_household(engine, "kim-lee", {"kim": {}, "lee": {}}, NOW)
    with engine.begin() as connection:
        for name, household, day, status in (
            ("open", "alex-sam", 5, "open"),
            ("cancelled", "alex-sam", 12, "cancelled"),
            ("theirs", "kim-lee", 5, "open"),
        ):
            slot = datetime(2026, 12, day, 19)
            ids[name] = connection.execute(
                insert(OccurrenceRow)
                .values(
                    household_id=household,
                    ritual_id="date-night",
                    slot=slot,
                    recipient="",
                    kind="date_night",
                    at=slot.replace(tzinfo=UTC),
                    status=status,
                    created_at=NOW,
                    updated_at=NOW,
                )
                .returning(OccurrenceRow.id)
            ).scalar_one()
    return ids


@pytest.fixture
def engine(ledger: Engine) -> Engine:
    return ledger


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(Ledger(engine), clock=lambda: NOW, links=LINKS)) as client:
        yield client


def path(household: str, occurrence: int, partner: str) -> str:
    return LINKS.confirm_url(household, occurrence, partner).removeprefix(LINKS.public_url)


def state(engine: Engine) -> tuple[list[tuple[int, str, str, str]], dict[int, str]]:
    with engine.connect() as connection:
        completions = [
            tuple(row)
            for row in connection.execute(
                select(
                    CompletionRow.occurrence_id,
                    CompletionRow.partner_key,
                    CompletionRow.action,
                    CompletionRow.source,
                ).order_by(CompletionRow.id)
            )
        ]
        statuses = dict(
            connection.execute(select(OccurrenceRow.id, OccurrenceRow.status)).tuples().all()
        )
    return completions, statuses  # type: ignore[return-value]


def test_a_confirm_links_button_confirms_once(client: TestClient, engine: Engine) -> None:
    ids = fill(engine)
    answer = client.post(path("alex-sam", ids["open"], "sam"))
    assert answer.status_code == 200
    assert "Marked the date night on Saturday 5 December as done" in answer.text
    again = client.post(path("alex-sam", ids["open"], "sam"))  # a second click
    assert again.status_code == 200
    assert "had marked" in again.text
    completions, statuses = state(engine)
    assert completions == [(ids["open"], "sam", "confirm", "email")]
    assert statuses[ids["open"]] == "confirmed"
    # The other partner's own link records their own completion.
    assert client.post(path("alex-sam", ids["open"], "alex")).status_code == 200
    assert [c[1] for c in state(engine)[0]] == ["sam", "alex"]


def test_opening_a_confirm_link_shows_a_button_and_records_nothing(
    client: TestClient, engine: Engine
) -> None:
    ids = fill(engine)
    url = path("alex-sam", ids["open"], "sam")
    for _ in range(3):  # a scanner, a preview, the partner: none of them records
        answer = client.get(url)
        assert answer.status_code == 200
        assert "date night on Saturday 5 December" in answer.text
        assert '<form method="post">' in answer.text
        assert '<button type="submit"' in answer.text
        assert "Marked" not in answer.text
    completions, statuses = state(engine)
    assert completions == []
    assert statuses[ids["open"]] == "open"

    assert "Marked the date night" in client.post(url).text
    assert state(engine)[0] == [(ids["open"], "sam", "confirm", "email")]
    # Opened again after the button: it says so, and offers no button.
    after = client.get(url)
    assert after.status_code == 200
    assert "Already done" in after.text
    assert "<form" not in after.text
    assert state(engine)[0] == [(ids["open"], "sam", "confirm", "email")]


def test_two_posts_of_the_button_record_one_completion(client: TestClient, engine: Engine) -> None:
    ids = fill(engine)
    url = path("alex-sam", ids["open"], "sam")
    first, second = client.post(url), client.post(url)
    assert (first.status_code, second.status_code) == (200, 200)
    assert "Done!" in first.text
    assert "Already done" in second.text
    assert state(engine)[0] == [(ids["open"], "sam", "confirm", "email")]


def test_the_emails_confirm_link_opens_the_button_page(client: TestClient, engine: Engine) -> None:
    # What notifiers/email.py puts in the e-mail is this route: old e-mails keep working.
    ids = fill(engine)
    message = Message(
        recipient=Recipient(household="alex-sam", partner="sam", name="Sam", email="s@x.org"),
        channel="email",
        body="Date night tonight.",
        key="alex-sam/date-night/2026-12-05T19:00/sam/day_of/email",
        ritual="date-night",
        occurrence=ids["open"],
    )
    mail = compose(message, sender="Tend <tend@example.com>", links=LINKS, now=NOW)
    text = mail.get_body(("plain",))
    assert text is not None
    [url] = re.findall(r"https://tend\.example\.com/confirm/[A-Za-z0-9_.-]+", text.get_content())
    # The token carries when it was signed: what it names is compared, not its text.
    found = LINKS.read_confirm(url.rsplit("/", 1)[1])
    assert (found.household, found.occurrence, found.partner) == ("alex-sam", ids["open"], "sam")
    local = url.removeprefix(LINKS.public_url)
    assert '<form method="post">' in client.get(local).text
    assert state(engine)[0] == []
    assert "Done!" in client.post(local).text
    assert state(engine)[0] == [(ids["open"], "sam", "confirm", "email")]


@pytest.mark.parametrize(
    "make",
    [
        lambda ids: "/confirm/not-a-token",
        lambda ids: path("alex-sam", ids["open"], "sam")[:-3] + "abc",  # forged signature
        lambda ids: path("alex-sam", ids["theirs"], "sam"),  # another household's occurrence
        lambda ids: path("alex-sam", ids["open"], "robin"),  # no such partner
        lambda ids: path("alex-sam", 999_999, "sam"),  # no such occurrence
        lambda ids: LINKS.unsubscribe_url("alex-sam", "sam").replace(
            f"{LINKS.public_url}/unsubscribe/", "/confirm/"
        ),  # a token of another kind
        lambda ids: (
            Links(LINKS.public_url, "another-secret-key-123")
            .confirm_url("alex-sam", ids["open"], "sam")
            .removeprefix(LINKS.public_url)
        ),
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_bad_link_records_nothing(
    client: TestClient, engine: Engine, make: object, method: str
) -> None:
    ids = fill(engine)
    assert callable(make)
    answer = client.request(method, make(ids))
    assert answer.status_code == 400
    assert "not valid" in answer.text
    assert "<form" not in answer.text
    completions, statuses = state(engine)
    assert completions == []
    assert set(statuses.values()) == {"open", "cancelled"}


def test_a_link_older_than_seven_days_has_expired(client: TestClient, engine: Engine) -> None:
    ids = fill(engine)
    with time_machine.travel(NOW - timedelta(days=7, minutes=1), tick=False):
        old = path("alex-sam", ids["open"], "sam")
    with time_machine.travel(NOW - timedelta(days=6, hours=23), tick=False):
        recent = path("alex-sam", ids["open"], "alex")
    with time_machine.travel(NOW, tick=False):
        opened = client.get(old)
        expired = client.post(old)
        fine = client.post(recent)
    for answer in (opened, expired):
        assert answer.status_code == 410
        assert "Link expired" in answer.text
        assert "<form" not in answer.text
    assert fine.status_code == 200
    assert [c[1] for c in state(engine)[0]] == ["alex"]


def test_a_called_off_ritual_records_nothing(client: TestClient, engine: Engine) -> None:
    ids = fill(engine)
    for method in ("GET", "POST"):
        answer = client.request(method, path("alex-sam", ids["cancelled"], "sam"))
        assert answer.status_code == 200
        assert "called off" in answer.text
        assert "<form" not in answer.text
    assert state(engine)[0] == []


def test_two_clicks_at_once_on_postgres_record_one_completion(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    try:
        reset_postgres(engine)
        upgrade(engine)
        ids = fill(engine)
        barrier = threading.Barrier(8)
        outcomes: list[str] = []

        def click() -> None:
            barrier.wait()
            with engine.begin() as connection:
                done = Records(connection).completions.confirm(
                    household="alex-sam",
                    occurrence=ids["open"],
                    partner="sam",
                    at=NOW,
                    source="email",
                )
            outcomes.append(done.outcome)

        threads = [threading.Thread(target=click) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert sorted(outcomes) == ["already"] * 7 + ["confirmed"]
        assert state(engine)[0] == [(ids["open"], "sam", "confirm", "email")]
    finally:
        reset_postgres(engine)
        engine.dispose()


def add_occurrence(engine: Engine, at: datetime) -> int:
    """Another open date night of alex-sam's (after `fill`), at `at`."""
    slot = at.replace(tzinfo=None)
    with engine.begin() as connection:
        found: int = connection.execute(
            insert(OccurrenceRow)
            .values(
                household_id="alex-sam",
                ritual_id="date-night",
                slot=slot,
                recipient="",
                kind="date_night",
                at=at,
                status="open",
                created_at=NOW,
                updated_at=NOW,
            )
            .returning(OccurrenceRow.id)
        ).scalar_one()
    return found


def test_a_link_to_a_date_night_still_to_come_records_nothing(
    client: TestClient, engine: Engine
) -> None:
    ids = fill(engine)
    ahead = add_occurrence(engine, NOW + timedelta(minutes=31))  # a plan-ahead e-mail's link

    for method in ("GET", "POST"):
        answer = client.request(method, path("alex-sam", ahead, "sam"))

        assert answer.status_code == 200
        assert "Not yet" in answer.text
        assert "Nothing was recorded" in answer.text
        assert "<form" not in answer.text
    completions, statuses = state(engine)
    assert completions == []
    assert statuses[ahead] == "open"
    assert statuses[ids["open"]] == "open"


BOTH = couple_file(
    partner_table("alex", email=True),
    partner_table("sam", email=True),
    rituals="""
[[rituals]]
id = "date-night"
kind = "date_night"
schedule = "weekly on sat at 19:00"
streak = "both"
""",
)


def test_a_both_ritual_is_confirmed_by_the_second_partners_link(engine: Engine) -> None:
    ids = fill(engine)
    file = ritual_file(BOTH, NOW)
    app = create_app(Ledger(engine), clock=lambda: NOW, links=LINKS, rituals=lambda: file)
    with TestClient(app) as client:
        first = client.post(path("alex-sam", ids["open"], "sam"))

        assert first.status_code == 200
        assert "Done, for you" in first.text
        completions, statuses = state(engine)
        assert completions == [(ids["open"], "sam", "confirm", "email")]
        assert statuses[ids["open"]] == "open"

        second = client.post(path("alex-sam", ids["open"], "alex"))

        assert second.status_code == 200
        assert "Done, for you" not in second.text
        assert "Marked the date night on Saturday 5 December as done" in second.text
        completions, statuses = state(engine)
        assert [c[1] for c in completions] == ["sam", "alex"]
        assert statuses[ids["open"]] == "confirmed"


ZONES = couple_file(
    partner_table("alex", email=True),
    partner_table("sam", email=True, timezone="Europe/Berlin"),
    household_timezone="America/New_York",
    rituals="""
[[rituals]]
id = "date-night"
kind = "date_night"
schedule = "weekly on fri at 19:00"
""",
)


def test_not_yet_says_when_in_the_partners_own_zone(engine: Engine) -> None:
    fill(engine)
    # Friday 11 December, 19:00 in New York: 01:00 on the Saturday in Berlin.
    ahead = add_occurrence(engine, datetime(2026, 12, 12, 0, tzinfo=UTC))
    file = ritual_file(ZONES, NOW)
    app = create_app(Ledger(engine), clock=lambda: NOW, links=LINKS, rituals=lambda: file)
    with TestClient(app) as client:
        for method in ("GET", "POST"):
            alex = client.request(method, path("alex-sam", ahead, "alex"))
            sam = client.request(method, path("alex-sam", ahead, "sam"))

            assert "Not yet" in alex.text
            assert "Friday 11 December (19:00 EST)" in alex.text  # the household's zone
            assert "Saturday 12 December (01:00 CET)" in sam.text  # Sam's own
            assert "UTC" not in alex.text + sam.text
    assert state(engine)[0] == []


def test_not_yet_without_the_ritual_file_falls_back_to_utc(
    client: TestClient, engine: Engine
) -> None:
    fill(engine)
    ahead = add_occurrence(engine, datetime(2026, 12, 12, 0, tzinfo=UTC))
    answer = client.get(path("alex-sam", ahead, "sam"))
    assert "Saturday 12 December (00:00 UTC)" in answer.text
