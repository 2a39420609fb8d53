"""The couple's page, ``GET /h/{token}`` and its buttons, on both databases, from a ledger the
planner filled and SMS replies changed.

Alex and Sam are the June couple (New York). Their Sunday check-ins: 7 June both confirmed,
14 June Alex alone, 21 June Sam skipped (with June's freeze), and on Sunday 28 June at 20:30
the check-in of that evening is still open; their date night is every other Friday.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from datetime import datetime

import pytest
from fastapi.testclient import TestClient
from june_couple import ALEX, SAM, Replies, completions, ny, occurrence, plan, rituals, send_due
from ritual_files import household_table, partner_table
from sqlalchemy import Engine

from config.model import RitualFile
from notifiers.links import Links
from scheduler.ledger import Ledger
from tend.web import create_app

NOW = ny(6, 28, 20, 30)  # Sunday 28 June 2026, 20:30 in New York
PUBLIC = "https://tend.example.com"
LINKS = Links(PUBLIC, "page-test-secret-key-0123456789")
OTHER = household_table(
    "kim-lee",
    partner_table("kim", phone=True, email="kim@example.com", channels=["sms"]),
    partner_table("lee", email=True, channels=["email"]),
    timezone="Europe/Berlin",
)


def seeded(engine: Engine, text: str | None = None) -> RitualFile:
    file = plan(engine, text or rituals(extra=OTHER), days=40)
    reply = Replies(engine, file)
    for day, texts in (
        (7, [(ALEX, "DONE"), (SAM, "DONE")]),
        (14, [(ALEX, "DONE")]),
        (21, [(SAM, "SKIP")]),
    ):
        moment = ny(6, day, 19, 45)
        send_due(engine, moment)
        for sender, body in texts:
            reply(sender, body, moment)
    send_due(engine, NOW)
    return file


@pytest.fixture
def file(engine: Engine) -> RitualFile:
    return seeded(engine)


@pytest.fixture
def client(engine: Engine, file: RitualFile) -> Iterator[TestClient]:
    app = create_app(Ledger(engine), clock=lambda: NOW, links=LINKS, rituals=lambda: file)
    with TestClient(app, base_url=PUBLIC, follow_redirects=False) as client:
        yield client


@functools.cache
def page_path(
    household: str = "alex-sam", partner: str | None = "alex", generation: int = 0
) -> str:
    """A page's path, the same string every time (as a partner's URL is): a token is signed
    with the second it was made, and a page's buttons are bound to its token."""
    return LINKS.page_url(household, partner, generation).removeprefix(PUBLIC)


def states(html: str, ritual: str) -> list[tuple[str, str]]:
    """(day, state) of the heatmap's squares of `ritual`, oldest first."""
    group = re.search(rf'<g data-ritual="{ritual}"[^>]*>(.*?)</g>', html, re.S)
    assert group is not None, ritual
    return re.findall(r'data-state="(\w+)" data-day="([\d-]+)"', group.group(1))


def buttons(html: str) -> dict[tuple[str, int], str]:
    """Each button's (action, occurrence) and its form token."""
    found = re.findall(
        r'<form method="post" action="[^"]+/(done|skip)"><input type="hidden" '
        r'name="occurrence" value="(\d+)"><input type="hidden" name="form_token" value="(\w+)">',
        html,
    )
    return {(action, int(o)): token for action, o, token in found}


def current_streak(html: str, title: str) -> str:
    row = re.search(
        rf'<th scope="row">{title}</th><td class="current" data-label="Current">([^<]+)</td>', html
    )
    assert row is not None, title
    return row.group(1)


def test_a_partners_page_shows_the_history_streaks_what_is_coming_and_buttons(
    client: TestClient, engine: Engine
) -> None:
    answer = client.get(page_path())

    assert answer.status_code == 200
    html = answer.text
    assert states(html, "check-in") == [
        ("both", "2026-06-07"),
        ("one", "2026-06-14"),
        ("freeze", "2026-06-21"),
        ("open", "2026-06-28"),
    ]
    assert "<h1>Tend: Alex and Sam</h1>" in html
    assert "Hello, Alex." in html
    assert current_streak(html, "check in") == "2 weeks"  # the freeze holds it
    # Alex sees their own appreciation nudges, never Sam's.
    assert "appreciation" in html
    assert "(Sam)" not in html
    # The next 14 days on Alex's clock (New York), and the next date night's planner.
    assert "Fri 3 Jul 2026 19:00" in html
    assert re.search(r"Next date night: <strong>Fri 3 Jul 2026 19:00</strong>, planned by", html)
    check_in = occurrence(engine, "check-in", 28)["id"]
    assert ("done", check_in) in buttons(html)
    assert ("skip", check_in) in buttons(html)
    # No script at all, nothing from anywhere else, and no phone number or address.
    assert "<script" not in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html
    assert "+1555" not in html
    assert "@example.com" not in html
    assert answer.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert answer.headers["Referrer-Policy"] == "same-origin"


def test_the_picture_has_a_table_in_words_for_each_ritual(client: TestClient) -> None:
    html = client.get(page_path()).text

    assert "<summary>check in: the history as a table (4 times)</summary>" in html
    assert "<td>2026-06-21</td><td>skipped with a freeze: Sun 21 Jun 2026: skipped by Sam" in html
    assert '<h2 id="history-h">' in html and '<h2 id="streaks-h">' in html


def test_done_records_once_as_an_sms_done_would_and_the_streak_goes_up(
    client: TestClient, engine: Engine
) -> None:
    check_in = occurrence(engine, "check-in", 28)["id"]
    html = client.get(page_path()).text
    token = buttons(html)[("done", check_in)]
    before = current_streak(html, "check in")

    form = {"occurrence": str(check_in), "form_token": token}
    first = client.post(page_path() + "/done", data=form)
    second = client.post(page_path() + "/done", data=form)  # a double tap

    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == "../" + page_path().removeprefix("/h/")
    assert completions(engine, check_in) == [("alex", "confirm")]
    after = client.get(page_path()).text
    assert (before, current_streak(after, "check in")) == ("2 weeks", "3 weeks")
    assert states(after, "check-in")[-1] == ("one", "2026-06-28")
    assert ("done", check_in) not in buttons(after)


def test_skip_skips_with_a_freeze_as_an_sms_skip_would(client: TestClient, engine: Engine) -> None:
    check_in = occurrence(engine, "check-in", 28)["id"]
    token = buttons(client.get(page_path("alex-sam", "sam")).text)[("skip", check_in)]
    form = {"occurrence": str(check_in), "form_token": token}

    assert client.post(page_path("alex-sam", "sam") + "/skip", data=form).status_code == 303
    assert client.post(page_path("alex-sam", "sam") + "/skip", data=form).status_code == 303

    assert completions(engine, check_in) == [("sam", "skip")]
    assert occurrence(engine, "check-in", 28)["status"] == "skipped"


def test_every_bad_address_gets_the_same_404(client: TestClient, engine: Engine) -> None:
    good = page_path()
    token = good.removeprefix("/h/")
    forged = Links(PUBLIC, "another-secret-key-0123456789").page_url("alex-sam", "alex", 0)
    Ledger(engine).pages.rotate("alex-sam", "sam", NOW)
    bad = [
        "/h/" + token[:-1] + ("A" if token[-1] != "A" else "B"),  # forged
        "/h/" + token[: len(token) // 2],  # truncated
        "/h/nothing-at-all",
        forged.removeprefix(PUBLIC),
        page_path("nobody", None),  # signed, but no such household
        page_path("alex-sam", "kim"),  # a partner of another household
        page_path("alex-sam", "sam", 0),  # rotated
        page_path("alex-sam", "alex", 1),  # a generation not given yet
        LINKS.calendar_url("alex-sam", "alex")
        .removeprefix(PUBLIC)
        .replace("/calendar/", "/h/")[: -len(".ics")],  # a token of another kind
    ]
    answers = [client.get(path) for path in bad]

    assert {a.status_code for a in answers} == {404}
    assert len({a.text for a in answers}) == 1
    assert "alex" not in answers[0].text.lower()
    assert client.get(page_path("alex-sam", "sam", 1)).status_code == 200
    assert client.get(good).status_code == 200


def test_another_households_page_shows_nothing_of_this_one_and_cannot_press_its_buttons(
    client: TestClient, engine: Engine
) -> None:
    check_in = occurrence(engine, "check-in", 28)["id"]
    kim = page_path("kim-lee", "kim")
    html = client.get(kim).text
    assert "Alex" not in html and "Sam" not in html
    # The form token of kim's page for alex-sam's occurrence: still nothing recorded.
    form = {"occurrence": str(check_in), "form_token": LINKS.form_token(kim[3:], check_in, "done")}

    assert client.post(kim + "/done", data=form).status_code == 303
    assert completions(engine, check_in) == []


def test_a_post_without_the_pages_form_token_or_from_another_site_is_refused(
    client: TestClient, engine: Engine
) -> None:
    check_in = occurrence(engine, "check-in", 28)["id"]
    token = buttons(client.get(page_path()).text)[("done", check_in)]
    done = page_path() + "/done"
    sam_token = LINKS.form_token(page_path("alex-sam", "sam")[3:], check_in, "done")
    skip_token = LINKS.form_token(page_path()[3:], check_in, "skip")

    refused = [
        client.post(done, data={"occurrence": str(check_in)}),
        client.post(done, data={"occurrence": str(check_in), "form_token": "0" * 64}),
        client.post(done, data={"occurrence": str(check_in), "form_token": sam_token}),
        client.post(done, data={"occurrence": str(check_in), "form_token": skip_token}),
        client.post(done, data={"occurrence": str(check_in + 1), "form_token": token}),
        client.post(done, data={"occurrence": "x", "form_token": token}),
        client.post(
            done,
            data={"occurrence": str(check_in), "form_token": token},
            headers={"Origin": "https://evil.example"},
        ),
        client.post(
            done,
            data={"occurrence": str(check_in), "form_token": token},
            headers={"Sec-Fetch-Site": "cross-site"},
        ),
        client.post(page_path("alex-sam", None) + "/done", data={"occurrence": str(check_in)}),
    ]

    assert [r.status_code for r in refused] == [403] * len(refused)
    assert completions(engine, check_in) == []
    same_site = client.post(
        done,
        data={"occurrence": str(check_in), "form_token": token},
        headers={"Origin": PUBLIC, "Sec-Fetch-Site": "same-origin"},
    )
    assert same_site.status_code == 303
    assert completions(engine, check_in) == [("alex", "confirm")]


def test_the_households_page_shows_what_both_share_and_no_buttons(client: TestClient) -> None:
    html = client.get(page_path("alex-sam", None)).text

    assert "<form" not in html
    assert "Hello," not in html
    assert 'data-ritual="check-in"' in html
    assert 'data-ritual="appreciation"' not in html  # each partner's own nudges


HOSTILE = """timezone = "America/New_York"

[[households]]
id = "alex-sam"

  [[households.partners]]
  id = "alex"
  name = "<script>alert(1)</script>"
  phone = "+15551230001"
  channels = ["sms"]

  [[households.partners]]
  id = "sam"
  name = "Sam & <b>co</b>"
  phone = "+15551230002"
  channels = ["sms"]

[[rituals]]
id = "date-night"
kind = "date_night"
title = "<img src=x onerror=alert(2)>"
schedule = "every 2 weeks on fri at 19:00"
deck = "ideas"

[decks.ideas]
items = ["<iframe src='https://evil.example'></iframe>"]
"""


def test_html_in_names_titles_and_deck_items_is_shown_as_text(engine: Engine) -> None:
    file = seeded(engine, HOSTILE)
    app = create_app(Ledger(engine), clock=lambda: NOW, links=LINKS, rituals=lambda: file)
    with TestClient(app, base_url=PUBLIC) as client:
        html = client.get(page_path()).text

    assert "<script" not in html and "<img" not in html and "<iframe" not in html
    assert "<b>co" not in html
    assert "Hello, &lt;script&gt;alert(1)&lt;/script&gt;." in html
    assert "Sam &amp; &lt;b&gt;co&lt;/b&gt;" in html
    assert "&lt;img src=x onerror=alert(2)&gt;" in html
    assert "&lt;iframe src=&#39;https://evil.example&#39;&gt;&lt;/iframe&gt;" in html


def test_the_page_carries_the_viewers_own_pulse_and_the_others_only_when_shared(
    engine: Engine,
) -> None:
    text = rituals(extra=OTHER).replace(
        'remind_after = "2h"', 'remind_after = "2h"\npulse = true', 1
    )
    file = plan(engine, text, days=30)
    reply = Replies(engine, file)
    send_due(engine, ny(6, 7, 19, 45))
    reply(ALEX, "4", ny(6, 7, 19, 45))
    reply(SAM, "2", ny(6, 7, 19, 50))
    for shown in (False, True):
        households = [
            h.model_copy(update={"share_pulse": shown}) if h.id == "alex-sam" else h
            for h in file.households
        ]
        now_file = file.model_copy(update={"households": households})
        app = create_app(
            Ledger(engine), clock=lambda: ny(6, 8, 9), links=LINKS, rituals=lambda f=now_file: f
        )
        with TestClient(app, base_url=PUBLIC) as client:
            alex = client.get(page_path()).text
            household = client.get(page_path("alex-sam", None)).text
        assert "Your last 4 weeks: 4 (oldest first; only you see these)." in alex
        assert ("Sam's last 4 weeks: 2" in alex) is shown
        assert ('<h2 id="pulse-h">' in household) is shown


def test_page_links_are_signed_per_page_and_generation() -> None:
    one = LINKS.read_page(LINKS.page_token("alex-sam", "alex", 3))
    household = LINKS.read_page(LINKS.page_token("alex-sam", None, 0))

    assert (one.household, one.partner, one.generation) == ("alex-sam", "alex", 3)
    assert (household.partner, household.generation) == (None, 0)
    assert LINKS.check_form("t", 1, "done", LINKS.form_token("t", 1, "done"))
    assert not LINKS.check_form("t", 1, "done", LINKS.form_token("t", 1, "skip"))
    assert not LINKS.check_form("t", 1, "done", "é" * 64)


def test_the_ledger_raises_a_pages_generation_once_per_rotation(engine: Engine) -> None:
    ledger = Ledger(engine)
    now = datetime(2026, 6, 1, tzinfo=NOW.tzinfo)
    assert ledger.pages.generation("alex-sam", "alex") == 0
    assert [ledger.pages.rotate("alex-sam", "alex", now) for _ in range(3)] == [1, 2, 3]
    assert ledger.pages.generation("alex-sam", None) == 0
    assert ledger.pages.generations("alex-sam", ["alex", "sam"]) == {"alex": 3, "sam": 0}
