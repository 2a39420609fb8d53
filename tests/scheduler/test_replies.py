"""Replies: what a partner's text does to the ledger, through ``handle_reply``, the one code
path behind ``POST /twilio/sms`` and ``tend reply``.

Histories come from a small ritual file through the planner (Alex and Sam in New York, June
2026, summer time: UTC-4); the messages due before a moment are marked sent, and each reply
is applied at a chosen ``now`` (tests/support/june_couple.py). Snoozed and paused messages
go through the real dispatcher on the scheduler tests' fake clock (conftest.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from fake_notifiers import FakeClock, FakeSms, MakeDispatcher
from june_couple import (
    ALEX,
    COUPLE,
    HOUSEHOLD,
    RITUALS,
    SAM,
    SECOND_HOUSEHOLD,
    Replies,
    checkpoint,
    completions,
    ny,
    occurrence,
    plan,
    rituals,
    rows_of,
    send_due,
    snoozes,
    streak_of,
    weekly_history,
)
from ritual_files import ritual_file
from sqlalchemy import Engine, func, select, update

from rituals.planning import Plan
from scheduler.completions import confirm
from scheduler.models import (
    Completion,
    Delivery,
    Household,
    InboundMessage,
    Occurrence,
    Partner,
    Pause,
)
from scheduler.planner import plan_horizon, sync_file
from scheduler.replies import NOTHING_OPEN, STRANGER, Answer, handle_reply

# ---------------------------------------------------------------------------- DONE


def test_done_confirms_what_the_last_message_was_about_and_done_2_the_second_listed(
    engine: Engine,
) -> None:
    file = plan(engine, rituals())
    reply = Replies(engine, file)
    # 21:45 on Sunday 7 June: the last text to Alex was the check-in's reminder (21:30),
    # although the appreciation (20:00) and the date night (Fri 5 Jun) are open too, and the
    # appreciation came later than the check-in itself.
    now = ny(6, 7, 21, 45)
    send_due(engine, now)
    check_in = occurrence(engine, "check-in", 7)
    appreciation = occurrence(engine, "appreciation", 7, recipient="alex")
    date_night = occurrence(engine, "date-night", 5)

    answer = reply(ALEX, "DONE", now)

    assert answer == Answer(
        "Marked the check in (Sun 7 Jun) as done. That's 1 week: your streak has begun. "
        "Still open: 1) appreciation (Sun 7 Jun), 2) date night (Fri 5 Jun). "
        "Reply DONE 1 or DONE 2 to pick one.",
        "confirm",
        household=HOUSEHOLD,
        partner="alex",
    )
    assert completions(engine) == [("alex", "confirm")]
    assert completions(engine, check_in["id"]) == [("alex", "confirm")]
    assert occurrence(engine, "check-in", 7)["status"] == "confirmed"

    answer = reply(ALEX, "DONE 9", now + timedelta(minutes=1))
    assert answer.text == (
        "There is no 9 open. Open now: 1) appreciation (Sun 7 Jun), 2) date night (Fri 5 Jun). "
        "Reply DONE 1 or DONE 2 to pick one."
    )
    assert completions(engine) == [("alex", "confirm")]

    answer = reply(ALEX, "done 2", now + timedelta(minutes=2))
    assert answer.text.startswith("Marked the date night (Fri 5 Jun) as done.")
    assert answer.text.endswith("Still open: 1) appreciation (Sun 7 Jun). Reply DONE 1 for it.")
    assert completions(engine, date_night["id"]) == [("alex", "confirm")]
    assert completions(engine, appreciation["id"]) == []
    assert occurrence(engine, "date-night", 5)["status"] == "confirmed"
    assert occurrence(engine, "appreciation", 7, recipient="alex")["status"] == "open"
    with engine.connect() as connection:
        raw = connection.execute(
            select(Completion.raw_text).where(Completion.occurrence_id == date_night["id"])
        ).scalar_one()
    assert raw == "done 2"


def test_a_message_older_than_the_reply_window_cannot_be_confirmed_any_more(
    engine: Engine,
) -> None:
    file = plan(engine, rituals(appreciation_window="12h"))
    reply = Replies(engine, file)
    send_due(engine, ny(6, 8, 9))

    # 07:00 on Monday: Sam's appreciation (Sunday 20:00) was 11 hours ago, still in its window.
    answer = reply(SAM, "DONE", ny(6, 8, 7))
    assert "Still open: 1) appreciation (Sun 7 Jun), 2) date night (Fri 5 Jun)." in answer.text
    # 09:00: Alex's, 13 hours ago, is not; the check-in and date night (3 days) still are.
    answer = reply(ALEX, "DONE", ny(6, 8, 9))
    # Sam confirmed the check-in at 07:00; Alex's DONE is recorded with it.
    assert answer.text.startswith(
        "Sam had marked the check in (Sun 7 Jun) as done; now you have too."
    )
    assert answer.text.endswith("Still open: 1) date night (Fri 5 Jun). Reply DONE 1 for it.")
    assert reply(ALEX, "DONE 2", ny(6, 8, 9, 1)).text == (
        "There is no 2 open. Open now: 1) date night (Fri 5 Jun). Reply DONE 1 for it."
    )
    reply(ALEX, "DONE", ny(6, 8, 9, 2))
    assert reply(ALEX, "DONE", ny(6, 8, 9, 3)).text == (
        "You had marked the check in (Sun 7 Jun) as done already. Thank you!"
    )
    alex_appreciation = occurrence(engine, "appreciation", 7, recipient="alex")
    assert completions(engine, alex_appreciation["id"]) == []


def test_done_to_a_plan_ahead_message_says_reply_after_the_date_night_and_records_nothing(
    engine: Engine,
) -> None:
    file = plan(engine, rituals())
    reply = Replies(engine, file)
    now = ny(6, 2, 19, 5)  # Sam heard at 19:00 that they plan Friday's date night
    send_due(engine, now)

    answer = reply(SAM, "Done!", now)

    assert answer.text == "The date night is on Fri 5 Jun at 19:00: reply DONE after it."
    assert answer.command == "confirm"
    assert completions(engine) == []
    assert occurrence(engine, "date-night", 5)["status"] == "open"
    # Alex has heard of nothing yet.
    assert reply(ALEX, "DONE", now).text == NOTHING_OPEN


def test_done_shortly_before_the_date_night_counts_it_in_the_answer(engine: Engine) -> None:
    file = plan(engine, rituals())
    reply = Replies(engine, file)
    now = ny(6, 5, 18, 45)  # a quarter of an hour early: close enough
    send_due(engine, now)

    answer = reply(SAM, "DONE", now)

    assert answer.text == (
        "Marked the date night (Fri 5 Jun) as done. That's 1 date night: your streak has begun."
    )
    assert occurrence(engine, "date-night", 5)["status"] == "confirmed"


# ---------------------------------------------------------------------------- both / either


def test_with_streak_both_the_first_done_waits_for_the_other_partner_and_the_second_counts(
    engine: Engine,
) -> None:
    file = plan(engine, rituals(streak="both"))
    reply = Replies(engine, file)
    now = ny(6, 5, 22)
    send_due(engine, now)
    date_night = occurrence(engine, "date-night", 5)

    answer = reply(ALEX, "DONE", now)

    assert answer.text == (
        "Marked the date night (Fri 5 Jun) as done for you. It counts for your streak when Sam "
        "replies DONE too."
    )
    assert completions(engine, date_night["id"]) == [("alex", "confirm")]
    assert occurrence(engine, "date-night", 5)["status"] == "open"
    assert streak_of(engine, file, "date-night", now).streak.current == 0

    answer = reply(SAM, "👍", now + timedelta(minutes=5))

    assert answer.text == (
        "Alex had marked the date night (Fri 5 Jun) as done; now you have too. That's 1 date "
        "night: your streak has begun."
    )
    assert completions(engine, date_night["id"]) == [("alex", "confirm"), ("sam", "confirm")]
    assert occurrence(engine, "date-night", 5)["status"] == "confirmed"
    streak = streak_of(engine, file, "date-night", now + timedelta(minutes=5)).streak
    assert (streak.current, streak.longest, streak.unit) == (1, 1, "occurrences")


def test_with_streak_either_one_done_confirms_and_the_second_is_still_recorded(
    engine: Engine,
) -> None:
    file = plan(engine, rituals(streak="either"))
    reply = Replies(engine, file)
    now = ny(6, 5, 22)
    send_due(engine, now)
    date_night = occurrence(engine, "date-night", 5)

    answer = reply(ALEX, "DONE", now)
    assert answer.text == (
        "Marked the date night (Fri 5 Jun) as done. That's 1 date night: your streak has begun."
    )
    assert occurrence(engine, "date-night", 5)["status"] == "confirmed"

    answer = reply(SAM, "done, it was lovely", now + timedelta(minutes=5))
    assert answer.text == (
        "Alex had marked the date night (Fri 5 Jun) as done; now you have too. That's 1 date "
        "night: your streak has begun."
    )
    assert completions(engine, date_night["id"]) == [("alex", "confirm"), ("sam", "confirm")]
    assert occurrence(engine, "date-night", 5)["status"] == "confirmed"
    # Alex again: nothing more to record.
    answer = reply(ALEX, "DONE", now + timedelta(minutes=6))
    assert answer.text == "You had marked the date night (Fri 5 Jun) as done already. Thank you!"
    assert completions(engine, date_night["id"]) == [("alex", "confirm"), ("sam", "confirm")]
    assert streak_of(engine, file, "date-night", now + timedelta(minutes=6)).streak.current == 1


# ---------------------------------------------------------------------------- SKIP


def test_skip_with_a_reason_uses_the_months_freeze_and_a_second_skip_breaks_the_streak(
    engine: Engine,
) -> None:
    file = plan(engine, rituals())
    reply = Replies(engine, file)
    send_due(engine, ny(6, 7, 19, 45))
    reply(ALEX, "DONE", ny(6, 7, 19, 45))  # the check-in of Sunday 7 June: 1 week

    now = ny(6, 14, 19, 45)
    send_due(engine, now)
    check_in = occurrence(engine, "check-in", 14)

    answer = reply(ALEX, "SKIP Sam is sick today", now)

    assert answer.text == (
        "Skipped the check in (Sun 14 Jun). A freeze keeps your streak at 1 "
        "(that was this month's last)."
    )
    assert answer.command == "skip"
    with engine.connect() as connection:
        skipped = connection.execute(
            select(Completion.partner_key, Completion.action, Completion.raw_text).where(
                Completion.occurrence_id == check_in["id"]
            )
        ).all()
    assert [tuple(r) for r in skipped] == [("alex", "skip", "Sam is sick today")]
    assert occurrence(engine, "check-in", 14)["status"] == "skipped"
    reminders = rows_of(
        engine, Delivery, Delivery.occurrence_id == check_in["id"], Delivery.role == "reminder"
    )
    assert {r["partner_key"]: r["status"] for r in reminders} == {
        "alex": "cancelled",
        "sam": "cancelled",
    }
    assert streak_of(engine, file, "check-in", now).streak.current == 1

    now = ny(6, 21, 19, 45)
    send_due(engine, now)
    answer = reply(SAM, "skip", now)

    assert answer.text == (
        "Skipped the check in (Sun 21 Jun). No freeze left this month, so the streak starts again."
    )
    assert occurrence(engine, "check-in", 21)["status"] == "skipped"
    streak = streak_of(engine, file, "check-in", now).streak
    assert (streak.current, streak.longest, streak.freezes_left) == (0, 1, 0)


# ---------------------------------------------------------------------------- SNOOZE


def test_snooze_makes_one_pending_copy_of_the_message_and_a_second_snooze_moves_it(
    engine: Engine,
) -> None:
    file = plan(engine, rituals())
    reply = Replies(engine, file)
    now = ny(6, 7, 19, 40)
    send_due(engine, now)
    check_in = occurrence(engine, "check-in", 7)
    (day_of,) = rows_of(
        engine,
        Delivery,
        Delivery.occurrence_id == check_in["id"],
        Delivery.partner_key == "alex",
        Delivery.role == "day_of",
    )

    answer = reply(ALEX, "SNOOZE 2h", now)

    assert answer.text == "OK: Tend will remind you about the check in (Sun 7 Jun) at 21:40."
    assert answer.command == "snooze"
    (snoozed,) = snoozes(engine)
    assert snoozed["role"] == "snooze-1"
    assert snoozed["occurrence_id"] == check_in["id"]
    assert snoozed["partner_key"] == "alex"
    assert snoozed["status"] == "pending"
    assert snoozed["due_at"] == snoozed["next_attempt_at"] == now + timedelta(hours=2)
    assert (snoozed["body"], snoozed["channel"]) == (day_of["body"], day_of["channel"])

    answer = reply(ALEX, "snooze 90m", now + timedelta(minutes=5))

    assert answer.text == "OK: Tend will remind you about the check in (Sun 7 Jun) at 21:15."
    (moved,) = snoozes(engine)
    assert moved["id"] == snoozed["id"]
    assert moved["role"] == "snooze-1"
    assert moved["due_at"] == now + timedelta(minutes=95)


def test_a_snooze_into_quiet_hours_waits_for_their_end(engine: Engine) -> None:
    file = plan(engine, rituals())
    reply = Replies(engine, file)
    now = ny(6, 7, 19, 40)
    send_due(engine, now)

    answer = reply(ALEX, "SNOOZE 3h", now)  # 22:40: Alex's quiet hours are 22:00-08:00

    assert answer.text == (
        "OK: Tend will remind you about the check in (Sun 7 Jun) on Mon 8 Jun at 08:00 "
        "(after your quiet hours)."
    )
    (snoozed,) = snoozes(engine)
    assert snoozed["due_at"] == ny(6, 8, 8)
    # Sam has no quiet hours: the same snooze is at 22:40.
    assert reply(SAM, "SNOOZE 3h", now).text == (
        "OK: Tend will remind you about the check in (Sun 7 Jun) at 22:40."
    )


def test_an_occurrence_is_snoozed_at_most_three_times(engine: Engine) -> None:
    file = plan(engine, rituals())
    reply = Replies(engine, file)
    now = ny(6, 7, 19, 31)
    send_due(engine, now)
    for n in (1, 2, 3):
        answer = reply(ALEX, "SNOOZE 5m", now)
        assert answer.text.startswith("OK: Tend will remind you about the check in (Sun 7 Jun)")
        now += timedelta(minutes=6)
        send_due(engine, now)  # the snoozed message goes out, and is snoozed again
        assert [s["role"] for s in snoozes(engine)] == [f"snooze-{i}" for i in range(1, n + 1)]

    answer = reply(ALEX, "SNOOZE 5m", now)

    assert answer.text == (
        "You have snoozed the check in (Sun 7 Jun) 3 times. Reply DONE when it is done, or SKIP."
    )
    assert len(snoozes(engine)) == 3
    assert {s["status"] for s in snoozes(engine)} == {"sent"}


def test_the_dispatcher_sends_a_snoozed_message_once_to_that_partner_when_due(
    engine: Engine, clock: FakeClock, sms: FakeSms, make_dispatcher: MakeDispatcher
) -> None:
    file = plan(engine, rituals())
    reply = Replies(engine, file)
    now = ny(6, 7, 19, 40)
    send_due(engine, now)
    reply(ALEX, "SNOOZE 2h", now)
    send_due(engine, ny(6, 7, 21, 39))  # everything else due before the snooze went out
    dispatcher = make_dispatcher(engine, sms=sms)

    clock.set(ny(6, 7, 21, 39))
    dispatcher.run_until_idle()
    assert sms.sent == []
    for minute in (40, 41):
        clock.set(ny(6, 7, 21, minute))
        dispatcher.run_until_idle()

    assert sms.sent == ["alex-sam/check-in/2026-06-07T19:30/alex/snooze-1/sms"]
    (snoozed,) = snoozes(engine)
    assert (snoozed["status"], snoozed["sent_at"]) == ("sent", ny(6, 7, 21, 40))


def test_a_snoozed_message_is_cancelled_when_the_partner_confirmed_meanwhile(
    engine: Engine, clock: FakeClock, sms: FakeSms, make_dispatcher: MakeDispatcher
) -> None:
    file = plan(engine, rituals())
    reply = Replies(engine, file)
    now = ny(6, 7, 19, 40)
    send_due(engine, now)
    reply(ALEX, "SNOOZE 2h", now)
    reply(ALEX, "DONE", ny(6, 7, 19, 50))
    send_due(engine, ny(6, 7, 21, 39))
    dispatcher = make_dispatcher(engine, sms=sms)

    clock.set(ny(6, 7, 21, 40))
    dispatcher.run_until_idle()

    assert sms.sent == []
    (snoozed,) = snoozes(engine)
    assert snoozed["status"] == "cancelled"
    assert snoozed["sent_at"] is None


def test_a_ritual_file_change_does_not_cancel_a_pending_snooze(
    engine: Engine, clock: FakeClock, sms: FakeSms, make_dispatcher: MakeDispatcher
) -> None:
    text = rituals()
    file = plan(engine, text)
    reply = Replies(engine, file)
    now = ny(6, 7, 19, 40)
    send_due(engine, now)
    reply(ALEX, "SNOOZE 2h", now)

    # 19:45: the couple moves the check-in's reminder and adds a ritual.
    changed = text.replace('remind_after = "2h"', 'remind_after = "3h"') + (
        '\n[[rituals]]\nid = "walk"\nkind = "custom"\nschedule = "daily at 07:00"\n'
        'message = "Walk together."\n'
    )
    later = ny(6, 7, 19, 45)
    synced = sync_file(engine, ritual_file(changed, later), later)
    assert synced.changed
    plan_horizon(
        engine,
        Plan(ritual_file(changed, later)),
        later,
        generation=synced.generation,
        changed=True,
        days=21,
    )

    (snoozed,) = snoozes(engine)
    assert (snoozed["status"], snoozed["due_at"]) == ("pending", ny(6, 7, 21, 40))
    assert snoozed["last_error"] is None
    send_due(engine, ny(6, 7, 21, 39))
    clock.set(ny(6, 7, 21, 40))
    make_dispatcher(engine, sms=sms).run_until_idle()
    assert sms.sent == ["alex-sam/check-in/2026-06-07T19:30/alex/snooze-1/sms"]


# ---------------------------------------------------------------------------- PAUSE


def test_pause_cancels_the_nudges_it_covers_holds_the_streak_and_resume_ends_it(
    engine: Engine, clock: FakeClock, sms: FakeSms, make_dispatcher: MakeDispatcher
) -> None:
    file = plan(engine, rituals(), days=35)
    reply = Replies(engine, file)
    for day in (7, 14):
        send_due(engine, ny(6, day, 19, 45))
        reply(ALEX, "DONE", ny(6, day, 19, 45))
    paused_at = ny(6, 15, 9)
    send_due(engine, paused_at)
    assert streak_of(engine, file, "check-in", paused_at).streak.current == 2

    answer = reply(SAM, "PAUSE 2w", paused_at)

    assert answer.text == (
        "Paused until Mon 29 Jun: no nudges for either of you, and your streaks hold. "
        "Reply RESUME to start again sooner."
    )
    assert answer.command == "pause"
    (household,) = rows_of(engine, Household, Household.id == HOUSEHOLD)
    assert household["paused_until"] == paused_at + timedelta(weeks=2)
    (pause,) = rows_of(engine, Pause)
    assert (pause["starts_at"], pause["ends_at"], pause["partner_key"]) == (
        paused_at,
        paused_at + timedelta(weeks=2),
        "sam",
    )

    # Alex's plan-ahead (Tue 16), the date night (Fri 19), the check-in (Sun 21, with its
    # reminder) and the appreciations: none is sent.
    dispatcher = make_dispatcher(engine, sms=sms)
    for moment in (
        ny(6, 16, 19),
        ny(6, 19, 19),
        ny(6, 21, 19, 30),
        ny(6, 21, 20),
        ny(6, 21, 21, 30),
    ):
        clock.set(moment)
        dispatcher.run_until_idle()
    assert sms.sent == []
    paused = rows_of(
        engine, Delivery, Delivery.due_at > paused_at, Delivery.due_at <= ny(6, 21, 21, 30)
    )
    assert len(paused) == 9
    assert {(d["status"], d["last_error"]) for d in paused} == {("cancelled", "household paused")}

    # Thursday: the 21 June check-in's reply window has closed, unconfirmed: neutral.
    resumed_at = ny(6, 25, 9)
    streak = streak_of(engine, file, "check-in", resumed_at).streak
    assert (streak.current, streak.longest) == (2, 2)
    assert occurrence(engine, "check-in", 21)["status"] == "open"
    assert completions(engine, occurrence(engine, "check-in", 21)["id"]) == []

    answer = reply(ALEX, "RESUME", resumed_at)

    assert answer.text == "Welcome back! Nudges start again, and your streaks go on from here."
    (household,) = rows_of(engine, Household, Household.id == HOUSEHOLD)
    assert household["paused_until"] is None
    (pause,) = rows_of(engine, Pause)
    assert pause["ends_at"] == resumed_at
    assert reply(ALEX, "RESUME", resumed_at + timedelta(minutes=1)).text == (
        "Tend is not paused. Reply PAUSE 2w for a break of two weeks."
    )

    # Sunday 28 June: sent again, and confirmed: 3 weeks, the pause in between.
    clock.set(ny(6, 28, 19, 30))
    dispatcher.run_until_idle()
    assert sorted(sms.sent) == [
        "alex-sam/check-in/2026-06-28T19:30/alex/day_of/sms",
        "alex-sam/check-in/2026-06-28T19:30/sam/day_of/sms",
    ]
    answer = reply(ALEX, "DONE", ny(6, 28, 19, 45))
    assert "That's 3 weeks in a row!" in answer.text
    streak = streak_of(engine, file, "check-in", ny(6, 28, 19, 45)).streak
    assert (streak.current, streak.longest) == (3, 3)


# ---------------------------------------------------------------------------- STOP / START


def test_stop_opts_the_number_out_everywhere_and_start_or_yes_opt_it_back_in(
    engine: Engine,
) -> None:
    file = plan(engine, rituals() + SECOND_HOUSEHOLD)
    reply = Replies(engine, file)
    now = ny(6, 7, 19, 45)
    send_due(engine, now)

    def opted_out() -> dict[tuple[str, str], datetime | None]:
        return {
            (p["household_id"], p["key"]): p["sms_opted_out_at"] for p in rows_of(engine, Partner)
        }

    answer = reply(ALEX, "STOP", now)

    assert answer.text == ""
    assert answer.command == "stop"
    assert opted_out() == {
        ("alex-sam", "alex"): now,
        ("alex-sam", "sam"): None,
        ("alex-kim", "alex"): now,
        ("alex-kim", "kim"): None,
    }
    # A DONE still reaches the ledger.
    answer = reply(ALEX, "DONE", now + timedelta(minutes=1))
    assert answer.text.startswith("Marked the check in (Sun 7 Jun) as done.")
    assert completions(engine, occurrence(engine, "check-in", 7)["id"]) == [("alex", "confirm")]
    assert opted_out()[("alex-sam", "alex")] == now

    answer = reply(ALEX, "START", now + timedelta(minutes=2))
    assert answer.text == "You are back on Tend's texts. Reply HELP for the commands."
    assert set(opted_out().values()) == {None}

    reply(ALEX, "STOP", now + timedelta(minutes=3))
    answer = reply(ALEX, "YES", now + timedelta(minutes=4))
    assert set(opted_out().values()) == {None}
    assert answer.command == "confirm"


# ---------------------------------------------------------------------------- streaks


def test_five_weekly_check_ins_in_a_row_make_five_weeks_and_a_missed_one_starts_again(
    engine: Engine,
) -> None:
    file = plan(engine, rituals(), days=45)
    reply = Replies(engine, file)
    sundays = [ny(6, 7, 19, 45) + timedelta(weeks=n) for n in range(5)]
    for n, sunday in enumerate(sundays, start=1):
        send_due(engine, sunday)
        answer = reply(SAM, "DONE", sunday)
        assert answer.text.startswith("Marked the check in (")
        expected = "That's 1 week: your streak has begun." if n == 1 else f"That's {n} weeks"
        assert expected in answer.text
    streak = streak_of(engine, file, "check-in", sundays[-1]).streak
    assert (streak.current, streak.longest, streak.unit) == (5, 5, "weeks")

    # Sunday 12 July nobody replies; its window (3 days after the 21:30 reminder) closes.
    still_open = ny(7, 15, 21)
    send_due(engine, still_open)
    assert streak_of(engine, file, "check-in", still_open).streak.current == 5
    missed = ny(7, 16, 9)
    send_due(engine, missed)
    streak = streak_of(engine, file, "check-in", missed).streak
    assert (streak.current, streak.longest, streak.unit) == (0, 5, "weeks")
    assert reply(SAM, "STREAK", missed).text.startswith(
        "Streaks in a row: check in 0 weeks (best 5)."
    )


def test_two_years_of_history_are_folded_into_a_checkpoint_that_a_late_confirm_throws_away(
    engine: Engine,
) -> None:
    # Only the check-in: the planner is not run, two years are written directly.
    text = COUPLE + RITUALS.format(streak="either", appreciation_window="3d", freezes=1)
    now = ny(6, 1, 8)
    file = ritual_file(text, now)
    sync_file(engine, file, now)
    # 104 Sundays, 7 Jun 2024 .. 31 May 2026. Missed: weeks 20, 50, 90; skipped (a freeze,
    # alone in its month): week 70. Runs kept: 20, 29, 39 - 1 (the freeze is neutral), 13.
    ids = weekly_history(
        engine, datetime(2024, 6, 9, 19, 30), 104, missed={20, 50, 90}, skipped={70}
    )
    assert checkpoint(engine) is None

    first = streak_of(engine, file, "check-in", now)

    assert (first.streak.current, first.streak.longest, first.streak.kept) == (13, 38, 100)
    saved = checkpoint(engine)
    assert saved is not None
    assert ny(5, 15, 0) < saved["through"] < now  # the settled history: before the window
    second = streak_of(engine, file, "check-in", now)
    assert second.streak == first.streak
    assert checkpoint(engine) == saved

    # Week 50's message reached Alex; Sam's confirmation arrives late (an old e-mail link).
    with engine.begin() as connection:
        done = confirm(
            connection,
            household=HOUSEHOLD,
            occurrence=ids[50],
            partner="sam",
            at=now,
            source="email",
        )
    assert done.outcome == "confirmed"
    assert checkpoint(engine) is None

    third = streak_of(engine, file, "check-in", now)

    assert (third.streak.current, third.streak.longest, third.streak.kept) == (13, 68, 101)
    assert checkpoint(engine) is not None


def test_a_checkpoint_made_under_other_streak_rules_is_not_used(engine: Engine) -> None:
    now = ny(6, 1, 8)
    either = ritual_file(
        COUPLE + RITUALS.format(streak="either", appreciation_window="3d", freezes=1), now
    )
    # The check-in (the first ritual) with streak = "both".
    text = COUPLE + RITUALS.format(streak="either", appreciation_window="3d", freezes=1)
    both = ritual_file(
        text.replace("freezes_per_month = 1", 'freezes_per_month = 1\nstreak = "both"', 1), now
    )
    sync_file(engine, either, now)
    weekly_history(engine, datetime(2024, 6, 9, 19, 30), 104, missed={20, 50, 90}, skipped={70})
    assert streak_of(engine, either, "check-in", now).streak.longest == 38
    before = checkpoint(engine)
    assert before is not None

    # With streak = "both", Sam's confirmations alone keep nothing: every week is missed.
    streak = streak_of(engine, both, "check-in", now).streak

    assert (streak.current, streak.longest) == (0, 0)
    after = checkpoint(engine)
    assert after is not None
    assert after["rules"] != before["rules"]
    # And back: the rules of the first file again, computed afresh.
    assert streak_of(engine, either, "check-in", now).streak.longest == 38


# ---------------------------------------------------------------------------- exactly once


def test_the_same_provider_id_twice_gets_the_first_answer_and_applies_nothing_again(
    engine: Engine,
) -> None:
    file = plan(engine, rituals())
    now = ny(6, 7, 19, 45)
    send_due(engine, now)
    sid = "SM" + "a" * 32

    first = handle_reply(engine, file, sender=ALEX, body="DONE", provider_id=sid, now=now)
    again = handle_reply(
        engine, file, sender=ALEX, body="DONE", provider_id=sid, now=now + timedelta(seconds=30)
    )

    assert not first.duplicate
    assert again == Answer(first.text, "confirm", True, HOUSEHOLD, "alex")
    assert completions(engine) == [("alex", "confirm")]
    assert [c["source"] for c in rows_of(engine, Completion)] == ["sms"]
    inbound = rows_of(engine, InboundMessage)
    assert len(inbound) == 1
    assert (inbound[0]["provider_id"], inbound[0]["answer"]) == (sid, first.text)

    snooze_sid = "SM" + "b" * 32
    handle_reply(engine, file, sender=SAM, body="SNOOZE 2h", provider_id=snooze_sid, now=now)
    repeated = handle_reply(
        engine, file, sender=SAM, body="SNOOZE 2h", provider_id=snooze_sid, now=now
    )
    assert repeated.duplicate
    assert len(snoozes(engine)) == 1
    assert snoozes(engine)[0]["due_at"] == now + timedelta(hours=2)


def test_a_number_in_two_households_replies_to_the_one_texted_last(engine: Engine) -> None:
    file = plan(engine, rituals() + SECOND_HOUSEHOLD)
    reply = Replies(engine, file)

    # 20:15 in New York: alex-sam's appreciation went out at 20:00; alex-kim's last text
    # was its date night on Friday (20:00 New York time).
    send_due(engine, ny(6, 7, 20, 15))
    answer = reply(ALEX, "DONE", ny(6, 7, 20, 15))
    assert (answer.household, answer.partner) == ("alex-sam", "alex")
    assert answer.text.startswith("Marked the appreciation (Sun 7 Jun) as done.")

    # 20:45: alex-kim's check-in went out at 19:30 Chicago time, 20:30 in New York.
    send_due(engine, ny(6, 7, 20, 45))
    answer = reply(ALEX, "DONE", ny(6, 7, 20, 45))
    assert (answer.household, answer.partner) == ("alex-kim", "alex")
    with engine.connect() as connection:
        done = connection.execute(
            select(Occurrence.household_id, Occurrence.ritual_id)
            .join(Completion, Completion.occurrence_id == Occurrence.id)
            .order_by(Completion.id)
        ).all()
    assert [tuple(r) for r in done] == [("alex-sam", "appreciation"), ("alex-kim", "check-in")]
    with engine.connect() as connection:
        households = connection.execute(
            select(InboundMessage.household_id).order_by(InboundMessage.id)
        ).scalars()
        assert list(households) == ["alex-sam", "alex-kim"]


def test_an_unknown_number_is_answered_at_most_once_a_day(engine: Engine) -> None:
    file = plan(engine, rituals())
    replies = Replies(engine, file)
    stranger = "+15550009999"
    first = ny(6, 7, 20)
    assert replies(stranger, "DONE", first) == Answer(STRANGER, "stranger")
    assert replies(stranger, "DONE", first + timedelta(hours=1)) == Answer("", "stranger")
    assert replies(stranger, "STOP", first + timedelta(hours=23)) == Answer("", "stranger")
    assert replies(stranger, "hi", first + timedelta(hours=24)) == Answer(STRANGER, "stranger")
    # Answered in the same words however it writes the number.
    assert replies("+1 555-000-9999", "x", first + timedelta(hours=25)) == Answer("", "stranger")
    with engine.connect() as connection:
        answers = connection.execute(
            select(InboundMessage.answer, InboundMessage.command).order_by(InboundMessage.id)
        ).all()
    assert [tuple(a) for a in answers] == [
        (STRANGER, "stranger"),
        ("", "stranger"),
        ("", "stranger"),
        (STRANGER, "stranger"),
        ("", "stranger"),
    ]
    assert completions(engine) == []


def test_a_number_that_was_a_partners_is_answered_as_a_stranger_once_removed(
    engine: Engine,
) -> None:
    # What it was answered as a partner is not the stranger's answer of the day.
    file = plan(engine, rituals())
    replies = Replies(engine, file)
    assert replies(SAM, "STREAK", ny(6, 7, 20)).text
    with engine.begin() as connection:
        connection.execute(update(Partner).where(Partner.phone == SAM).values(phone=None))
    answer = replies(SAM, "DONE", ny(6, 7, 21))
    assert answer == Answer(STRANGER, "stranger")


def test_an_unknown_number_gets_the_stranger_answer_and_nothing_else(engine: Engine) -> None:
    file = plan(engine, rituals())
    answer = Replies(engine, file)("+15550009999", "DONE", ny(6, 7, 20))
    assert answer == Answer(STRANGER, "stranger")
    assert completions(engine) == []
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(InboundMessage)).scalar() == 1
