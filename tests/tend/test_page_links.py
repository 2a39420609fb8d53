"""Where the couple's page is linked: every e-mail's footer (that partner's page, as it is
when the e-mail is sent: after ``--rotate`` the new URL, never the revoked one) and, with
``streak_link = true``, the STREAK answer; nowhere without ``TEND_PUBLIC_URL``.

E-mails go through the real dispatcher and ``EmailNotifier`` to a real SMTP server
(aiosmtpd) on loopback; STREAK through the signed webhook; on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fake_notifiers import FakeClock
from fastapi.testclient import TestClient
from ledger_setup import planned_file
from ritual_files import couple_file, household_table, partner_table, write_ritual_file
from signed_sms import PUBLIC, TOKEN, answer_text
from smtp_server import SmtpServer
from sqlalchemy import Engine, update

from config.loader import RitualFileError, load_ritual_file
from config.model import RitualFile
from notifiers.email import EmailNotifier, SmtpTarget
from notifiers.links import Links
from notifiers.registry import NotifierSet
from notifiers.twilio_webhooks import TwilioWebhooks
from scheduler.acts.wording import NO_STREAKS
from scheduler.dispatch.dispatcher import Dispatcher
from scheduler.ledger import Ledger
from scheduler.ledger.rows import DeliveryRow
from tend.web import create_app

LINKS = Links(PUBLIC, "page-link-test-secret-0123456789")
SENDER = "Tend <tend@example.com>"
ALEX = "+15551230001"
PLANNED = datetime(2026, 1, 12, 0, 0, tzinfo=UTC)
NOW = datetime(2026, 1, 13, 12, 30, tzinfo=UTC)
PAGE = re.compile(r"https://tend\.example\.com(/h/[A-Za-z0-9_.-]+)")


def couple(streak_link: str = "", household: str = "") -> str:
    """Alex on SMS, Sam on e-mail; a daily check-in at 12:00 and Alex's own appreciation
    nudge at 12:10 (and the household kim-solo, which has neither)."""
    text = couple_file(
        partner_table("alex", phone=True, channels=["sms"]),
        partner_table("sam", email=True, channels=["email"]),
        households=household_table("kim-solo", partner_table("kim", email=True)),
        rituals="""
[[rituals]]
id = "check-in"
kind = "check_in"
schedule = "daily at 12:00"
households = ["alex-sam"]

[[rituals]]
id = "appreciation"
kind = "appreciation"
schedule = "daily at 12:10"
to = "alex"
households = ["alex-sam"]
""",
    )
    if household:
        text = text.replace('id = "alex-sam"\n', f'id = "alex-sam"\n{household}\n', 1)
    return f"{streak_link}\n{text}" if streak_link else text


def planned(engine: Engine, tmp_path: Path, text: str) -> RitualFile:
    return planned_file(engine, write_ritual_file(tmp_path, text), PLANNED, 3)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


def send_due(engine: Engine, smtp: SmtpServer, links: Links | None, now: datetime) -> None:
    """What the worker's dispatcher sends at `now`: e-mail through the real notifier."""
    email = EmailNotifier(SmtpTarget.parse(smtp.url()), SENDER, links=links)
    made = Dispatcher(
        Ledger(engine), NotifierSet(overrides={"email": email}), "worker-1", clock=FakeClock(now)
    )
    try:
        made.run_until_idle()
    finally:
        made.close()
        email.close()


def footers(smtp: SmtpServer) -> list[str]:
    """The page path in each e-mail's plain text ("" when it has none), oldest first; the
    HTML part links the same one."""
    found = []
    for received in smtp.messages:
        plain = received.message.get_body(("plain",))
        html = received.message.get_body(("html",))
        assert plain is not None and html is not None
        text, markup = plain.get_content(), html.get_content()
        match = PAGE.search(text)
        found.append(match.group(1) if match else "")
        assert (match is None) == (PAGE.search(markup) is None)
        if match:
            assert f'href="{PUBLIC}{match.group(1)}"' in markup
    return found


def page(engine: Engine, file: RitualFile, path: str) -> int:
    app = create_app(Ledger(engine), clock=lambda: NOW, links=LINKS, rituals=lambda: file)
    with TestClient(app) as client:
        return client.get(path).status_code


def test_every_email_links_its_partners_page_and_after_a_rotation_the_new_one(
    engine: Engine, tmp_path: Path, smtp: SmtpServer
) -> None:
    file = planned(engine, tmp_path, couple())
    send_due(engine, smtp, LINKS, datetime(2026, 1, 12, 12, 5, tzinfo=UTC))
    before = footers(smtp)
    assert before and set(before) == {before[0]} and before[0]  # each links the same page
    old = before[0]
    assert "Your page (streaks, history, what is coming)" in str(
        smtp.messages[0].message.get_body(("plain",))
    )
    assert page(engine, file, old) == 200
    assert LINKS.read_page(old.removeprefix("/h/")).partner == "sam"

    Ledger(engine).pages.rotate("alex-sam", "sam", NOW)  # what `tend page-url --rotate` does
    send_due(engine, smtp, LINKS, datetime(2026, 1, 13, 12, 5, tzinfo=UTC))
    after = footers(smtp)[len(before) :]
    assert after and set(after) == {after[0]}
    new = after[0]
    assert LINKS.read_page(new.removeprefix("/h/")).generation == 1
    assert page(engine, file, new) == 200
    assert page(engine, file, old) == 404  # the revoked URL is never mailed again


def test_without_a_public_url_an_email_links_no_page(
    engine: Engine, tmp_path: Path, smtp: SmtpServer
) -> None:
    planned(engine, tmp_path, couple())
    send_due(engine, smtp, None, datetime(2026, 1, 12, 12, 5, tzinfo=UTC))
    assert footers(smtp) and set(footers(smtp)) == {""}
    assert all("/h/" not in m.data.decode() for m in smtp.messages)


# ---------------------------------------------------------------------------- STREAK


def text(engine: Engine, file: RitualFile, links: Links | None, sid: str, body: str) -> str:
    """Alex's text `body` through the signed webhook; the answer's text."""
    app = create_app(
        Ledger(engine),
        clock=lambda: NOW,
        links=links,
        twilio=TwilioWebhooks(TOKEN, PUBLIC),
        rituals=lambda: file,
    )
    form = {"MessageSid": sid, "AccountSid": "AC" + "0" * 32, "From": ALEX, "Body": body}
    with TestClient(app) as client:
        return answer_text(client, form)


def sent_before_now(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(
            update(DeliveryRow)
            .where(DeliveryRow.due_at <= NOW)
            .values(status="sent", sent_at=DeliveryRow.due_at)
        )


@pytest.mark.parametrize(
    ("streak_link", "household", "linked"),
    [
        ("", "", False),
        ("streak_link = true", "", True),
        ("streak_link = true", "streak_link = false", False),
        ("", "streak_link = true", True),
    ],
    ids=["default-off", "file-on", "household-off", "household-on"],
)
def test_the_streak_answer_carries_the_page_only_when_the_file_asks(
    engine: Engine, tmp_path: Path, streak_link: str, household: str, linked: bool
) -> None:
    file = planned(engine, tmp_path, couple(streak_link, household))
    sent_before_now(engine)
    assert text(engine, file, LINKS, "SM" + "0" * 32, "STREAK").startswith(NO_STREAKS)
    done = text(engine, file, LINKS, "SM" + "9" * 32, "DONE")  # Alex kept today's nudge
    assert "/h/" not in done  # the link is the STREAK answer's only
    answer = text(engine, file, LINKS, "SM" + "1" * 32, "STREAK")
    assert answer.startswith("Streaks in a row: appreciation 1 (best 1).")
    found = PAGE.search(answer)
    assert (found is not None) == linked, answer
    if found:
        assert answer.endswith(f" Your page: {PUBLIC}{found.group(1)}")
        assert LINKS.read_page(found.group(1).removeprefix("/h/")).partner == "alex"
        assert page(engine, file, found.group(1)) == 200


def test_without_a_public_url_the_streak_answer_has_no_link_even_when_asked(
    engine: Engine, tmp_path: Path
) -> None:
    file = planned(engine, tmp_path, couple("streak_link = true"))
    sent_before_now(engine)
    assert "/h/" not in text(engine, file, None, "SM" + "2" * 32, "STREAK")


def test_the_streak_link_is_the_partners_page_as_it_is_now(engine: Engine, tmp_path: Path) -> None:
    file = planned(engine, tmp_path, couple("streak_link = true"))
    sent_before_now(engine)
    Ledger(engine).pages.rotate("alex-sam", "alex", NOW)
    found = PAGE.search(text(engine, file, LINKS, "SM" + "3" * 32, "STREAK"))
    assert found is not None
    assert LINKS.read_page(found.group(1).removeprefix("/h/")).generation == 1


# ---------------------------------------------------------------------------- the file


def test_streak_link_must_be_true_or_false_at_its_line(tmp_path: Path) -> None:
    path = write_ritual_file(tmp_path, couple('streak_link = "yes"'))
    with pytest.raises(RitualFileError) as caught:
        load_ritual_file(path, today=PLANNED)
    [problem] = caught.value.problems
    assert (problem.line, problem.dotted) == (1, "streak_link")
    assert f"{path}:1: streak_link:" in str(caught.value)


def test_the_json_schema_has_streak_link_off_by_default() -> None:
    schema: dict[str, Any] = RitualFile.model_json_schema(mode="validation")
    assert schema["properties"]["streak_link"]["default"] is False
    assert "streak_link" in schema["$defs"]["Household"]["properties"]
