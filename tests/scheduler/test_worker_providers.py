"""`tend worker` for real with the real notifiers: the fake Twilio API and an aiosmtpd server
on loopback, configured only through the environment, as in production."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fake_twilio import FakeTwilio
from ritual_files import couple_file, partner_table, write_ritual_file
from smtp_server import SmtpServer
from sqlalchemy import select

from notifiers.links import Links
from scheduler.ledger.engine import make_engine
from scheduler.ledger.rows import DeliveryRow, PartnerRow

ROOT = Path(__file__).resolve().parents[2]
SECRET = "worker-provider-test-secret"


def couple_at(at: datetime) -> str:
    """Alex and Sam, each by SMS and then e-mail, and a check-in daily at `at` (UTC)."""
    return couple_file(
        partner_table("alex", phone=True, email=True, channels=["sms", "email"]),
        partner_table("sam", phone=True, email=True, channels=["sms", "email"]),
        rituals=f"""
[[rituals]]
id = "check-in"
kind = "custom"
schedule = "daily at {at:%H:%M}"
message = "Check-in time, {{{{ partner }}}}: it\u2019s your turn \u2014 ten minutes."
""",
    )


@pytest.fixture
def servers() -> Iterator[tuple[FakeTwilio, SmtpServer]]:
    with FakeTwilio() as twilio, SmtpServer(username="tend", password="p@ss w0rd!") as smtp:
        yield twilio, smtp


def wait_for(condition: Callable[[], bool], timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}\n{log.read_text(errors='replace')[-4000:]}")


def test_a_worker_texts_one_partner_and_emails_the_one_who_opted_out_of_sms(
    tmp_path: Path, servers: tuple[FakeTwilio, SmtpServer]
) -> None:
    twilio, smtp = servers
    twilio.opted_out.add("+15551230002")  # Sam once texted STOP to our number
    now = datetime.now(UTC)
    # Due a few minutes ago, inside grace: the worker sends at once.
    config = write_ritual_file(tmp_path, couple_at(now - timedelta(minutes=3)))
    database = f"sqlite:///{tmp_path / 'tend.db'}"
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("TWILIO_", "SMTP_", "TEND_"))
    }
    env.update(
        PYTHONPATH=str(ROOT),
        DATABASE_URL=database,
        TWILIO_ACCOUNT_SID=twilio.account_sid,
        TWILIO_AUTH_TOKEN=twilio.auth_token,
        TWILIO_FROM="+15550001111",
        TWILIO_API_BASE_URL=twilio.base_url,
        SMTP_URL=smtp.url(),
        SMTP_FROM="Tend <tend@example.com>",
        TEND_PUBLIC_URL="https://tend.example.com",
        TEND_SECRET_KEY=SECRET,
        TEND_HORIZON_DAYS="1",
    )
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "tend", "worker", "--config", str(config)],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: len(smtp.messages) == 1, 30, "Sam's e-mail", log)
        wait_for(lambda: len(twilio.messages) == 1, 5, "Alex's SMS", log)
    finally:
        worker.terminate()
        code = worker.wait(timeout=20)
    assert code == 0, log.read_text()

    [sms] = twilio.messages
    assert sms["to"] == "+15551230001"
    # Typography made GSM-7 on the way out: one segment, not two.
    assert sms["body"] == "Check-in time, Alex: it's your turn - ten minutes."
    assert sms["status_callback"] == "https://tend.example.com/twilio/status"

    [mail] = smtp.messages
    assert mail.rcpt_tos == ["sam@example.com"]
    assert smtp.auth_logins == ["tend"]
    message = mail.message
    assert message["Subject"] == "Tend: check in"  # the ritual has no title: its id
    text = message.get_body(preferencelist=("plain",))
    assert text is not None
    assert "Check-in time, Sam: it\u2019s your turn \u2014 ten minutes." in text.get_content()
    links = Links("https://tend.example.com", SECRET)
    unsubscribe = str(message["List-Unsubscribe"]).strip("<>")
    assert links.read_unsubscribe(unsubscribe.rsplit("/", 1)[1]).partner == "sam"

    engine = make_engine(database)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(
                    DeliveryRow.partner_key,
                    DeliveryRow.channel,
                    DeliveryRow.status,
                    DeliveryRow.provider_id,
                ).where(DeliveryRow.due_at <= now)  # not tomorrow's
            ).all()
            opted = dict(
                connection.execute(select(PartnerRow.key, PartnerRow.sms_opted_out_at)).all()
            )
    finally:
        engine.dispose()
    outcome = {(p, c): (s, pid) for p, c, s, pid in rows}
    assert outcome[("alex", "sms")] == ("sent", sms["sid"])
    assert outcome[("sam", "sms")][0] == "failed"
    assert outcome[("sam", "email")] == ("sent", str(message["Message-ID"]).strip("<>"))
    assert opted["sam"] is not None and opted["alex"] is None

    written = log.read_text()
    for secret in ("+15551230001", "+15551230002", twilio.auth_token, "p@ss w0rd!", SECRET):
        assert secret not in written
