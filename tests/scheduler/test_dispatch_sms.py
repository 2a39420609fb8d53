"""The dispatcher with the real Twilio notifier, the real ``twilio`` library and the fake
Twilio API on loopback, on a SQLite ledger: sent once, opt-outs, Retry-After, a send that
timed out after the provider took it, and a crash in the middle of a send.

Time is the scheduler tests' fake clock, shared with the fake Twilio (its
``date_created``), so `was_sent` sees the provider's clock and the ledger's agree.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from fake_notifiers import FakeClock, FakeEmail, MakeDispatcher
from fake_twilio import FakeTwilio
from january_couple import (
    ALEX_MASKED,
    ALEX_PHONE,
    COUPLE,
    QUIET,
    SAM_PHONE,
    SOLO,
    at,
    deliveries,
    interrupt,
    key,
    one,
    partner,
    plan,
)
from sqlalchemy import Engine, update
from sqlalchemy.exc import OperationalError

from notifiers.sms import SmsNotifier
from scheduler.dispatch.dispatcher import UNSURE, Dispatcher
from scheduler.ledger import Ledger
from scheduler.ledger.rows import PartnerRow

# Loopback servers: a proxy from the environment must not stand in between.
pytestmark = pytest.mark.usefixtures("no_proxy")


SENDER = "+15550001111"
TIMEOUT = 0.3
STALL = 2.0  # longer than TIMEOUT; the fake's stop() cuts it short at teardown


@pytest.fixture
def sms_notifier(twilio: FakeTwilio) -> Iterator[SmsNotifier]:
    notifier = SmsNotifier(
        twilio.account_sid,
        twilio.auth_token,
        from_number=SENDER,
        api_base_url=twilio.base_url,
        status_callback="https://tend.example.com/twilio/status",
        timeout=TIMEOUT,
    )
    yield notifier
    notifier.close()


@pytest.fixture
def engine(sqlite_engine: Engine) -> Engine:
    return sqlite_engine


@pytest.fixture
def dispatcher(
    engine: Engine, sms_notifier: SmsNotifier, email: FakeEmail, make_dispatcher: MakeDispatcher
) -> Dispatcher:
    return make_dispatcher(engine, sms=sms_notifier, email=email)


def posts_to(twilio: FakeTwilio, number: str) -> int:
    """Create requests the fake has answered for `number` (stalled ones count once answered)."""
    return sum(1 for r in twilio.requests if r.method == "POST" and r.params.get("To") == number)


def time_out_after_twilio_took_it(
    engine: Engine, clock: FakeClock, twilio: FakeTwilio, dispatcher: Dispatcher
) -> None:
    """Alex's 12:00 check-in: Twilio records it on arrival and answers after the client gave
    up, so the attempt ends unsure."""
    twilio.stall_next(STALL)
    plan(engine, SOLO, at(9))
    clock.set(at(12))
    dispatcher.run_until_idle()


# ---------------------------------------------------------------------------- sent once


def test_a_due_sms_is_sent_once_and_recorded_with_the_providers_sid(
    engine: Engine, clock: FakeClock, twilio: FakeTwilio, dispatcher: Dispatcher
) -> None:
    plan(engine, COUPLE, at(9))

    clock.set(at(12))
    assert dispatcher.run_until_idle() == 2
    assert dispatcher.run_until_idle() == 0

    assert len(twilio.messages) == 2
    for who, number in (("alex", ALEX_PHONE), ("sam", SAM_PHONE)):
        [recorded] = twilio.sent_to(number)
        row = one(engine, partner_key=who, due_at=at(12))
        assert row["status"] == "sent"
        assert row["provider_id"] == recorded["sid"]
        assert row["sent_at"] == at(12)
        assert row["attempts"] == 1
        assert row["last_error"] is None
        assert recorded["body"] == row["body"]
        assert recorded["from"] == SENDER
        assert recorded["status_callback"] == "https://tend.example.com/twilio/status"


# ---------------------------------------------------------------------------- provider errors


def test_an_opt_out_is_recorded_falls_back_to_email_and_stops_further_sms(
    engine: Engine,
    clock: FakeClock,
    twilio: FakeTwilio,
    email: FakeEmail,
    dispatcher: Dispatcher,
) -> None:
    twilio.opted_out.add(ALEX_PHONE)  # Alex replied STOP: Twilio answers 21610
    plan(engine, COUPLE, at(9))

    clock.set(at(12))
    dispatcher.run_until_idle()

    assert partner(engine, "alex")["sms_opted_out_at"] == at(12)
    assert partner(engine, "sam")["sms_opted_out_at"] is None
    row = one(engine, partner_key="alex", channel="sms", due_at=at(12))
    assert row["status"] == "failed"
    assert row["attempts"] == 1
    assert "21610" in row["last_error"]
    fallback = one(engine, partner_key="alex", channel="email", due_at=at(12))
    assert fallback["status"] == "pending"

    dispatcher.run_until_idle()
    assert email.sent == [key("alex", channel="email")]

    # The next day: no SMS is attempted to Alex; the email goes; Sam's SMS goes.
    clock.set(at(12, day=1))
    dispatcher.run_until_idle()
    dispatcher.run_until_idle()

    assert twilio.sent_to(ALEX_PHONE) == []
    assert posts_to(twilio, ALEX_PHONE) == 1  # the one refused with 21610, never again
    later = one(engine, partner_key="alex", channel="sms", due_at=at(12, day=1))
    assert later["status"] == "cancelled"
    assert later["attempts"] == 0
    assert email.sent == [
        key("alex", channel="email"),
        key("alex", channel="email", slot="2026-01-13T12:00"),
    ]
    assert len(twilio.sent_to(SAM_PHONE)) == 2


def test_a_permanent_error_quoting_the_number_is_masked_in_the_ledger(
    engine: Engine,
    clock: FakeClock,
    twilio: FakeTwilio,
    email: FakeEmail,
    dispatcher: Dispatcher,
) -> None:
    twilio.fail_next(400, 21211, message=f"The 'To' number {ALEX_PHONE} is not a valid number.")
    plan(engine, SOLO, at(9))

    clock.set(at(12))
    dispatcher.run_until_idle()
    dispatcher.run_until_idle()

    row = one(engine, channel="sms", due_at=at(12))
    assert row["status"] == "failed"
    assert ALEX_PHONE not in row["last_error"]
    assert ALEX_MASKED in row["last_error"]
    assert email.sent == [key("alex", channel="email")]
    assert twilio.messages == []


def test_a_429_with_retry_after_leaves_the_delivery_pending_until_then(
    engine: Engine, clock: FakeClock, twilio: FakeTwilio, dispatcher: Dispatcher
) -> None:
    twilio.fail_next(429, 20429, retry_after=120)
    plan(engine, SOLO, at(9))

    clock.set(at(12))
    dispatcher.run_until_idle()

    row = one(engine, channel="sms", due_at=at(12))
    assert row["status"] == "pending"
    assert row["attempts"] == 1
    assert row["claimed_by"] is None
    assert row["next_attempt_at"] >= at(12) + timedelta(seconds=120)
    assert "20429" in row["last_error"]
    assert not row["last_error"].startswith(UNSURE)
    assert twilio.messages == []

    clock.set(row["next_attempt_at"] - timedelta(seconds=1))
    dispatcher.run_until_idle()
    assert posts_to(twilio, ALEX_PHONE) == 1

    clock.set(row["next_attempt_at"])
    dispatcher.run_until_idle()
    [recorded] = twilio.messages
    sent = one(engine, channel="sms", due_at=at(12))
    assert (sent["status"], sent["provider_id"], sent["attempts"]) == ("sent", recorded["sid"], 2)
    assert sent["last_error"] is None


# ---------------------------------------------------------------------------- timeouts


def test_a_send_that_timed_out_after_the_provider_took_it_is_not_sent_again(
    engine: Engine, clock: FakeClock, twilio: FakeTwilio, dispatcher: Dispatcher
) -> None:
    time_out_after_twilio_took_it(engine, clock, twilio, dispatcher)

    row = one(engine, channel="sms", due_at=at(12))
    assert row["status"] == "pending"
    assert row["attempts"] == 1
    assert row["last_error"].startswith(UNSURE)
    assert ALEX_PHONE not in row["last_error"]
    [recorded] = twilio.messages

    clock.set(row["next_attempt_at"])
    dispatcher.run_until_idle()

    assert twilio.messages == [recorded]  # asked, not sent again
    sent = one(engine, channel="sms", due_at=at(12))
    assert sent["status"] == "sent"
    assert sent["provider_id"] == recorded["sid"]
    assert sent["attempts"] == 2
    assert sent["last_error"] is None
    assert [r.params for r in twilio.requests if r.method == "GET"] == [
        {"To": ALEX_PHONE, "From": SENDER, "PageSize": "50"}
    ]


def test_a_database_error_after_an_unsure_attempt_does_not_send_blind(
    engine: Engine,
    clock: FakeClock,
    twilio: FakeTwilio,
    dispatcher: Dispatcher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    time_out_after_twilio_took_it(engine, clock, twilio, dispatcher)
    assert one(engine, channel="sms", due_at=at(12))["last_error"].startswith(UNSURE)

    hold = dispatcher._hold
    failed: list[int] = []

    def flaky_hold(claim: Any, now: datetime) -> Any:  # the database is away, once
        if not failed:
            failed.append(claim.id)
            raise OperationalError("UPDATE delivery", {}, Exception("database is locked"))
        return hold(claim, now)

    monkeypatch.setattr(dispatcher, "_hold", flaky_hold)
    for _ in range(3):
        row = one(engine, channel="sms", due_at=at(12))
        if row["status"] != "pending":
            break
        assert row["last_error"].startswith(UNSURE)  # an internal error keeps the mark
        clock.set(row["next_attempt_at"])
        dispatcher.run_until_idle()

    assert failed
    assert len(twilio.messages) == 1
    assert one(engine, channel="sms", due_at=at(12))["status"] == "sent"


def test_a_send_that_timed_out_before_the_provider_took_it_is_sent_exactly_once(
    engine: Engine, clock: FakeClock, twilio: FakeTwilio, dispatcher: Dispatcher
) -> None:
    twilio.stall_next(STALL, then_create=False)  # nothing recorded; 503 after the stall
    plan(engine, SOLO, at(9))

    clock.set(at(12))
    dispatcher.run_until_idle()
    row = one(engine, channel="sms", due_at=at(12))
    assert row["status"] == "pending"
    assert row["last_error"].startswith(UNSURE)
    assert twilio.messages == []

    clock.set(row["next_attempt_at"])
    dispatcher.run_until_idle()
    dispatcher.run_until_idle()

    [recorded] = twilio.messages
    sent = one(engine, channel="sms", due_at=at(12))
    assert (sent["status"], sent["provider_id"], sent["attempts"]) == ("sent", recorded["sid"], 2)


def test_an_unsure_delivery_keeps_asking_while_the_provider_cannot_be_asked(
    engine: Engine, clock: FakeClock, twilio: FakeTwilio, dispatcher: Dispatcher
) -> None:
    time_out_after_twilio_took_it(engine, clock, twilio, dispatcher)
    [recorded] = twilio.messages

    token, twilio.auth_token = twilio.auth_token, "0" * 32  # listing refused: still unsure
    clock.set(one(engine, channel="sms", due_at=at(12))["next_attempt_at"])
    dispatcher.run_until_idle()
    row = one(engine, channel="sms", due_at=at(12))
    assert row["status"] == "pending"
    assert row["last_error"].startswith(UNSURE)
    assert "listing messages failed" in row["last_error"]

    twilio.auth_token = token
    clock.set(row["next_attempt_at"])
    dispatcher.run_until_idle()

    assert twilio.messages == [recorded]
    sent = one(engine, channel="sms", due_at=at(12))
    assert (sent["status"], sent["provider_id"]) == ("sent", recorded["sid"])


def test_an_unsure_delivery_that_waits_out_quiet_hours_is_not_sent_again(
    engine: Engine, clock: FakeClock, twilio: FakeTwilio, dispatcher: Dispatcher
) -> None:
    # Alex is in New York, quiet 22:00-08:00 (03:00-13:00 UTC); the ritual is at 02:50 UTC.
    plan(engine, QUIET.format(grace="12h"), at(1))
    twilio.stall_next(STALL)

    clock.set(at(2, 59, 50))  # 21:59:50 for Alex: the first attempt times out, Twilio has it
    dispatcher.run_until_idle()
    row = one(engine, due_at=at(2, 50))
    assert row["last_error"].startswith(UNSURE)
    assert row["next_attempt_at"] >= at(3)  # the retry falls in Alex's quiet hours
    [recorded] = twilio.messages

    clock.set(row["next_attempt_at"])
    dispatcher.run_until_idle()
    assert one(engine, due_at=at(2, 50))["next_attempt_at"] == at(13)  # 08:00 in New York

    clock.set(at(13))
    dispatcher.run_until_idle()

    assert len(twilio.messages) == 1, "sent again after quiet hours without asking Twilio"
    sent = one(engine, due_at=at(2, 50))
    assert (sent["status"], sent["provider_id"]) == ("sent", recorded["sid"])


# ---------------------------------------------------------------------------- crash recovery


def test_reconcile_records_as_sent_what_twilio_took_before_the_crash(
    engine: Engine,
    clock: FakeClock,
    twilio: FakeTwilio,
    sms_notifier: SmsNotifier,
    dispatcher: Dispatcher,
) -> None:
    plan(engine, SOLO, at(9))
    clock.set(at(12))
    [claim] = dispatcher.claim(at(12), 10)
    result = sms_notifier.send(claim.message())  # Twilio has it; then the worker dies
    interrupt(engine, claim.id, claimed_at=at(12))

    clock.set(at(12, 10))
    assert dispatcher.reconcile() == 1
    dispatcher.run_until_idle()

    [recorded] = twilio.messages
    assert recorded["sid"] == result.provider_id
    row = one(engine, channel="sms", due_at=at(12))
    assert row["status"] == "sent"
    assert row["provider_id"] == recorded["sid"]
    assert row["sent_at"] == at(12)
    assert row["claimed_by"] is None
    assert row["last_error"] is None


def test_reconcile_returns_what_twilio_never_got_to_pending_and_it_is_sent_once(
    engine: Engine, clock: FakeClock, twilio: FakeTwilio, dispatcher: Dispatcher
) -> None:
    plan(engine, SOLO, at(9))
    clock.set(at(12))
    [claim] = dispatcher.claim(at(12), 10)  # the worker dies before the provider call
    interrupt(engine, claim.id, claimed_at=at(12))

    clock.set(at(12, 10))
    assert dispatcher.reconcile() == 1
    row = one(engine, channel="sms", due_at=at(12))
    assert row["status"] == "pending"
    assert "no record" in row["last_error"]

    dispatcher.run_until_idle()
    dispatcher.run_until_idle()
    [recorded] = twilio.messages
    assert one(engine, channel="sms", due_at=at(12))["provider_id"] == recorded["sid"]


def test_reconcile_that_cannot_list_asks_again_before_sending(
    engine: Engine,
    clock: FakeClock,
    twilio: FakeTwilio,
    sms_notifier: SmsNotifier,
    dispatcher: Dispatcher,
) -> None:
    plan(engine, SOLO, at(9))
    clock.set(at(12))
    [claim] = dispatcher.claim(at(12), 10)
    sms_notifier.send(claim.message())
    interrupt(engine, claim.id, claimed_at=at(12))

    token, twilio.auth_token = twilio.auth_token, "0" * 32  # the list is refused, once
    clock.set(at(12, 10))
    assert dispatcher.reconcile() == 1
    twilio.auth_token = token
    row = one(engine, channel="sms", due_at=at(12))
    assert row["status"] == "pending"  # today with MAY_REPEAT: "cannot tell", but Twilio can

    dispatcher.run_until_idle()

    assert len(twilio.messages) == 1, "sent again without asking Twilio"
    [recorded] = twilio.messages
    sent = one(engine, channel="sms", due_at=at(12))
    assert (sent["status"], sent["provider_id"]) == ("sent", recorded["sid"])


def test_reconcile_after_an_unsure_attempt_finds_the_earlier_message(
    engine: Engine, clock: FakeClock, twilio: FakeTwilio, dispatcher: Dispatcher
) -> None:
    time_out_after_twilio_took_it(engine, clock, twilio, dispatcher)
    assert one(engine, channel="sms", due_at=at(12))["last_error"].startswith(UNSURE)
    [recorded] = twilio.messages

    clock.set(at(12, 5))  # the retry is claimed, then the worker dies (a deploy, say)
    [claim] = dispatcher.claim(at(12, 5), 10)
    interrupt(engine, claim.id, claimed_at=at(12, 5))

    clock.set(at(12, 15))
    assert dispatcher.reconcile() == 1
    dispatcher.run_until_idle()

    assert len(twilio.messages) == 1, "sent again after the reconcile"
    sent = one(engine, channel="sms", due_at=at(12))
    assert (sent["status"], sent["provider_id"]) == ("sent", recorded["sid"])


def test_no_delivery_is_left_in_sending(
    engine: Engine, clock: FakeClock, twilio: FakeTwilio, dispatcher: Dispatcher
) -> None:
    twilio.stall_next(STALL)
    twilio.fail_next(503)
    plan(engine, COUPLE, at(9))

    clock.set(at(12))
    dispatcher.run_until_idle()

    rows = deliveries(engine, due_at=at(12))
    assert rows
    assert all(r["status"] != "sending" and r["claimed_by"] is None for r in rows)


def test_a_wrong_auth_token_is_logged_as_an_error_and_kept_for_retry(
    engine: Engine,
    clock: FakeClock,
    twilio: FakeTwilio,
    email: FakeEmail,
    make_dispatcher: MakeDispatcher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong = SmsNotifier(
        twilio.account_sid, "f" * 32, from_number=SENDER, api_base_url=twilio.base_url
    )
    try:
        dispatcher = make_dispatcher(engine, sms=wrong, email=email)
        plan(engine, SOLO, at(9))
        clock.set(at(12))
        dispatcher.run_until_idle()
    finally:
        wrong.close()
    row = one(engine, channel="sms", due_at=at(12))
    assert row["status"] == "pending"  # kept: fixing the token sends it
    assert deliveries(engine, channel="email") == []  # not a reason to change channel
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert any("check the Twilio settings" in r.getMessage() for r in errors)
    assert twilio.auth_token not in caplog.text


def test_a_partner_who_opted_out_is_logged_when_the_message_moves(
    engine: Engine,
    clock: FakeClock,
    twilio: FakeTwilio,
    dispatcher: Dispatcher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO")
    plan(engine, SOLO, at(9))
    with engine.begin() as connection:
        connection.execute(
            update(PartnerRow).where(PartnerRow.key == "alex").values(sms_opted_out_at=at(8))
        )
    clock.set(at(12))
    dispatcher.run_until_idle()
    assert twilio.messages == []
    assert "alex-sam/alex opted out of sms; sending by email instead" in caplog.text


# ------------------------------------------------------------------ receipts that come first


def test_a_failure_receipt_before_the_id_was_recorded_still_moves_the_message(
    engine: Engine, clock: FakeClock, twilio: FakeTwilio, dispatcher: Dispatcher
) -> None:
    # The send timed out after Twilio took the message; Twilio then reports it failed while
    # the ledger does not know its id yet. The receipt is held, and applied on the retry
    # that finds the message: failed, and the partner gets an e-mail instead.
    time_out_after_twilio_took_it(engine, clock, twilio, dispatcher)
    [taken] = twilio.messages
    held = Ledger(engine).receipts.record(
        channel="sms",
        provider_id=taken["sid"],
        status="failed",
        error_code="30008",
        now=clock(),
    )
    assert held.outcome == "held"

    clock.set(one(engine, channel="sms", due_at=at(12))["next_attempt_at"])
    dispatcher.run_until_idle()

    sms = one(engine, channel="sms", due_at=at(12))
    assert (sms["status"], sms["provider_id"], sms["provider_status"]) == (
        "failed",
        taken["sid"],
        "failed",
    )
    assert "30008" in sms["last_error"]
    assert [d["status"] for d in deliveries(engine, channel="email", due_at=at(12))] == ["pending"]
    assert len(twilio.messages) == 1  # never sent twice


def test_a_lookup_that_finds_the_message_failed_moves_it_without_any_receipt(
    engine: Engine, clock: FakeClock, twilio: FakeTwilio, dispatcher: Dispatcher
) -> None:
    # No TEND_PUBLIC_URL, so no callbacks: the message list is all Tend hears.
    time_out_after_twilio_took_it(engine, clock, twilio, dispatcher)
    [taken] = twilio.messages
    twilio.set_status(taken["sid"], "undelivered", error_code=30003)

    clock.set(one(engine, channel="sms", due_at=at(12))["next_attempt_at"])
    dispatcher.run_until_idle()

    sms = one(engine, channel="sms", due_at=at(12))
    assert (sms["status"], sms["provider_status"]) == ("failed", "undelivered")
    assert [d["status"] for d in deliveries(engine, channel="email", due_at=at(12))] == ["pending"]
    assert len(twilio.messages) == 1


def test_a_receipt_that_beats_the_record_of_the_id_is_applied_when_the_id_is_written(
    engine: Engine, clock: FakeClock, twilio: FakeTwilio, dispatcher: Dispatcher
) -> None:
    # Twilio's callback can reach the web process before the worker has written the id
    # Twilio's answer carried: it is held, and applied once the id is recorded.
    plan(engine, SOLO, at(9))
    outcomes: list[str] = []

    def callback_first(message: dict[str, Any]) -> None:
        outcomes.append(
            Ledger(engine)
            .receipts.record(
                channel="sms",
                provider_id=message["sid"],
                status="undelivered",
                error_code="30005",
                now=clock(),
            )
            .outcome
        )

    twilio.on_recorded = callback_first
    clock.set(at(12))
    dispatcher.run_until_idle()

    assert outcomes == ["held"]
    [taken] = twilio.messages
    sms = one(engine, channel="sms", due_at=at(12))
    assert (sms["status"], sms["provider_id"], sms["provider_status"]) == (
        "failed",
        taken["sid"],
        "undelivered",
    )
    assert [d["channel"] for d in deliveries(engine, due_at=at(12))] == ["sms", "email"]
    assert (
        Ledger(engine).receipts.apply_held(channel="sms", provider_id=taken["sid"], now=clock())
        is None
    )
