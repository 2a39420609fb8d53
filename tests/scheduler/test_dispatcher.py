"""The dispatcher: due deliveries are sent once, late ones are missed, failures are classified.

Time is a fake clock the test moves; rows come from a small ritual file through the planner;
notifiers are in-process fakes that record every call and fail when told to.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
from fake_notifiers import (
    OPT_OUT,
    PERMANENT,
    FakeClock,
    FakeConsole,
    FakeEmail,
    FakeSms,
    MakeDispatcher,
    TellingSms,
    transient,
)
from january_couple import (
    ALEX_MASKED,
    ALEX_PHONE,
    CHECK_IN,
    COUPLE,
    DOWNTIME,
    QUIET,
    SAM_MASKED,
    SAM_PHONE,
    SOLO,
    WITH_REMINDER,
    at,
    deliveries,
    interrupt,
    key,
    one,
    partner,
    plan,
    set_delivery,
)
from sqlalchemy import Engine, event, select, text, update
from sqlalchemy.exc import OperationalError

from notifiers.base import Message, NotifierError, SendResult
from rituals.clock import TimeWindow, get_zone
from scheduler.dispatch.dispatcher import Claim, Dispatcher, RetryPolicy
from scheduler.ledger import Ledger
from scheduler.ledger.rows import DeliveryRow, OccurrenceRow

# ---------------------------------------------------------------------------- fixtures


@pytest.fixture
def dispatcher(
    engine: Engine, sms: FakeSms, email: FakeEmail, make_dispatcher: MakeDispatcher
) -> Dispatcher:
    return make_dispatcher(engine, sms=sms, email=email)


# ---------------------------------------------------------------------------- sending once


def test_a_delivery_is_not_sent_before_it_is_due_and_is_sent_once_when_due(
    engine: Engine, clock: FakeClock, sms: FakeSms, dispatcher: Dispatcher
) -> None:
    plan(engine, COUPLE, at(9))

    clock.set(at(11, 59, 59))
    assert dispatcher.run_until_idle() == 0
    assert sms.calls == []

    clock.set(at(12))
    assert dispatcher.run_until_idle() == 2
    assert dispatcher.run_until_idle() == 0
    assert dispatcher.run_until_idle() == 0

    assert sorted(sms.call_keys()) == [key("alex"), key("sam")]
    for who in ("alex", "sam"):
        row = one(engine, partner_key=who, due_at=at(12))
        assert row["status"] == "sent"
        assert row["provider_id"] == sms.records[key(who)].provider_id
        assert row["sent_at"] == at(12)
        assert row["attempts"] == 1
        assert row["claimed_by"] is None
        assert row["last_error"] is None
    # Tomorrow's are still waiting.
    assert {r["status"] for r in deliveries(engine, due_at=at(12, day=1))} == {"pending"}


def test_after_six_hours_of_downtime_only_deliveries_within_their_grace_are_sent(
    engine: Engine, clock: FakeClock, sms: FakeSms, dispatcher: Dispatcher
) -> None:
    plan(engine, DOWNTIME, at(6))

    clock.set(at(13))  # the worker was down from 07:00 to 13:00
    dispatcher.run_until_idle()
    clock.set(at(13, 30))
    dispatcher.run_until_idle()

    # lunch: due 1 h ago, grace 2 h. breakfast: due 6 h ago, grace 2 h. quick: 1 h, grace 30m.
    lunch = "2026-01-12T12:00"
    assert sorted(sms.call_keys()) == [
        key("alex", ritual="lunch", slot=lunch),
        key("sam", ritual="lunch", slot=lunch),
    ]
    assert {r["status"] for r in deliveries(engine, ritual_id="lunch", due_at=at(12))} == {"sent"}
    for ritual, due in (("breakfast", at(7)), ("quick", at(12))):
        rows = deliveries(engine, ritual_id=ritual, due_at=due)
        assert len(rows) == 2
        for row in rows:
            assert row["status"] == "missed"
            assert row["attempts"] == 0
            assert "grace" in row["last_error"]
            assert row["occurrence_status"] == "open"  # replies are still welcome


# ---------------------------------------------------------------------------- transient errors


def test_a_transient_failure_is_retried_with_growing_backoff_until_the_policy_gives_up(
    engine: Engine, clock: FakeClock, sms: FakeSms, make_dispatcher: MakeDispatcher
) -> None:
    policy = RetryPolicy(max_attempts=4, base=timedelta(minutes=1))
    dispatcher = make_dispatcher(engine, sms=sms, retry=policy)
    plan(engine, SOLO, at(9))
    sms.fail_always(transient())

    clock.set(at(12))
    for attempt in range(1, policy.max_attempts):
        dispatcher.run_until_idle()
        row = one(engine, due_at=at(12))
        assert row["status"] == "pending"
        assert row["attempts"] == attempt
        assert row["claimed_by"] is None
        assert row["last_error"] == "503: carrier busy"
        ceiling = policy.base * 2 ** (attempt - 1)  # 1, 2, 4 minutes
        assert clock() + ceiling / 2 <= row["next_attempt_at"] <= clock() + ceiling

        # Not retried before its time...
        clock.set(row["next_attempt_at"] - timedelta(seconds=1))
        assert dispatcher.run_until_idle() == 0
        assert len(sms.calls) == attempt
        # ...and retried when it comes.
        clock.set(row["next_attempt_at"])

    dispatcher.run_until_idle()
    row = one(engine, due_at=at(12), channel="sms")
    assert row["status"] == "failed"
    assert row["attempts"] == policy.max_attempts
    assert "gave up" in row["last_error"]
    assert len(sms.calls) == policy.max_attempts
    # Alex's next channel takes it from here (see the next test); SMS is done with it.
    assert one(engine, due_at=at(12), channel="email")["fallback_of"] == row["id"]

    clock.set(at(13))
    dispatcher.run_until_idle()
    assert len(sms.calls) == policy.max_attempts
    assert sms.sent == []


def test_retries_of_deliveries_that_failed_together_are_spread_out_by_jitter(
    engine: Engine, clock: FakeClock, sms: FakeSms, dispatcher: Dispatcher
) -> None:
    plan(engine, COUPLE, at(9))
    sms.fail_always(transient())

    clock.set(at(12))
    dispatcher.run_until_idle()

    retries = {r["next_attempt_at"] for r in deliveries(engine, due_at=at(12))}
    assert len(retries) == 2, "two deliveries that failed at once retry at the same instant"


def test_a_retry_after_from_the_provider_is_honoured(
    engine: Engine, clock: FakeClock, sms: FakeSms, dispatcher: Dispatcher
) -> None:
    plan(engine, SOLO, at(9))
    sms.fail_next(transient("429: too many requests", retry_after=900))

    clock.set(at(12))
    dispatcher.run_until_idle()
    row = one(engine, due_at=at(12))
    assert row["status"] == "pending"
    assert row["attempts"] == 1
    assert row["next_attempt_at"] >= at(12, 15)

    clock.set(at(12, 14, 59))
    dispatcher.run_until_idle()
    assert len(sms.calls) == 1

    clock.set(row["next_attempt_at"])
    dispatcher.run_until_idle()
    assert one(engine, due_at=at(12))["status"] == "sent"
    assert sms.sent == [key("alex")]


def test_a_retry_that_would_come_after_the_grace_is_missed_as_soon_as_the_grace_is_over(
    engine: Engine, clock: FakeClock, sms: FakeSms, dispatcher: Dispatcher
) -> None:
    plan(engine, SOLO, at(9))
    sms.fail_next(transient("429: too many requests", retry_after=3 * 3600))

    clock.set(at(12))
    dispatcher.run_until_idle()
    assert one(engine, due_at=at(12))["next_attempt_at"] >= at(15)  # the grace ends at 14:00

    clock.set(at(14, 0, 1))
    dispatcher.run_until_idle()
    row = one(engine, due_at=at(12))
    assert row["status"] == "missed"
    assert "grace" in row["last_error"]
    assert row["attempts"] == 1

    clock.set(at(15))
    dispatcher.run_until_idle()
    assert len(sms.calls) == 1


def test_a_notifier_that_recovers_delivers_exactly_once(
    engine: Engine, clock: FakeClock, sms: FakeSms, dispatcher: Dispatcher
) -> None:
    plan(engine, SOLO, at(9))
    sms.fail_next(transient(), transient())

    clock.set(at(12))
    for _ in range(3):
        dispatcher.run_until_idle()
        clock.set(one(engine, due_at=at(12))["next_attempt_at"])
    clock.set(at(13))
    dispatcher.run_until_idle()
    dispatcher.run_until_idle()

    row = one(engine, due_at=at(12))
    assert row["status"] == "sent"
    assert row["attempts"] == 3
    assert row["last_error"] is None
    assert row["provider_id"] == "sms-1"
    assert sms.call_keys() == [key("alex")] * 3
    assert sms.sent == [key("alex")]


def test_an_unexpected_exception_from_a_notifier_is_treated_as_transient(
    engine: Engine, clock: FakeClock, sms: FakeSms, dispatcher: Dispatcher
) -> None:
    plan(engine, SOLO, at(9))
    sms.fail_next(RuntimeError("socket closed"))

    clock.set(at(12))
    dispatcher.run_until_idle()

    row = one(engine, due_at=at(12))
    assert row["status"] == "pending"
    assert row["attempts"] == 1
    assert row["claimed_by"] is None
    assert "socket closed" in row["last_error"]
    assert row["next_attempt_at"] > at(12)

    clock.set(row["next_attempt_at"])
    dispatcher.run_until_idle()
    assert one(engine, due_at=at(12))["status"] == "sent"
    assert sms.sent == [key("alex")]


# ---------------------------------------------------------------------------- permanent errors


def test_a_permanent_failure_stops_at_once_and_falls_back_to_the_partners_next_channel(
    engine: Engine, clock: FakeClock, sms: FakeSms, email: FakeEmail, dispatcher: Dispatcher
) -> None:
    plan(engine, COUPLE, at(9))
    sms.fail_always(PERMANENT)

    clock.set(at(12))
    dispatcher.run_until_idle()

    assert sorted(sms.call_keys()) == [key("alex"), key("sam")]  # one call each, no retry
    for who in ("alex", "sam"):
        row = one(engine, partner_key=who, channel="sms", due_at=at(12))
        assert row["status"] == "failed"
        assert row["attempts"] == 1
        assert row["claimed_by"] is None
        assert "invalid 'To' number" in row["last_error"]
    fallback = one(engine, partner_key="alex", channel="email", due_at=at(12))
    assert fallback["status"] == "pending"
    assert fallback["next_attempt_at"] == at(12)
    assert fallback["role"] == "day_of"
    # Sam has an email address but chose sms only: no fallback.
    assert deliveries(engine, partner_key="sam", channel="email") == []

    clock.set(at(12, 0, 5))
    dispatcher.run_until_idle()
    dispatcher.run_until_idle()

    assert email.sent == [key("alex", channel="email")]
    sent = one(engine, partner_key="alex", channel="email", due_at=at(12))
    assert sent["status"] == "sent"
    assert sent["provider_id"] == "email-1"
    assert len(sms.calls) == 2


def test_a_transient_failure_that_gives_up_falls_back_to_the_partners_next_channel_once(
    engine: Engine,
    clock: FakeClock,
    sms: FakeSms,
    email: FakeEmail,
    make_dispatcher: MakeDispatcher,
) -> None:
    policy = RetryPolicy(max_attempts=2, base=timedelta(minutes=1))
    dispatcher = make_dispatcher(engine, sms=sms, email=email, retry=policy)
    plan(engine, COUPLE, at(9))
    sms.fail_always(transient("connection refused"))

    clock.set(at(12))
    dispatcher.run_until_idle()
    assert deliveries(engine, channel="email") == []  # a retry is not a give-up
    clock.set(at(12, 5))  # past the backoff: the last attempt
    dispatcher.run_until_idle()

    for who in ("alex", "sam"):
        row = one(engine, partner_key=who, channel="sms", due_at=at(12))
        assert (row["status"], row["attempts"]) == ("failed", 2)
        assert row["last_error"] == "gave up after 2 attempts: connection refused"
    fallback = one(engine, partner_key="alex", channel="email", due_at=at(12))
    sms_row = one(engine, partner_key="alex", channel="sms", due_at=at(12))
    assert (fallback["fallback_of"], fallback["status"]) == (sms_row["id"], "pending")
    assert fallback["next_attempt_at"] == at(12, 5)
    # Sam chose SMS only: given up, nowhere else to go.
    assert deliveries(engine, partner_key="sam", channel="email") == []

    dispatcher.run_until_idle()
    clock.set(at(13))
    dispatcher.run_until_idle()

    assert email.sent == [key("alex", channel="email")]
    assert one(engine, partner_key="alex", channel="email", due_at=at(12))["status"] == "sent"
    assert len(sms.calls) == 4  # two attempts each, none after the give-up


def test_an_opt_out_is_recorded_and_the_partners_messages_go_by_their_next_channel(
    engine: Engine, clock: FakeClock, sms: FakeSms, email: FakeEmail, dispatcher: Dispatcher
) -> None:
    plan(engine, COUPLE, at(9))
    sms.fail_always(OPT_OUT, partner="alex")

    clock.set(at(12))
    dispatcher.run_until_idle()

    assert partner(engine, "alex")["sms_opted_out_at"] == at(12)
    assert partner(engine, "sam")["sms_opted_out_at"] is None
    row = one(engine, partner_key="alex", channel="sms", due_at=at(12))
    assert row["status"] == "failed"
    assert "STOP" in row["last_error"]
    assert one(engine, partner_key="sam", channel="sms", due_at=at(12))["status"] == "sent"

    dispatcher.run_until_idle()
    assert email.sent == [key("alex", channel="email")]

    # The next day Alex's sms is not attempted: cancelled, and sent by email instead.
    tomorrow = "2026-01-13T12:00"
    clock.set(at(12, day=1))
    dispatcher.run_until_idle()
    dispatcher.run_until_idle()

    assert sms.call_keys().count(key("alex", slot=tomorrow)) == 0
    assert sms.call_keys().count(key("alex")) == 1
    later = one(engine, partner_key="alex", channel="sms", due_at=at(12, day=1))
    assert later["status"] == "cancelled"
    assert "opted out" in later["last_error"]
    assert later["attempts"] == 0
    assert email.sent == [key("alex", channel="email"), key("alex", channel="email", slot=tomorrow)]
    assert one(engine, partner_key="alex", channel="email", due_at=at(12, day=1))["status"] == (
        "sent"
    )
    assert key("sam", slot=tomorrow) in sms.sent


# ---------------------------------------------------------------------------- reminders


def confirm(engine: Engine, slot: datetime) -> None:
    with engine.begin() as connection:
        connection.execute(
            update(OccurrenceRow)
            .where(OccurrenceRow.ritual_id == "check-in", OccurrenceRow.slot == slot)
            .values(status="confirmed")
        )


def test_a_reminder_is_cancelled_when_the_occurrence_was_confirmed_before_it_fell_due(
    engine: Engine, clock: FakeClock, sms: FakeSms, dispatcher: Dispatcher
) -> None:
    plan(engine, WITH_REMINDER, at(9))
    clock.set(at(12))
    dispatcher.run_until_idle()
    assert sorted(sms.sent) == [key("alex"), key("sam")]

    confirm(engine, datetime(2026, 1, 12, 12, 0))
    clock.set(at(14))
    dispatcher.run_until_idle()

    assert sorted(sms.sent) == [key("alex"), key("sam")]
    reminders = deliveries(engine, role="reminder", due_at=at(14))
    assert len(reminders) == 2
    for row in reminders:
        assert row["status"] == "cancelled"
        assert "confirmed" in row["last_error"]


def test_a_reminder_is_sent_while_the_occurrence_is_open(
    engine: Engine, clock: FakeClock, sms: FakeSms, dispatcher: Dispatcher
) -> None:
    plan(engine, WITH_REMINDER, at(9))
    clock.set(at(12))
    dispatcher.run_until_idle()

    clock.set(at(14))
    dispatcher.run_until_idle()

    assert sorted(sms.sent) == [
        key("alex"),
        key("alex", role="reminder"),
        key("sam"),
        key("sam", role="reminder"),
    ]
    assert {r["status"] for r in deliveries(engine, role="reminder", due_at=at(14))} == {"sent"}


# ---------------------------------------------------------------------------- quiet hours


def in_alex_quiet_hours(instant: datetime) -> bool:
    local = instant.astimezone(get_zone("America/New_York"))
    return TimeWindow.parse("22:00-08:00").contains(local.time())


def test_a_retry_that_lands_in_quiet_hours_waits_for_their_end_when_that_is_within_grace(
    engine: Engine, clock: FakeClock, sms: FakeSms, dispatcher: Dispatcher
) -> None:
    plan(engine, QUIET.format(grace="12h"), at(1))
    sms.fail_next(transient("429: too many requests", retry_after=15 * 60))

    clock.set(at(2, 50))  # 21:50 for Alex
    dispatcher.run_until_idle()
    retry = one(engine, due_at=at(2, 50))["next_attempt_at"]
    assert in_alex_quiet_hours(retry)

    clock.set(retry)  # 22:05 for Alex
    dispatcher.run_until_idle()
    row = one(engine, due_at=at(2, 50))
    assert row["status"] == "pending"
    assert row["next_attempt_at"] == at(13)  # 08:00 in New York
    assert "quiet hours" in row["last_error"]
    assert row["attempts"] == 1
    assert row["claimed_by"] is None
    assert len(sms.calls) == 1

    clock.set(at(12, 59))
    dispatcher.run_until_idle()
    assert len(sms.calls) == 1

    clock.set(at(13))
    dispatcher.run_until_idle()
    assert one(engine, due_at=at(2, 50))["status"] == "sent"
    assert len(sms.calls) == 2
    assert [call.at for call in sms.calls if call.at and in_alex_quiet_hours(call.at)] == []


def test_a_delivery_whose_quiet_hours_outlast_its_grace_is_missed_not_sent(
    engine: Engine, clock: FakeClock, sms: FakeSms, dispatcher: Dispatcher
) -> None:
    plan(engine, QUIET.format(grace="2h"), at(1))
    row = one(engine, due_at=at(2, 50))
    set_delivery(engine, row["id"], next_attempt_at=at(3, 30))  # 22:30 for Alex

    clock.set(at(3, 30))
    dispatcher.run_until_idle()
    clock.set(at(4, 45))
    dispatcher.run_until_idle()

    row = one(engine, due_at=at(2, 50))
    assert row["status"] == "missed"
    assert "quiet hours" in row["last_error"]
    assert row["claimed_by"] is None
    assert sms.calls == []


# ---------------------------------------------------------------------------- crash recovery


def test_reconcile_records_as_sent_what_the_provider_says_it_sent(
    engine: Engine, clock: FakeClock, make_dispatcher: MakeDispatcher
) -> None:
    telling = TellingSms(clock)
    dispatcher = make_dispatcher(engine, sms=telling)
    plan(engine, SOLO, at(9))
    row = one(engine, due_at=at(12))
    interrupt(engine, row["id"], claimed_at=at(12))
    telling.records[key("alex")] = SendResult(provider_id="SM-from-before-the-crash")

    clock.set(at(12, 10))
    assert dispatcher.reconcile() == 1
    dispatcher.run_until_idle()

    row = one(engine, due_at=at(12))
    assert row["status"] == "sent"
    assert row["provider_id"] == "SM-from-before-the-crash"
    assert row["sent_at"] == at(12)
    assert row["claimed_by"] is None
    assert telling.asked == [(key("alex"), at(12))]
    assert telling.calls == []


def test_reconcile_returns_to_pending_what_the_provider_has_no_record_of_and_it_is_sent_once(
    engine: Engine, clock: FakeClock, make_dispatcher: MakeDispatcher
) -> None:
    telling = TellingSms(clock)
    dispatcher = make_dispatcher(engine, sms=telling)
    plan(engine, SOLO, at(9))
    interrupt(engine, one(engine, due_at=at(12))["id"], claimed_at=at(12))

    clock.set(at(12, 10))
    assert dispatcher.reconcile() == 1
    row = one(engine, due_at=at(12))
    assert row["status"] == "pending"
    assert row["claimed_by"] is None
    assert row["next_attempt_at"] == at(12, 10)
    assert "no record" in row["last_error"]
    assert telling.asked == [(key("alex"), at(12))]

    dispatcher.run_until_idle()
    dispatcher.run_until_idle()
    assert one(engine, due_at=at(12))["status"] == "sent"
    assert telling.call_keys() == [key("alex")]


def test_reconcile_returns_to_pending_a_delivery_whose_channel_cannot_tell_saying_it_may_repeat(
    engine: Engine, clock: FakeClock, sms: FakeSms, dispatcher: Dispatcher
) -> None:
    plan(engine, SOLO, at(9))
    interrupt(engine, one(engine, due_at=at(12))["id"], claimed_at=at(12))

    clock.set(at(12, 10))
    assert dispatcher.reconcile() == 1

    row = one(engine, due_at=at(12))
    assert row["status"] == "pending"
    assert row["claimed_by"] is None
    assert "may repeat" in row["last_error"]
    assert sms.calls == []


def test_reconcile_leaves_a_recent_claim_alone_unless_told_everything(
    engine: Engine, clock: FakeClock, sms: FakeSms, make_dispatcher: MakeDispatcher
) -> None:
    dispatcher = make_dispatcher(engine, sms=sms, claim_timeout=timedelta(minutes=5))
    plan(engine, SOLO, at(9))
    interrupt(engine, one(engine, due_at=at(12))["id"], claimed_at=at(12))

    clock.set(at(12, 4))  # a live worker may still be in the provider call
    assert dispatcher.reconcile() == 0
    row = one(engine, due_at=at(12))
    assert row["status"] == "sending"
    assert row["claimed_by"] == "crashed-worker"

    assert dispatcher.reconcile(everything=True) == 1
    assert one(engine, due_at=at(12))["status"] == "pending"


# ---------------------------------------------------------------------------- several workers


def test_a_claim_on_postgresql_skips_deliveries_another_worker_holds_locked(
    pg_engine: Engine, sms: FakeSms, make_dispatcher: MakeDispatcher
) -> None:
    dispatcher = make_dispatcher(pg_engine, sms=sms)
    plan(pg_engine, COUPLE, at(9))
    alex = one(pg_engine, partner_key="alex", due_at=at(12))
    claimed: list[Claim] = []

    with pg_engine.connect() as other:  # another worker in the middle of its claim
        other.execute(select(DeliveryRow.id).where(DeliveryRow.id == alex["id"]).with_for_update())
        claimer = threading.Thread(target=lambda: claimed.extend(dispatcher.claim(at(12), 10)))
        claimer.start()
        claimer.join(5)
        waited = claimer.is_alive()
        other.rollback()
    claimer.join(10)

    assert not waited, "the claim waited for another worker's lock instead of skipping the row"
    assert [claim.partner_key for claim in claimed] == ["sam"]
    assert one(pg_engine, partner_key="alex", due_at=at(12))["status"] == "pending"


def many_households(count: int) -> str:
    households = "".join(
        f"""
[[households]]
id = "h{n:03d}"

  [[households.partners]]
  id = "a"
  name = "A"

  [[households.partners]]
  id = "b"
  name = "B"
"""
        for n in range(count)
    )
    return 'timezone = "UTC"\n' + households + CHECK_IN


def test_two_dispatchers_on_postgresql_send_each_of_500_deliveries_exactly_once(
    pg_engine: Engine, clock: FakeClock, make_dispatcher: MakeDispatcher
) -> None:
    plan(pg_engine, many_households(250), at(9), days=1)
    due = {r["id"] for r in deliveries(pg_engine, due_at=at(12))}
    assert len(due) == 500

    first, second = FakeConsole(delay=0.001), FakeConsole(delay=0.001)
    # Each worker's sends wait until the other worker has claimed and started one: both
    # take part whichever thread runs first, or the wait times out and the test says so.
    first.wait_for, second.wait_for = second.entered, first.entered
    workers = [
        make_dispatcher(pg_engine, console=notifier, worker_id=name, batch_size=20)
        for name, notifier in (("worker-a", first), ("worker-b", second))
    ]
    clock.set(at(12))
    start = threading.Barrier(len(workers))
    errors: list[BaseException] = []

    def work(dispatcher: Dispatcher) -> None:
        try:
            start.wait(10)
            while dispatcher.run_until_idle():
                pass
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(d,)) for d in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    assert errors == []

    sends = Counter(first.sent + second.sent)
    assert len(sends) == 500
    assert set(sends.values()) == {1}, "a delivery was sent twice"
    assert first.sent and second.sent, "one worker did all the work"
    rows = deliveries(pg_engine, due_at=at(12))
    assert {r["status"] for r in rows} == {"sent"}
    assert {r["claimed_by"] for r in rows} == {None}
    assert all(r["provider_id"] for r in rows)


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


# ---------------------------------------------------------------------------- stopping


def test_a_stopped_dispatcher_claims_nothing(
    engine: Engine, clock: FakeClock, sms: FakeSms, dispatcher: Dispatcher
) -> None:
    plan(engine, COUPLE, at(9))
    clock.set(at(12))

    dispatcher.stop()

    assert dispatcher.stopping
    assert dispatcher.claim(at(12), 100) == []
    assert dispatcher.run_until_idle() == 0
    assert sms.calls == []
    assert {r["status"] for r in deliveries(engine, due_at=at(12))} == {"pending"}


def test_close_waits_for_the_sends_in_flight(
    engine: Engine, clock: FakeClock, sms: FakeSms, dispatcher: Dispatcher
) -> None:
    sms.wait_for = release = threading.Event()
    plan(engine, SOLO, at(9))
    clock.set(at(12))

    runner = threading.Thread(target=dispatcher.run_until_idle)
    runner.start()
    try:
        assert sms.entered.wait(10)
        closer = threading.Thread(target=dispatcher.close)
        closer.start()
        closer.join(0.2)
        assert closer.is_alive(), "close() returned while a send was in flight"
        assert one(engine, due_at=at(12))["status"] == "sending"
    finally:
        release.set()
        runner.join(10)
    closer.join(10)
    assert not closer.is_alive()

    assert one(engine, due_at=at(12))["status"] == "sent"
    assert dispatcher.claim(at(12, day=1), 100) == []


# ---------------------------------------------------------------------------- logs


def test_logs_show_phone_numbers_masked_on_sends_and_failures(
    engine: Engine,
    clock: FakeClock,
    sms: FakeSms,
    dispatcher: Dispatcher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    plan(engine, COUPLE, at(9))
    sms.fail_next(transient(), partner="alex")
    sms.fail_next(PERMANENT, partner="sam")

    clock.set(at(12))
    dispatcher.run_until_idle()
    clock.set(one(engine, partner_key="alex", due_at=at(12))["next_attempt_at"])
    dispatcher.run_until_idle()

    assert one(engine, partner_key="alex", due_at=at(12))["status"] == "sent"
    assert one(engine, partner_key="sam", due_at=at(12))["status"] == "failed"
    logged = [r.getMessage() for r in caplog.records if r.name == "scheduler.dispatcher"]
    assert any("transient" in m and ALEX_MASKED in m for m in logged)
    assert any("sent" in m and ALEX_MASKED in m for m in logged)
    assert any("permanent" in m and SAM_MASKED in m for m in logged)
    assert ALEX_PHONE not in caplog.text
    assert SAM_PHONE not in caplog.text


def test_a_provider_error_quoting_the_number_is_masked_in_logs_and_in_the_ledger(
    engine: Engine,
    clock: FakeClock,
    sms: FakeSms,
    dispatcher: Dispatcher,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    plan(engine, COUPLE, at(9))
    sms.fail_next(
        NotifierError(f"21211: The 'To' number {ALEX_PHONE} is not valid", permanent=True),
        partner="alex",
    )
    sms.fail_next(RuntimeError(f"socket closed while sending to {SAM_PHONE}"), partner="sam")

    clock.set(at(12))
    dispatcher.run_until_idle()

    alex = one(engine, partner_key="alex", due_at=at(12), channel="sms")
    sam = one(engine, partner_key="sam", due_at=at(12), channel="sms")
    assert alex["status"] == "failed"
    assert alex["last_error"] == f"21211: The 'To' number {ALEX_MASKED} is not valid"
    assert sam["status"] == "pending"
    assert SAM_MASKED in sam["last_error"]
    assert ALEX_PHONE not in caplog.text
    assert SAM_PHONE not in caplog.text


def test_a_resend_after_an_interruption_the_channel_cannot_tell_about_stays_marked(
    engine: Engine, clock: FakeClock, dispatcher: Dispatcher, sms: FakeSms
) -> None:
    plan(engine, COUPLE, at(9))
    clock.set(at(12))
    claims = dispatcher.claim(at(12), 10)  # then the process dies before sending
    assert claims
    clock.set(at(12, 10))
    assert dispatcher.reconcile() == len(claims)  # FakeSms cannot tell: back to pending
    dispatcher.run_until_idle()

    row = one(engine, partner_key="alex", due_at=at(12), channel="sms")
    assert row["status"] == "sent"
    assert "may have arrived twice" in row["last_error"]


def test_an_internal_error_counts_as_an_attempt_and_gives_up_at_the_maximum(
    engine: Engine, clock: FakeClock, dispatcher: Dispatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan(engine, COUPLE, at(9))

    def broken(claim: object) -> str:
        raise RuntimeError("a bug")

    monkeypatch.setattr(dispatcher, "process", broken)
    clock.set(at(12))
    for _ in range(dispatcher.retry.max_attempts):
        dispatcher.run_until_idle()
        clock.set(clock() + dispatcher.retry.base)
    row = one(engine, partner_key="alex", due_at=at(12), channel="sms")
    assert row["status"] == "failed"
    assert row["attempts"] == dispatcher.retry.max_attempts


class RefusedRecords:
    """The database refusing, `times` times, the statements that record a send as sent
    (the only UPDATE of a delivery that sets its provider id): what a dropped connection or
    a locked file does between the provider call and its record."""

    def __init__(self, engine: Engine, times: int) -> None:
        self.left = times
        self.refused = 0
        self._lock = threading.Lock()
        event.listen(engine, "before_cursor_execute", self._before)
        self._engine = engine

    def _before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if not (statement.startswith("UPDATE delivery ") and "provider_id" in statement):
            return
        with self._lock:
            if self.left <= 0:
                return
            self.left -= 1
            self.refused += 1
        raise OperationalError(statement, {}, Exception("database is locked"))

    def remove(self) -> None:
        event.remove(self._engine, "before_cursor_execute", self._before)


def test_a_database_hiccup_while_recording_a_send_is_retried_not_left_in_sending(
    engine: Engine,
    clock: FakeClock,
    dispatcher: Dispatcher,
    sms: FakeSms,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import scheduler.dispatch.dispatcher as module

    plan(engine, COUPLE, at(9))
    monkeypatch.setattr(module, "RECORD_RETRIES", (0.0, 0.0))
    refused = RefusedRecords(engine, times=2)
    clock.set(at(12))
    dispatcher.run_until_idle()
    refused.remove()

    assert refused.refused == 2
    for partner in ("alex", "sam"):  # noqa: F402 - a key here, not the row helper
        assert one(engine, partner_key=partner, due_at=at(12), channel="sms")["status"] == "sent"
    assert Counter(sms.call_keys()).most_common(1)[0][1] == 1


@pytest.mark.parametrize("telling", [True, False], ids=["channel can tell", "cannot tell"])
def test_a_send_whose_record_the_database_refuses_is_never_put_back_to_pending(
    engine: Engine,
    clock: FakeClock,
    make_dispatcher: MakeDispatcher,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    telling: bool,
) -> None:
    """The database refuses every try to record the sends, then recovers: the sends stay
    in `sending` (not `pending`, which would send them again at once), and the reconciler
    settles them: recorded as sent when the channel can tell, else resent and marked."""
    import scheduler.dispatch.dispatcher as module

    sms = TellingSms(clock) if telling else FakeSms(clock)
    dispatcher = make_dispatcher(engine, sms=sms)
    plan(engine, COUPLE, at(9))
    monkeypatch.setattr(module, "RECORD_RETRIES", (0.0, 0.0))
    refused = RefusedRecords(engine, times=1000)
    clock.set(at(12))
    with caplog.at_level(logging.ERROR, logger="scheduler.dispatcher"):
        dispatcher.run_until_idle()
    refused.remove()

    tries = len(module.RECORD_RETRIES) + 1
    assert refused.refused in (tries, 2 * tries)  # one batch or two, each tried every time
    assert "stay in 'sending' until the reconciler" in caplog.text
    rows = [one(engine, partner_key=p, due_at=at(12), channel="sms") for p in ("alex", "sam")]
    assert [row["status"] for row in rows] == ["sending", "sending"]
    assert sorted(sms.call_keys()) == [key("alex"), key("sam")]

    dispatcher.run_until_idle()  # the database is back: nothing is due, nothing is resent
    assert len(sms.call_keys()) == 2

    clock.set(at(12, 10))  # past the claim timeout
    assert dispatcher.reconcile() == 2
    dispatcher.run_until_idle()
    rows = [one(engine, partner_key=p, due_at=at(12), channel="sms") for p in ("alex", "sam")]
    assert [row["status"] for row in rows] == ["sent", "sent"]
    if telling:
        assert len(sms.call_keys()) == 2  # looked up, not sent again
        assert [row["provider_id"] for row in rows] == [
            sms.records[key("alex")].provider_id,
            sms.records[key("sam")].provider_id,
        ]
    else:
        assert len(sms.call_keys()) == 4  # at-least-once, and the ledger says so
        assert all("may have arrived twice" in row["last_error"] for row in rows)


def test_a_young_claim_is_sent_without_a_renewal_write_and_an_old_one_is_renewed_first(
    engine: Engine, clock: FakeClock, dispatcher: Dispatcher, sms: FakeSms
) -> None:
    """The renewal before a send is a write per delivery; it is needed only once a claim is
    old enough for a reconciler to be near taking it."""
    plan(engine, COUPLE, at(9))
    clock.set(at(12))
    renewals: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("UPDATE delivery SET claimed_at"):
            renewals.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        claims = {c.partner_key: c for c in dispatcher.claim(at(12), 10)}
        clock.set(at(12, 0, 20))  # 20 s old: under a tenth of the 5 min timeout
        assert dispatcher.process(claims["alex"]) == "sent"
        assert renewals == []
        clock.set(at(12, 1))  # Sam's claim has waited a minute: renewed, then sent
        assert dispatcher.process(claims["sam"]) == "sent"
        assert len(renewals) == 1
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert dispatcher.record_sent() == 2
    assert sorted(sms.call_keys()) == [key("alex"), key("sam")]
    assert {r["partner_key"]: r["status"] for r in deliveries(engine, due_at=at(12))} == {
        "alex": "sent",
        "sam": "sent",
    }


def test_a_claim_reconciled_while_it_waited_long_for_a_sender_is_not_sent(
    engine: Engine, clock: FakeClock, dispatcher: Dispatcher, sms: FakeSms
) -> None:
    plan(engine, COUPLE, at(9))
    claims = dispatcher.claim(at(12), 10)
    assert len(claims) == 2
    clock.set(at(12, 6))  # past the timeout: a reconciler (another worker's) takes them back
    assert dispatcher.reconcile() == 2
    assert [dispatcher.process(c) for c in claims] == ["lost", "lost"]
    assert sms.call_keys() == []


def test_a_batch_of_sends_records_only_the_claims_still_held(
    engine: Engine,
    clock: FakeClock,
    dispatcher: Dispatcher,
    sms: FakeSms,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Sends are recorded together; one whose claim a reconciler settled meanwhile is not
    overwritten, and the log says which."""
    plan(engine, COUPLE, at(9))
    clock.set(at(12))
    claims = {c.partner_key: c for c in dispatcher.claim(at(12), 10)}
    assert [dispatcher.process(claims[p]) for p in ("alex", "sam")] == ["sent", "sent"]
    set_delivery(engine, claims["sam"].id, status="pending", claimed_by=None)

    with caplog.at_level(logging.WARNING, logger="scheduler.dispatcher"):
        assert dispatcher.record_sent() == 1

    alex = one(engine, partner_key="alex", due_at=at(12), channel="sms")
    sam = one(engine, partner_key="sam", due_at=at(12), channel="sms")
    assert (alex["status"], alex["provider_id"], alex["claimed_by"]) == (
        "sent",
        sms.records[key("alex")].provider_id,
        None,
    )
    assert (sam["status"], sam["provider_id"]) == ("pending", None)
    assert f"delivery {claims['sam'].id}: outcome 'sent' not recorded" in caplog.text
    assert f"delivery {claims['alex'].id}: outcome" not in caplog.text
    assert dispatcher.record_sent() == 0  # nothing left queued


class LongIdSms(FakeSms):
    """A provider (or plugin) whose ids for Alex are longer than the ledger's column."""

    def _send(self, message: Message) -> SendResult:
        result = super()._send(message)
        if message.recipient.partner == "alex":
            result = SendResult(provider_id="x" * 200)
            with self._lock:
                self.records[message.key] = result
        return result


class LongIdTellingSms(LongIdSms, TellingSms):
    pass


def test_a_send_the_database_will_not_take_does_not_take_the_batch_with_it(
    pg_engine: Engine, clock: FakeClock, make_dispatcher: MakeDispatcher
) -> None:
    """PostgreSQL refuses Alex's 200-character id (a DataError, not a passing error): the
    batch is written row by row, Sam's send is recorded and never sent again."""
    sms = LongIdSms(clock)
    dispatcher = make_dispatcher(pg_engine, sms=sms)
    plan(pg_engine, COUPLE, at(9))
    clock.set(at(12))
    dispatcher.run_until_idle()

    rows = {r["partner_key"]: r["status"] for r in deliveries(pg_engine, due_at=at(12))}
    assert rows == {"alex": "sending", "sam": "sent"}
    clock.set(at(12, 10))
    dispatcher.reconcile()
    dispatcher.run_until_idle()
    assert Counter(sms.call_keys())[key("sam")] == 1


def test_one_row_that_cannot_be_settled_does_not_keep_the_others_in_sending(
    pg_engine: Engine, clock: FakeClock, make_dispatcher: MakeDispatcher
) -> None:
    sms = LongIdTellingSms(clock)
    dispatcher = make_dispatcher(pg_engine, sms=sms)
    plan(pg_engine, COUPLE, at(9))
    for partner in ("alex", "sam"):  # noqa: F402 - sent by a worker killed before it recorded them
        row = one(pg_engine, partner_key=partner, due_at=at(12), channel="sms")
        (claim,) = Ledger(pg_engine).claims.read([row["id"]])
        sms.send(claim.message())
        interrupt(pg_engine, row["id"], at(12))

    clock.set(at(12, 10))
    assert dispatcher.reconcile() == 1  # Sam's; Alex's id is refused, and logged

    rows = {r["partner_key"]: r["status"] for r in deliveries(pg_engine, due_at=at(12))}
    assert rows == {"alex": "sending", "sam": "sent"}
    assert len(sms.call_keys()) == 2  # nothing sent again


class ReceiptSms(FakeSms):
    has_receipts = True


def test_a_held_receipt_that_fails_to_apply_is_held_again_and_applied_later(
    engine: Engine,
    clock: FakeClock,
    make_dispatcher: MakeDispatcher,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Twilio's 'undelivered' callbacks for two messages come before their sends are
    recorded, and are held. Applying the first fails once: the second is still applied, and
    the first is applied by the next reconcile, not lost."""
    from scheduler.ledger.receipts import Receipts

    sms = ReceiptSms(clock)
    dispatcher = make_dispatcher(engine, sms=sms)
    plan(engine, COUPLE, at(9))
    clock.set(at(12))
    claims = {c.partner_key: c for c in dispatcher.claim(at(12), 10)}
    assert [dispatcher.process(claims[p]) for p in ("alex", "sam")] == ["sent", "sent"]
    ids = {p: sms.records[key(p)].provider_id for p in ("alex", "sam")}
    for partner in ("alex", "sam"):  # noqa: F402 - a key here, not the row helper
        held = Ledger(engine).receipts.record(
            channel="sms",
            provider_id=ids[partner],
            status="undelivered",
            error_code="30003",
            now=at(12),
        )
        assert held.outcome == "held"
    real = Receipts.record
    failures = {"left": 1}

    def flaky(self: Receipts, *args: Any, **kwargs: Any) -> Any:
        if failures["left"]:
            failures["left"] -= 1
            raise OperationalError("UPDATE delivery", {}, Exception("database is locked"))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Receipts, "record", flaky)
    assert dispatcher.record_sent() == 2

    def statuses() -> dict[str, tuple[str, str | None]]:
        return {
            r["partner_key"]: (r["status"], r["provider_status"])
            for r in deliveries(engine, due_at=at(12), channel="sms")
        }

    assert failures["left"] == 0
    assert sorted(statuses().values()) == [("failed", "undelivered"), ("sent", None)]
    dispatcher.reconcile()
    assert statuses() == {"alex": ("failed", "undelivered"), "sam": ("failed", "undelivered")}


def waiting_on_lock(engine: Engine) -> None:
    """Until a session of this database waits for a row lock (5 s at most)."""
    deadline = time.monotonic() + 5
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE wait_event_type = 'Lock' AND datname = current_database()"
    )
    while time.monotonic() < deadline:
        with engine.connect() as connection:
            if connection.execute(query).scalar_one():
                return
        time.sleep(0.01)


def test_sends_are_recorded_while_the_claiming_thread_waits_on_a_lock(
    pg_engine: Engine, clock: FakeClock, make_dispatcher: MakeDispatcher
) -> None:
    """A transaction holding a lock on an overdue pending row (a long re-plan, say) makes
    the claiming thread's `mark_missed` wait. Sends that finish meanwhile are recorded all
    the same, by the recorder's own thread: otherwise they would sit in `sending` past the
    claim timeout, and a reconciler would send them again."""
    plan(pg_engine, COUPLE, at(9))
    with pg_engine.begin() as connection:
        overdue = connection.execute(
            select(DeliveryRow.id).where(
                DeliveryRow.partner_key == "sam", DeliveryRow.due_at == at(12, day=1)
            )
        ).scalar_one()
    # Tomorrow's message, made due and to expire a second after noon: past its grace from
    # 12:00:02. (A pending delivery whose next attempt is after its grace is only ever one a
    # failed try put back; this one is due within it, as every other is.)
    set_delivery(pg_engine, overdue, next_attempt_at=at(12, 0, 1), expires_at=at(12, 0, 1))
    locker = pg_engine.connect()
    locked = threading.Event()

    class LockingSms(FakeSms):
        def _send(self, message: Message) -> SendResult:
            if message.recipient.partner == "alex" and not locked.is_set():
                locker.execute(
                    update(DeliveryRow).where(DeliveryRow.id == overdue).values(updated_at=at(9))
                )
                clock.set(at(12, 0, 2))  # the next claim's mark_missed wants that row
                locked.set()
                waiting_on_lock(pg_engine)  # this send finishes while the claimer waits
            return super()._send(message)

    sms = LockingSms(clock)
    dispatcher = make_dispatcher(pg_engine, sms=sms, batch_size=1, senders=2)
    clock.set(at(12))
    runner = threading.Thread(target=dispatcher.run_until_idle)
    runner.start()
    try:
        assert locked.wait(5)
        deadline = time.monotonic() + 5
        while one(pg_engine, partner_key="alex", due_at=at(12), channel="sms")["status"] != (
            "sent"
        ):
            assert time.monotonic() < deadline, "Alex's send is not recorded"
            time.sleep(0.02)
        assert runner.is_alive()  # the claiming thread still waits on the lock
    finally:
        locker.rollback()
        locker.close()
        runner.join(10)
    assert not runner.is_alive()
    assert sms.call_keys().count(key("alex")) == 1
