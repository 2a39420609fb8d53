"""Each channel words its call to action: a text asks for a reply ("Reply DONE ..."), an
e-mail (whose replies nobody reads) points at its signed confirm link instead, also when it
is the fallback of a text that could not go. What ``tend plan`` previews is what is sent.

Real notifiers on loopback: the Twilio notifier against the fake Twilio API, the e-mail
notifier against aiosmtpd, with confirm links; the real planner and dispatcher on a SQLite
ledger; the preview through the real ``tend plan --format json``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from fake_notifiers import FakeClock, MakeDispatcher
from fake_twilio import FakeTwilio
from january_couple import at, plan
from ritual_files import couple_file, partner_table, write_ritual_file
from smtp_server import SmtpServer
from sqlalchemy import Engine
from typer.testing import CliRunner

from notifiers.email import EmailNotifier, SmtpTarget
from notifiers.links import Links
from notifiers.sms import SmsNotifier
from scheduler.dispatch.dispatcher import Dispatcher
from tend.cli import app as cli

# Loopback servers: a proxy from the environment must not stand in between.
pytestmark = pytest.mark.usefixtures("no_proxy")


SENDER = "+15550001111"
PUBLIC_URL = "https://tend.example.com"
LINKS = Links(PUBLIC_URL, "wording-test-secret-key")
CONFIRM = re.compile(r"Done it\? Confirm here: (https://tend\.example\.com/confirm/\S+)")
# "Reply", and the commands a text answers (in capitals: "Done it?" is the e-mail's own).
REPLY = re.compile(r"(?i:\breply\b)|\bDONE\b|\bSKIP\b|\bSNOOZE\b")

# Alex is texted first and e-mailed when a text cannot go; Sam is e-mailed only.
FILE = couple_file(
    partner_table("alex", phone=True, email=True, channels=["sms", "email"]),
    partner_table("sam", email=True, channels=["email"]),
    rituals="""
[[rituals]]
id = "check-in"
kind = "check_in"
schedule = "daily at 12:00"
remind_after = "2h"
""",
)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
def dispatcher(
    sqlite_engine: Engine, twilio: FakeTwilio, smtp: SmtpServer, make_dispatcher: MakeDispatcher
) -> Iterator[Dispatcher]:
    sms = SmsNotifier(
        twilio.account_sid,
        twilio.auth_token,
        from_number=SENDER,
        api_base_url=twilio.base_url,
        timeout=2.0,
    )
    email = EmailNotifier(SmtpTarget.parse(smtp.url()), "Tend <tend@example.com>", links=LINKS)
    yield make_dispatcher(sqlite_engine, sms=sms, email=email)
    sms.close()
    email.close()


def preview(tmp_path: Path) -> dict[tuple[str, str], str]:
    """``tend plan --format json`` for Monday: the text of each (recipient, role)."""
    path = write_ritual_file(tmp_path, FILE)
    result = CliRunner().invoke(
        cli,
        ["plan", "--config", str(path), "--from", "2026-01-12", "--days", "1", "--format", "json"],
        env={"TEND_CONFIG": None, "TEND_PUBLIC_URL": None, "TEND_SECRET_KEY": None},
    )
    assert result.exit_code == 0, result.output
    return {(d["recipient"], d["role"]): d["text"] for d in json.loads(result.stdout)}


def plain(mail: EmailMessage) -> str:
    part = mail.get_body(("plain",))
    assert isinstance(part, EmailMessage)
    return str(part.get_content())


def email_to(smtp: SmtpServer, address: str) -> list[EmailMessage]:
    return [m.message for m in smtp.messages if address in m.rcpt_tos]


def test_a_text_says_reply_done_and_an_email_says_confirm_here_as_the_preview_does(
    sqlite_engine: Engine,
    clock: FakeClock,
    twilio: FakeTwilio,
    smtp: SmtpServer,
    dispatcher: Dispatcher,
    tmp_path: Path,
) -> None:
    expected = preview(tmp_path)
    plan(sqlite_engine, FILE, at(9))

    clock.set(at(12))
    dispatcher.run_until_idle()
    clock.set(at(14))
    dispatcher.run_until_idle()

    texted = [m["body"] for m in twilio.messages]
    assert texted == [expected["alex", "day_of"], expected["alex", "reminder"]]
    assert texted[0].endswith(" Reply DONE when you've talked.")
    assert texted[1] == "Did you two get to your check-in? Reply DONE, SKIP or SNOOZE 1h."
    day_of, reminder = email_to(smtp, "sam@example.com")
    for mail, role in ((day_of, "day_of"), (reminder, "reminder")):
        text = plain(mail)
        assert text.startswith(expected["sam", role] + "\n\nDone it? Confirm here: ")
        assert not REPLY.search(text.split("\n\n-- \n")[0]), text
        [url] = CONFIRM.findall(text)
        assert LINKS.read_confirm(url.rsplit("/", 1)[-1]).partner == "sam"
        page = mail.get_body(("html",))
        assert isinstance(page, EmailMessage)
        assert "Done it? Confirm</a>" in str(page.get_content())
    assert expected["sam", "reminder"] == "Did you two get to your check-in?"


def test_an_email_that_stands_in_for_a_text_carries_the_email_wording(
    sqlite_engine: Engine,
    clock: FakeClock,
    twilio: FakeTwilio,
    smtp: SmtpServer,
    dispatcher: Dispatcher,
    tmp_path: Path,
) -> None:
    expected = preview(tmp_path)
    twilio.invalid.add("+15551230001")  # 21211: Alex's texts fail for good
    plan(sqlite_engine, FILE, at(9))

    clock.set(at(12))
    dispatcher.run_until_idle()
    dispatcher.run_until_idle()  # the fallback, due at once

    assert twilio.messages == []
    [mail] = email_to(smtp, "alex@example.com")
    text = plain(mail)
    sms_text = expected["alex", "day_of"]
    email_text = sms_text.removesuffix(" Reply DONE when you've talked.")
    assert email_text != sms_text
    assert text.startswith(email_text + "\n\nDone it? Confirm here: ")
    assert not REPLY.search(text.split("\n\n-- \n")[0]), text
    assert CONFIRM.search(text)
