"""Regressions from a review of the scheduler service: each test showed a bug, now fixed
(double sends on a channel change or a slow batch, a removed ritual's retry, a busy loop on
a locked row, notifier choice, phone numbers in database errors, a signal during start).

Time is the fake clock of test_dispatcher; rows come from small ritual files through the
planner, exactly as the worker makes them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import ClassVar

import pytest
from fake_notifiers import FakeClock, FakeEmail, FakeSms, MakeDispatcher, TellingSms, transient
from january_couple import ALEX_PHONE, COUPLE, SOLO, at, key, one, plan
from ritual_files import ritual_file
from sqlalchemy import Engine, text

from config.settings import Settings
from notifiers.base import Message, Notifier, SendResult
from notifiers.registry import NotifierSet
from scheduler.db import make_engine
from scheduler.dispatcher import Claim
from scheduler.migrate import upgrade
from scheduler.planner import sync_file
from scheduler.service import Worker

ROOT = Path(__file__).resolve().parents[2]

# ------------------------------------------------------------------ a file change mid-day


def test_a_channel_change_after_the_message_was_sent_does_not_send_it_again_by_the_new_channel(
    engine: Engine,
    clock: FakeClock,
    sms: FakeSms,
    email: FakeEmail,
    make_dispatcher: MakeDispatcher,
) -> None:
    dispatcher = make_dispatcher(engine, sms=sms, email=email)
    plan(engine, SOLO, at(9))
    clock.set(at(12))
    dispatcher.run_until_idle()
    assert sms.sent == [key("alex")]  # the 12:00 check-in went by SMS

    # At 12:30 Alex prefers email. The 12:00 message is still inside its 2 h grace; the
    # planner used to make it again under a new key (the channel is part of it).
    clock.set(at(12, 30))
    plan(engine, SOLO.replace('["sms", "email"]', '["email", "sms"]'), at(12, 30))
    dispatcher.run_until_idle()

    day_of = [k for k in sms.sent + email.sent if "/alex/day_of/" in k and "T12:00" in k]
    assert day_of == [key("alex")], f"Alex got the 12:00 check-in {len(day_of)} times"


def test_a_channel_change_does_not_leave_the_old_channels_pending_reminder_to_be_sent_too(
    engine: Engine,
    clock: FakeClock,
    sms: FakeSms,
    email: FakeEmail,
    make_dispatcher: MakeDispatcher,
) -> None:
    text_ = SOLO + 'remind_after = "2h"\n'
    dispatcher = make_dispatcher(engine, sms=sms, email=email)
    plan(engine, text_, at(9))
    clock.set(at(12))
    dispatcher.run_until_idle()

    # After the day_of went out (and after its grace), Alex switches to email. The 14:00
    # reminder of the 12:00 occurrence was planned on SMS; the occurrence is in the past,
    # and _cancel_stale used to keep the SMS reminder beside the new email one.
    clock.set(at(14, 1))
    plan(engine, text_.replace('["sms", "email"]', '["email", "sms"]'), at(14, 1))
    clock.set(at(14, 5))
    dispatcher.run_until_idle()

    reminders = [k for k in sms.sent + email.sent if "/alex/reminder/" in k and "T12:00" in k]
    assert len(reminders) == 1, f"Alex got {reminders}"


def test_a_delivery_in_flight_when_its_ritual_is_removed_is_not_retried_after_the_removal(
    engine: Engine,
    clock: FakeClock,
    sms: FakeSms,
    email: FakeEmail,
    make_dispatcher: MakeDispatcher,
) -> None:
    dispatcher = make_dispatcher(engine, sms=sms, email=email)
    plan(engine, SOLO, at(9))
    clock.set(at(12))
    claims = dispatcher.claim(at(12), 10)
    assert [c.partner_key for c in claims] == ["alex"]

    # While the provider call is in flight, the ritual is removed from the file.
    without = SOLO.replace('id = "check-in"', 'id = "walk"').replace("12:00", "18:00")
    clock.set(at(12, 0, 30))
    plan(engine, without, at(12, 0, 30))
    sms.fail_next(transient())
    dispatcher.process(claims[0])  # a transient failure: back to pending, old generation

    # Later plans and dispatches: the removed ritual's message must not go out.
    clock.set(at(12, 5))
    plan(engine, without, at(12, 5))
    dispatcher.run_until_idle()
    assert sms.sent == [], "a message of a ritual removed from the file was sent"
    assert one(engine, ritual_id="check-in", due_at=at(12))["status"] == "cancelled"


# ------------------------------------------------------------------ claims and reconcile


def test_a_claim_older_than_the_claim_timeout_is_not_sent_both_by_its_worker_and_another(
    engine: Engine, clock: FakeClock, make_dispatcher: MakeDispatcher
) -> None:
    telling = TellingSms(clock)  # even a channel that can say what it sent
    slow = make_dispatcher(
        engine, sms=telling, worker_id="slow", claim_timeout=timedelta(minutes=5)
    )
    # PostgreSQL: another worker's reconcile job; SQLite: the same worker's own.
    other = (
        make_dispatcher(engine, sms=telling, worker_id="other", claim_timeout=timedelta(minutes=5))
        if engine.dialect.name == "postgresql"
        else slow
    )
    plan(engine, COUPLE, at(9))
    clock.set(at(12))
    claims = slow.claim(at(12), 200)  # a long batch: these wait in the senders' queue
    assert len(claims) == 2

    clock.set(at(12, 6))  # the batch is still going after the claim timeout
    other.reconcile()  # nothing was sent yet: back to pending...
    other.run_until_idle()  # ...and claimed again and sent
    for claim in claims:  # the slow worker reaches its queued claims and sends them too
        slow.process(claim)

    sends = Counter(telling.call_keys())
    assert all(n == 1 for n in sends.values()), f"sent twice: {sends}"


def test_a_worker_on_postgresql_does_not_spin_while_a_due_delivery_is_locked_elsewhere(
    pg_engine: Engine, tmp_path: Path
) -> None:
    """A due row another transaction holds (the planner's upsert of a big chunk, its
    cancellations, another worker's claim) is skipped by the claim; `_arm` used to re-arm
    the wake-up at once, the row being still the earliest pending: a hot loop of
    mark_missed + claim + next_due against the database until the lock went."""
    clock = FakeClock(at(12, 1))
    plan(pg_engine, SOLO, at(9))
    config = tmp_path / "tend.toml"
    config.write_text(SOLO)
    worker = Worker(pg_engine, config, NotifierSet(overrides={"sms": FakeSms(clock)}), clock=clock)
    claims = 0
    claim = worker.dispatcher.claim

    def counting(now: datetime, limit: int) -> list[Claim]:
        nonlocal claims
        claims += 1
        return claim(now, limit)

    worker.dispatcher.claim = counting  # type: ignore[method-assign]
    holder = pg_engine.connect()
    try:
        holder.execute(
            text("SELECT id FROM delivery WHERE due_at = :due FOR UPDATE"),
            {"due": at(12).replace(tzinfo=None)},
        )
        worker._scheduler.start()
        worker.dispatch()
        time.sleep(1.0)  # real time only to count the loop's turns; no schedule is awaited
        turns = claims
    finally:
        worker.dispatcher.stop()
        worker._scheduler.shutdown(wait=True)
        worker.dispatcher.close()
        holder.rollback()
        holder.close()
    assert turns <= 5, f"{turns} claims in one second while one row was locked"


# ------------------------------------------------------------------ notifiers


class PluginSms(Notifier):
    """A third-party SMS notifier (SignalWire, say): needs no Twilio variables."""

    channel: ClassVar[str] = "sms"

    def _send(self, message: Message) -> SendResult:
        return SendResult(provider_id="plugin")


def test_a_tend_notifiers_override_for_sms_is_used_without_twilio_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    for name in list(os.environ):
        if name.startswith(("TWILIO_", "SMTP_", "TEND_NOTIFIERS")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TEND_NOTIFIERS", "sms=tests.scheduler.test_regressions:PluginSms")
    settings = Settings()
    notifiers = NotifierSet(settings, overrides=settings.notifiers)
    # README: `TEND_NOTIFIERS=sms=tend_signalwire:SignalWireNotifier` picks the class. The
    # override used to be ignored without TWILIO_*: every SMS printed and recorded as sent.
    assert type(notifiers.get("sms")) is PluginSms


def test_with_twilio_variables_sms_goes_to_twilio_and_checking_it_does_not_call_out(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("TWILIO_", "SMTP_", "TEND_NOTIFIERS")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "0" * 32)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "secret")
    monkeypatch.setenv("TWILIO_FROM", "+15550000000")
    # Nothing listens on port 9: building the notifier at start must not call the API.
    monkeypatch.setenv("TWILIO_API_BASE_URL", "http://127.0.0.1:9")
    settings = Settings()
    notifiers = NotifierSet(settings, overrides=settings.notifiers)
    # With the Twilio variables set, `tend worker` once refused to start, blaming
    # TEND_NOTIFIERS; now the start builds the Twilio notifier (and nothing else).
    notifiers.check(["sms", "console"])
    assert type(notifiers.get("sms")).__name__ == "SmsNotifier"
    assert notifiers.get("email").channel == "console"  # no SMTP settings
    notifiers.close()


# ------------------------------------------------------------------ secrets in logs


def test_a_database_error_while_mirroring_partners_does_not_carry_their_phone_numbers(
    pg_engine: Engine, postgres_url: str
) -> None:
    # A database hiccup during planning (failover, lock timeout, restart) raises from the
    # partner upsert; APScheduler logs the exception, and SQLAlchemy puts the statement's
    # parameters in its text: every partner's phone number and email address.
    engine = make_engine(postgres_url, connect_args={"options": "-c lock_timeout=200"})
    holder = pg_engine.connect()
    try:
        holder.execute(text("LOCK TABLE partner IN ACCESS EXCLUSIVE MODE"))
        with pytest.raises(Exception) as raised:
            sync_file(engine, ritual_file(COUPLE), at(9))
    finally:
        holder.rollback()
        holder.close()
        engine.dispose()
    message = str(raised.value)
    assert "+15551230001" not in message and "alex@example.com" not in message, message[:400]


# ------------------------------------------------------------------ stopping


SLOW_START = '''
import os, time
from pathlib import Path
from notifiers.base import Message, Notifier, SendResult

class SlowToAsk(Notifier):
    """Asked about an interrupted send at start, it takes a few seconds to answer."""
    channel = "console"
    can_tell_sent = True

    def _send(self, message: Message) -> SendResult:
        return SendResult(provider_id="x")

    def was_sent(self, message, since):
        Path(os.environ["TEND_TEST_MARK"]).write_text("asking")
        time.sleep(3)
        return None
'''


def test_tend_run_stops_on_a_signal_that_arrives_while_it_starts(tmp_path: Path) -> None:
    """SIGTERM during the start (plan, reconcile) used to be lost by `tend run`, which then
    served HTTP until a second signal or SIGKILL."""
    (tmp_path / "slow_start.py").write_text(SLOW_START)
    config = tmp_path / "tend.toml"
    config.write_text(
        'timezone = "UTC"\n[[households]]\nid = "us"\n'
        'partners = [{ id = "ann", name = "Ann", channels = ["console"] }]\n'
        '[[rituals]]\nid = "hello"\nkind = "custom"\nschedule = "daily at 12:00"\n'
        'message = "Hi {{ partner }}"\n'
    )
    url = f"sqlite:///{tmp_path}/tend.db"
    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as connection:  # a delivery a crash left in `sending`
        connection.execute(
            text(
                "INSERT INTO household (id, timezone, active, created_at, updated_at) "
                "VALUES ('us', 'UTC', 1, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO partner (household_id, key, name, channels, timezone, active) "
                "VALUES ('us', 'ann', 'Ann', 'console', 'UTC', 1)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO occurrence (household_id, ritual_id, slot, recipient, kind, at, "
                "status, planners, generation, created_at, updated_at) VALUES ('us', 'old', "
                "'2026-01-01 12:00:00', '', 'custom', '2026-01-01 12:00:00', 'open', '', 0, "
                "'2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO delivery (occurrence_id, household_id, partner_key, role, channel,"
                " status, due_at, next_attempt_at, expires_at, attempts, body, generation, "
                "claimed_by, claimed_at, created_at, updated_at) VALUES (1, 'us', 'ann', "
                "'day_of', 'console', 'sending', '2026-01-01 12:00:00', '2026-01-01 12:00:00',"
                " '2026-01-01 14:00:00', 0, 'Hi', 0, 'crashed', '2026-01-01 12:00:00', "
                "'2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            )
        )
    engine.dispose()
    mark = tmp_path / "asking"
    with socket.socket() as probe:  # a free port (`--port 0` means the default, 8000)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = (tmp_path / "run.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "tend", "run", "--config", str(config), "--port", str(port)],
        cwd=tmp_path,
        env={
            **os.environ,
            "DATABASE_URL": url,
            "TEND_NOTIFIERS": "console=slow_start:SlowToAsk",
            "TEND_TEST_MARK": str(mark),
            "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
        },
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    try:
        deadline = time.monotonic() + 30
        while not mark.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        assert mark.exists(), (tmp_path / "run.log").read_text()
        process.send_signal(signal.SIGTERM)  # while the worker reconciles at start
        try:
            code = process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            code = None
        assert code == 0, (
            "tend run did not stop within 10 s of SIGTERM:\n"
            + (tmp_path / "run.log").read_text()[-2000:]
        )
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# ------------------------------------------------------------------ opt-outs and addresses


def test_an_opt_out_belongs_to_the_address_and_a_new_address_starts_without_it(
    engine: Engine,
) -> None:
    from sqlalchemy import select, update

    from scheduler.models import Partner

    def opted() -> tuple[object, object]:
        with engine.connect() as connection:
            row = connection.execute(
                select(Partner.sms_opted_out_at, Partner.email_opted_out_at).where(
                    Partner.key == "alex"
                )
            ).one()
        return row[0], row[1]

    plan(engine, SOLO, at(9))
    with engine.begin() as connection:
        connection.execute(
            update(Partner)
            .where(Partner.key == "alex")
            .values(sms_opted_out_at=at(9), email_opted_out_at=at(9))
        )
    # Any other change keeps both opt-outs.
    plan(engine, SOLO.replace('name = "Alex"', 'name = "Alexandra"'), at(10))
    assert opted() == (at(9), at(9))
    # A new number starts without the SMS opt-out; the e-mail address did not change.
    plan(engine, SOLO.replace(ALEX_PHONE, "+15551230009"), at(11))
    assert opted() == (None, at(9))
    # And a new e-mail address without the e-mail one.
    plan(
        engine,
        SOLO.replace(ALEX_PHONE, "+15551230009").replace("alex@example.com", "al@example.com"),
        at(12),
    )
    assert opted() == (None, None)


def test_an_opt_out_survives_a_change_of_case_or_the_address_removed_and_written_back(
    engine: Engine,
) -> None:
    from sqlalchemy import select, update

    from scheduler.models import Partner

    def email_opted() -> object:
        with engine.connect() as connection:
            return connection.execute(
                select(Partner.email_opted_out_at).where(Partner.key == "alex")
            ).scalar_one()

    plan(engine, SOLO, at(9))
    with engine.begin() as connection:
        connection.execute(
            update(Partner).where(Partner.key == "alex").values(email_opted_out_at=at(9))
        )
    plan(engine, SOLO.replace("alex@example.com", "Alex@Example.com"), at(10))
    assert email_opted() == at(9)
    without = SOLO.replace('email = "alex@example.com"\n', "").replace('"sms", "email"', '"sms"')
    assert "alex@example.com" not in without
    plan(engine, without, at(11))
    assert email_opted() == at(9)
    plan(engine, SOLO, at(12))
    assert email_opted() == at(9)
