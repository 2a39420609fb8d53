"""What the dispatcher does with a claimed delivery (:func:`decide`) and after a failed send
(:func:`after_failure`), from tables: one row per rule, and a row at each rule's edge.

Claims are built directly (no database). The partner lives in Europe/Berlin, which has DST:
quiet hours end on the partner's wall clock, across the spring and autumn changes too.
Instants are UTC; Monday 12 January 2026 is winter time in Berlin (UTC+1).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from notifiers.base import NotifierError
from scheduler.dispatch.decide import UNSURE, Failure, Next, after_failure, decide
from scheduler.ledger.claims import Claim

BERLIN = "Europe/Berlin"
QUIET = "22:00-08:00"
WAITING = "waiting for the end of quiet hours"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


DUE = utc("2026-01-12 12:00")


def claim(**changes: Any) -> Claim:
    """Alex's day-of SMS about an open check-in, due at 12:00 UTC with two hours' grace,
    claimed when due: a claim with nothing in its way, then `changes`."""
    base = Claim(
        id=1,
        occurrence_id=10,
        household_id="alex-sam",
        partner_key="alex",
        role="day_of",
        channel="sms",
        body="Check-in time.",
        subject="Tend: check in",
        due_at=DUE,
        expires_at=DUE + timedelta(hours=2),
        attempts=0,
        claimed_at=DUE,
        last_error=None,
        occurrence_status="open",
        partner_done=False,
        ritual_id="check-in",
        slot=datetime(2026, 1, 12, 12, 0),
        household_active=True,
        paused_until=None,
        name="Alex",
        phone="+15551230001",
        email="alex@example.com",
        channels=("sms", "email"),
        timezone=BERLIN,
        quiet_hours=None,
        partner_active=True,
        sms_opted_out_at=None,
        email_opted_out_at=None,
    )
    return replace(base, **changes)


def quiet(due: datetime, grace: timedelta = timedelta(hours=12), **changes: Any) -> Claim:
    """A claim due at `due` to a partner with quiet hours 22:00-08:00 in Berlin."""
    return claim(**{"due_at": due, "expires_at": due + grace, "quiet_hours": QUIET, **changes})


def row(what: Claim, now: datetime, expected: Next, id: str) -> Any:
    return pytest.param(what, now, expected, id=id)


SEND = Next("send")
GONE = Next("cancel", "no longer in the file")

DECISIONS = [
    # Nothing in the way.
    row(claim(), DUE, SEND, "a-claim-with-nothing-in-its-way-is-sent"),
    # Gone from the file: before anything else, even a claim past its grace.
    row(claim(household_active=False), DUE, GONE, "a-household-gone-from-the-file-is-cancelled"),
    row(claim(partner_active=False), DUE, GONE, "a-partner-gone-from-the-file-is-cancelled"),
    row(
        claim(partner_active=False, occurrence_status="cancelled"),
        DUE + timedelta(days=1),
        GONE,
        "a-partner-gone-is-said-before-the-occurrence-or-the-grace",
    ),
    # Follow-ups (reminders, snoozed copies) are not needed once it is done or settled.
    row(
        claim(role="reminder", occurrence_status="confirmed"),
        DUE,
        Next("cancel", "no reminder needed: the occurrence is confirmed"),
        "a-reminder-after-a-confirm-is-cancelled",
    ),
    row(
        claim(role="reminder", occurrence_status="skipped"),
        DUE,
        Next("cancel", "no reminder needed: the occurrence is skipped"),
        "a-reminder-after-a-skip-is-cancelled",
    ),
    row(
        claim(role="snooze-2", partner_done=True),
        DUE,
        Next("cancel", "no reminder needed: the occurrence is done by this partner"),
        "a-snoozed-copy-this-partner-confirmed-meanwhile-is-cancelled",
    ),
    row(
        claim(role="reminder", occurrence_status="confirmed", partner_done=True),
        DUE,
        Next("cancel", "no reminder needed: the occurrence is done by this partner"),
        "a-reminder-done-by-this-partner-says-so-rather-than-confirmed",
    ),
    row(
        claim(role="reminder", occurrence_status="cancelled"),
        DUE,
        Next("cancel", "no reminder needed: the occurrence is cancelled"),
        "a-reminder-of-a-cancelled-occurrence-says-no-reminder-needed",
    ),
    row(claim(role="reminder"), DUE, SEND, "a-reminder-of-an-open-occurrence-is-sent"),
    # Not follow-ups: the other partner's confirmation does not stop the day's own message.
    row(
        claim(occurrence_status="confirmed"),
        DUE,
        SEND,
        "a-day-of-message-of-an-occurrence-the-other-partner-confirmed-is-still-sent",
    ),
    row(
        claim(role="plan_ahead", partner_done=True),
        DUE,
        SEND,
        "a-plan-ahead-message-is-not-a-follow-up-even-when-done",
    ),
    # The occurrence called off or skipped.
    row(
        claim(occurrence_status="cancelled"),
        DUE,
        Next("cancel", "occurrence cancelled"),
        "a-cancelled-occurrence-is-cancelled",
    ),
    row(
        claim(occurrence_status="skipped"),
        DUE,
        Next("cancel", "occurrence skipped"),
        "a-skipped-occurrence-is-cancelled",
    ),
    row(claim(occurrence_status="missed"), DUE, SEND, "a-missed-occurrences-message-is-sent"),
    # Paused: until the end of the pause, not at it.
    row(
        claim(paused_until=DUE + timedelta(minutes=1)),
        DUE,
        Next("cancel", "household paused"),
        "a-paused-household-is-cancelled",
    ),
    row(claim(paused_until=DUE), DUE, SEND, "a-pause-that-ends-now-no-longer-holds"),
    row(
        claim(paused_until=DUE + timedelta(days=1)),
        DUE + timedelta(days=2),
        Next("miss", "not sent within the ritual's grace"),
        "a-pause-that-ended-is-not-the-reason-for-a-late-one",
    ),
    # Grace: later than expires_at is missed; at it, still sent.
    row(
        claim(),
        DUE + timedelta(hours=2, seconds=1),
        Next("miss", "not sent within the ritual's grace"),
        "past-its-grace-it-is-missed",
    ),
    row(claim(), DUE + timedelta(hours=2), SEND, "at-the-end-of-its-grace-it-is-still-sent"),
    row(
        claim(sms_opted_out_at=DUE),
        DUE + timedelta(hours=3),
        Next("miss", "not sent within the ritual's grace"),
        "past-its-grace-it-is-missed-rather-than-moved",
    ),
    # Opted out of this channel: moves to the next one.
    row(
        claim(sms_opted_out_at=DUE - timedelta(days=1)),
        DUE,
        Next("move", "opted out of sms"),
        "a-partner-who-opted-out-of-sms-has-the-message-moved",
    ),
    row(
        claim(channel="email", email_opted_out_at=DUE),
        DUE,
        Next("move", "opted out of email"),
        "a-partner-who-unsubscribed-from-email-has-the-message-moved",
    ),
    row(
        claim(email_opted_out_at=DUE),
        DUE,
        SEND,
        "an-opt-out-of-another-channel-does-not-stop-this-one",
    ),
    row(
        quiet(utc("2026-01-12 21:30"), sms_opted_out_at=DUE),
        utc("2026-01-12 21:30"),
        Next("move", "opted out of sms"),
        "an-opted-out-channel-moves-rather-than-waits-for-quiet-hours",
    ),
    # Quiet hours, in the partner's zone (Berlin: UTC+1 in winter, UTC+2 in summer).
    row(
        quiet(utc("2026-01-12 21:30")),
        utc("2026-01-12 21:30"),
        Next("wait", WAITING, utc("2026-01-13 07:00")),
        "inside-quiet-hours-it-waits-until-0800-in-berlin-winter",
    ),
    row(
        quiet(utc("2026-06-15 21:30")),
        utc("2026-06-15 21:30"),
        Next("wait", WAITING, utc("2026-06-16 06:00")),
        "inside-quiet-hours-it-waits-until-0800-in-berlin-summer",
    ),
    row(
        quiet(utc("2026-01-12 20:59")),
        utc("2026-01-12 20:59"),
        SEND,
        "a-minute-before-quiet-hours-in-berlin-it-is-sent",
    ),
    row(
        quiet(utc("2026-01-12 06:00")),
        utc("2026-01-12 07:00"),
        SEND,
        "at-the-end-of-quiet-hours-it-is-sent",
    ),
    row(
        quiet(utc("2026-01-12 22:30"), timezone="America/New_York"),
        utc("2026-01-12 22:30"),
        SEND,
        "quiet-hours-are-the-partners-own-not-utc",
    ),
    row(
        quiet(utc("2026-03-28 22:00")),
        utc("2026-03-28 22:00"),
        Next("wait", WAITING, utc("2026-03-29 06:00")),
        "across-the-spring-change-quiet-hours-end-at-0800-summer-time",
    ),
    row(
        quiet(utc("2026-10-24 21:00")),
        utc("2026-10-24 21:00"),
        Next("wait", WAITING, utc("2026-10-25 07:00")),
        "across-the-autumn-change-quiet-hours-end-at-0800-winter-time",
    ),
    row(
        quiet(utc("2026-03-29 00:30"), quiet_hours="22:00-02:30"),
        utc("2026-03-29 00:30"),
        Next("wait", WAITING, utc("2026-03-29 01:30")),
        "quiet-hours-ending-in-the-skipped-spring-hour-end-an-hour-later-on-the-clock",
    ),
    row(
        quiet(utc("2026-10-25 01:10"), quiet_hours="22:00-02:30"),
        utc("2026-10-25 01:10"),
        Next("wait", WAITING, utc("2026-10-25 01:30")),
        "in-the-repeated-autumn-hour-quiet-hours-end-at-the-second-0230",
    ),
    row(
        quiet(utc("2026-10-25 00:10"), quiet_hours="22:00-02:30"),
        utc("2026-10-25 00:10"),
        Next("wait", WAITING, utc("2026-10-25 00:30")),
        "in-the-first-pass-of-the-autumn-hour-quiet-hours-end-at-the-first-0230",
    ),
    # Quiet hours that end after the grace: missed now, not sent late.
    row(
        quiet(utc("2026-01-12 21:30"), grace=timedelta(hours=2)),
        utc("2026-01-12 21:30"),
        Next("miss", "quiet hours until after the ritual's grace"),
        "quiet-hours-ending-after-the-grace-make-it-missed",
    ),
    row(
        quiet(utc("2026-01-12 21:30"), grace=timedelta(hours=9, minutes=30)),
        utc("2026-01-12 21:30"),
        Next("wait", WAITING, utc("2026-01-13 07:00")),
        "quiet-hours-ending-exactly-at-the-end-of-the-grace-wait",
    ),
    # A wait keeps the mark of an earlier attempt that may have gone out.
    row(
        quiet(utc("2026-01-12 21:30"), last_error=UNSURE + "read timed out"),
        utc("2026-01-12 21:30"),
        Next("wait", UNSURE + WAITING, utc("2026-01-13 07:00")),
        "a-wait-after-an-unsure-attempt-keeps-the-unsure-mark",
    ),
    row(
        quiet(utc("2026-01-12 21:30"), last_error="503: carrier busy"),
        utc("2026-01-12 21:30"),
        Next("wait", WAITING, utc("2026-01-13 07:00")),
        "a-wait-after-a-plain-failure-carries-no-mark",
    ),
]


@pytest.mark.parametrize(("what", "now", "expected"), DECISIONS)
def test_a_claimed_delivery_is_decided_by_the_first_rule_that_applies(
    what: Claim, now: datetime, expected: Next
) -> None:
    assert decide(what, now) == expected


# ----------------------------------------------------------------------------- after a failure

MASKED = "21211: invalid 'To' number +1*******001"
RAW = NotifierError("21211: invalid 'To' number +15551230001")


def failed(**options: Any) -> NotifierError:
    return replace(RAW, **options)


FAILURES = [
    pytest.param(
        failed(opt_out=True), 1, Failure("opted_out", MASKED), id="an-opt-out-is-recorded-as-such"
    ),
    pytest.param(
        failed(opt_out=True), 5, Failure("opted_out", MASKED), id="an-opt-out-at-the-last-attempt"
    ),
    pytest.param(failed(permanent=True), 1, Failure("permanent", MASKED), id="a-permanent-error"),
    pytest.param(
        failed(permanent=True),
        5,
        Failure("permanent", MASKED),
        id="a-permanent-error-at-the-last-attempt-is-permanent-not-given-up",
    ),
    pytest.param(failed(), 1, Failure("retry", MASKED), id="a-transient-error-is-retried"),
    pytest.param(
        failed(), 4, Failure("retry", MASKED), id="a-transient-error-under-max-attempts-retries"
    ),
    pytest.param(
        failed(),
        5,
        Failure("gave_up", f"gave up after 5 attempts: {MASKED}"),
        id="a-transient-error-at-max-attempts-gives-up",
    ),
    pytest.param(
        failed(),
        7,
        Failure("gave_up", f"gave up after 7 attempts: {MASKED}"),
        id="a-transient-error-past-max-attempts-gives-up",
    ),
    pytest.param(
        failed(unsure=True),
        2,
        Failure("retry", UNSURE + MASKED),
        id="an-unsure-send-is-retried-marked-unsure",
    ),
    pytest.param(
        failed(unsure=True),
        5,
        Failure("gave_up", f"gave up after 5 attempts: {UNSURE}{MASKED}"),
        id="an-unsure-send-given-up-keeps-the-mark-after-the-count",
    ),
    pytest.param(
        failed(unsure=True, permanent=True),
        1,
        Failure("permanent", UNSURE + MASKED),
        id="an-unsure-permanent-error-keeps-the-mark",
    ),
]


@pytest.mark.parametrize(("error", "attempts", "expected"), FAILURES)
def test_a_failed_send_leads_to_what_its_error_and_attempts_call_for(
    error: NotifierError, attempts: int, expected: Failure
) -> None:
    assert after_failure(error, MASKED, attempts, max_attempts=5) == expected


@pytest.mark.parametrize(
    ("error", "attempts", "falls_back"),
    [
        pytest.param(failed(opt_out=True), 1, True, id="an-opt-out-moves-on"),
        pytest.param(failed(permanent=True), 1, True, id="a-permanent-error-moves-on"),
        pytest.param(failed(), 5, True, id="a-transient-error-given-up-moves-on"),
        pytest.param(failed(), 7, True, id="a-transient-error-past-max-attempts-moves-on"),
        pytest.param(
            failed(unsure=True),
            5,
            True,
            id="an-unsure-send-given-up-moves-on-too-the-text-may-have-arrived",
        ),
        pytest.param(failed(), 4, False, id="a-transient-error-still-retried-stays"),
        pytest.param(failed(unsure=True), 1, False, id="an-unsure-send-retried-stays"),
    ],
)
def test_every_failure_that_settles_the_delivery_moves_to_the_next_channel_a_retry_does_not(
    error: NotifierError, attempts: int, falls_back: bool
) -> None:
    assert after_failure(error, MASKED, attempts, max_attempts=5).falls_back is falls_back


def test_the_error_kept_is_the_masked_text_never_the_number() -> None:
    for error in (failed(), failed(permanent=True), failed(opt_out=True), failed(unsure=True)):
        kept = after_failure(error, MASKED, 5, max_attempts=5).error
        assert "+15551230001" not in kept and MASKED in kept
