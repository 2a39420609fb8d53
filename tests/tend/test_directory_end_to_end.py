"""A ritual directory for real, on loopback: `tend run --config DIR` texts a partner through
the fake Twilio API, the partner's signed DONE comes back to `/twilio/sms` and is answered
from its household's file; an edit of one household's file is planned and live while the
service runs, and a broken household file next to it holds back no one.

Every wait polls with a deadline; the ritual is due a few minutes ago, inside its grace, so
the first plan sends it at once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.etree import ElementTree

import httpx
from fake_twilio import FakeTwilio
from loopback import free_port, healthy, wait_for_log
from sqlalchemy import select
from tend_process import tend
from twilio.request_validator import RequestValidator

from scheduler.ledger.engine import make_engine
from scheduler.ledger.rows import DeliveryRow

ROOT = Path(__file__).resolve().parents[2]
SUPPORT = ROOT / "tests" / "support"
OUR_NUMBER = "+15550001111"
DEADLINE = 60.0


def household(n: int, name: str) -> str:
    return f"""\
[[partners]]
id = "a"
name = "{name}"
phone = "+1555123{n:04d}"
channels = ["sms"]
"""


def pending_bodies(database: str, household_id: str) -> list[str]:
    engine = make_engine(database)
    try:
        with engine.connect() as connection:
            return list(
                connection.execute(
                    select(DeliveryRow.body).where(
                        DeliveryRow.household_id == household_id,
                        DeliveryRow.status == "pending",
                    )
                ).scalars()
            )
    finally:
        engine.dispose()


def test_tend_run_on_a_directory_answers_from_the_household_file_and_picks_up_an_edit(
    tmp_path: Path, database_url: str
) -> None:
    now = datetime.now(UTC)
    due = now - timedelta(minutes=3)
    root = tmp_path / "rituals"
    (root / "households").mkdir(parents=True)
    (root / "rituals.toml").write_text(
        f"""\
timezone = "UTC"

[[rituals]]
id = "check-in"
title = "Evening check-in"
kind = "check_in"
schedule = "daily at {due:%H:%M}"
message = "Check-in time, {{{{ partner }}}}. Reply DONE after."
"""
    )
    for n, name in enumerate(["Alex", "Kim", "Robin"]):
        (root / "households" / f"h{n}.toml").write_text(household(n, name))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "run.log"
    with FakeTwilio() as twilio:
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
            TEND_PUBLIC_URL=base,
            TEND_SECRET_KEY="directory-end-to-end-secret",
            TEND_HORIZON_DAYS="1",
        )
        command = [sys.executable, "-m", "tend", "run", "--config", str(root), "--port", str(port)]
        with log.open("wb") as out:
            service = subprocess.Popen(
                command, cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        try:
            wait_for_log(DEADLINE, lambda: healthy(base), "/healthz", log)
            for n, name in enumerate(["Alex", "Kim", "Robin"]):
                phone = f"+1555123{n:04d}"
                wait_for_log(
                    DEADLINE,
                    lambda phone=phone: bool(twilio.sent_to(phone)),
                    f"{name}'s nudge",
                    log,
                )
                [nudge] = twilio.sent_to(phone)
                assert nudge["body"].startswith(f"Check-in time, {name}."), nudge["body"]

            form = {
                "MessageSid": "SM" + "a1" * 16,
                "From": "+15551230001",
                "To": OUR_NUMBER,
                "Body": "DONE",
                "AccountSid": twilio.account_sid,
            }
            url = f"{base}/twilio/sms"
            signature = RequestValidator(twilio.auth_token).compute_signature(url, form)
            answered = httpx.post(url, data=form, headers={"X-Twilio-Signature": signature})
            assert answered.status_code == 200, answered.text
            [message] = ElementTree.fromstring(answered.text).findall("Message")
            assert "Evening check-in" in (message.text or ""), message.text
            assert "That's 1 " in (message.text or ""), message.text

            # One household edited, another broken: the edit is planned, the rest goes on.
            (root / "households" / "h1.toml").write_text(household(1, "Kimberly"))
            (root / "households" / "h2.toml").write_text("[[partners]\n")
            wait_for_log(
                DEADLINE,
                lambda: any("Kimberly" in b for b in pending_bodies(database_url, "h1")),
                "the edit of h1.toml planned",
                log,
            )
            assert any("Robin" in b for b in pending_bodies(database_url, "h2")), "h2 as it was"
            wait_for_log(
                DEADLINE, lambda: "h2.toml:1:" in log.read_text(), "h2.toml's error logged", log
            )
            text = log.read_text()
            assert "stays on its last good version" in text
            assert "+15551230001" not in text, "no phone number in the log"

            # `tend status`, another process, says so too, until the file is mended.
            status = tend("status", cwd=tmp_path, env={"DATABASE_URL": database_url})
            assert status.returncode == 0, status.stderr
            assert "Ritual file problems" in status.stdout
            assert "households/h2.toml:1:" in status.stdout, status.stdout
            (root / "households" / "h2.toml").write_text(household(2, "Robin"))
            wait_for_log(
                DEADLINE,
                lambda: (
                    "Ritual file problems"
                    not in tend("status", cwd=tmp_path, env={"DATABASE_URL": database_url}).stdout
                ),
                "h2.toml's problem gone from `tend status`",
                log,
            )
        finally:
            service.send_signal(signal.SIGTERM)
            code = service.wait(timeout=DEADLINE)
    assert code == 0, log.read_text()[-4000:]
