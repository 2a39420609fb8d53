"""The whole loop for real, on loopback: `tend run` texts a partner through the fake Twilio
API, the partner's signed DONE comes back to `/twilio/sms`, and both the TwiML answer and
`tend streaks --format json` say the streak is 1.

The ritual is due a few minutes ago, inside its grace: the first plan of a new ledger sends
it at once, so nothing waits for the clock. Every wait polls with a deadline.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.etree import ElementTree

import httpx
from fake_twilio import FakeTwilio
from loopback import free_port, healthy, wait_for_log
from ritual_files import couple_file, write_ritual_file
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from scheduler.ledger.engine import make_engine
from scheduler.ledger.rows import DeliveryRow

ROOT = Path(__file__).resolve().parents[2]
SUPPORT = ROOT / "tests" / "support"
ALEX = "+15551230001"
SAM = "+15551230002"
OUR_NUMBER = "+15550001111"
TITLE = "Evening check-in"
SECRET = "reply-end-to-end-secret"
DEADLINE = 60.0


def couple_at(at: datetime) -> str:
    """Alex and Sam by SMS, and the evening check-in daily at `at` (UTC)."""
    return couple_file(
        rituals=f"""
[[rituals]]
id = "check-in"
title = "{TITLE}"
kind = "check_in"
schedule = "daily at {at:%H:%M}"
message = "Check-in time, {{{{ partner }}}}: ten minutes, phones down. Reply DONE after."
"""
    )


def reached(database: str, partner: str) -> bool:
    """The worker has recorded the partner's text as sent: a reply can now apply to it."""
    engine = make_engine(database)
    try:
        with engine.connect() as connection:
            status = connection.execute(
                select(DeliveryRow.status).where(
                    DeliveryRow.partner_key == partner, DeliveryRow.sent_at.is_not(None)
                )
            ).scalar()
    finally:
        engine.dispose()
    return status in ("sent", "delivered")


def test_a_signed_done_after_the_nudge_starts_the_streak(tmp_path: Path, database_url: str) -> None:
    with FakeTwilio() as twilio:
        run_the_loop(tmp_path, database_url, twilio)


def run_the_loop(tmp_path: Path, database_url: str, twilio: FakeTwilio) -> None:
    started = time.monotonic()
    now = datetime.now(UTC)
    # Due three minutes ago: inside grace (2 h), so the new ledger's first plan sends it now.
    config = write_ritual_file(tmp_path, couple_at(now - timedelta(minutes=3)))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("TWILIO_", "SMTP_", "TEND_")) and name != "DATABASE_URL"
    }
    env.update(
        PYTHONPATH=os.pathsep.join([str(SUPPORT), str(ROOT)]),
        DATABASE_URL=database_url,
        TWILIO_ACCOUNT_SID=twilio.account_sid,
        TWILIO_AUTH_TOKEN=twilio.auth_token,
        TWILIO_FROM=OUR_NUMBER,
        TWILIO_API_BASE_URL=twilio.base_url,
        TEND_PUBLIC_URL=base,  # what Twilio signs: here, exactly where it posts
        TEND_SECRET_KEY=SECRET,
        TEND_HORIZON_DAYS="1",
    )
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        service = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tend",
                "run",
                "--config",
                str(config),
                "--port",
                str(port),
                "--host",
                "127.0.0.1",
            ],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_log(DEADLINE, lambda: healthy(base), "/healthz to answer 200", log)
        wait_for_log(DEADLINE, lambda: bool(twilio.sent_to(ALEX)), "the nudge to Alex", log)
        wait_for_log(
            DEADLINE, lambda: reached(database_url, "alex"), "Alex's delivery marked sent", log
        )
        [nudge] = twilio.sent_to(ALEX)
        assert nudge["body"].startswith("Check-in time, Alex:")
        assert nudge["from"] == OUR_NUMBER
        sent_at = time.monotonic()

        form = {
            "ToCountry": "US",
            "SmsMessageSid": "SM" + "d0e" * 10 + "ab",
            "NumMedia": "0",
            "SmsSid": "SM" + "d0e" * 10 + "ab",
            "SmsStatus": "received",
            "Body": "DONE",
            "To": OUR_NUMBER,
            "NumSegments": "1",
            "MessageSid": "SM" + "d0e" * 10 + "ab",
            "AccountSid": twilio.account_sid,
            "From": ALEX,
            "ApiVersion": "2010-04-01",
        }
        assert len(form["MessageSid"]) == 34
        url = f"{base}/twilio/sms"
        headers = {
            "X-Twilio-Signature": RequestValidator(twilio.auth_token).compute_signature(url, form),
        }
        forged = {"X-Twilio-Signature": RequestValidator("0" * 32).compute_signature(url, form)}
        with httpx.Client(timeout=10) as client:
            refused = client.post(url, data=form, headers=forged)
            first = client.post(url, data=form, headers=headers)
            again = client.post(url, data=form, headers=headers)  # Twilio retried it

        assert refused.status_code == 403, refused.text  # not Twilio's token: not applied
        assert first.status_code == 200, first.text
        assert first.headers["content-type"].startswith("application/xml")
        answer = ElementTree.fromstring(first.text)
        assert answer.tag == "Response"
        [message] = answer.findall("Message")
        text = message.text or ""
        assert TITLE in text, text
        assert "That's 1 " in text, text
        assert "streak" in text, text

        assert again.status_code == 200, again.text
        assert again.headers["content-type"] == first.headers["content-type"]
        assert again.text == first.text

        streaks = subprocess.run(
            [sys.executable, "-m", "tend", "streaks", "--format", "json", "--config", str(config)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=DEADLINE,
        )
        assert streaks.returncode == 0, streaks.stderr
        found = [
            s
            for s in json.loads(streaks.stdout)
            if s["household"] == "alex-sam" and s["ritual"] == "check-in"
        ]
        assert len(found) == 1, streaks.stdout
        [streak] = found
        assert streak["current"] == 1
        assert streak["longest"] == 1
        assert streak["unit"]
        replied_at = time.monotonic()
    finally:
        service.send_signal(signal.SIGTERM)
        try:
            code = service.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait()
            raise
    written = log.read_text(errors="replace")
    assert code == 0, written
    for secret in (twilio.auth_token, ALEX, SAM, SECRET):
        assert secret not in written
    print(
        f"nudge sent after {sent_at - started:.1f} s, answered and counted after "
        f"{replied_at - started:.1f} s, stopped after {time.monotonic() - started:.1f} s"
    )
