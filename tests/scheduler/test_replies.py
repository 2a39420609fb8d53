"""Replies: what a partner's text does to the ledger, through ``handle_reply``, the one code
path behind ``POST /twilio/sms`` and ``tend reply``.

Histories come from a small ritual file through the planner (Alex and Sam in New York, June
2026, summer time: UTC-4); the messages due before a moment are marked sent, and each reply
is applied at a chosen ``now`` (tests/support/june_couple.py). Snoozed and paused messages
go through the real dispatcher on the scheduler tests' fake clock (conftest.py).
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

import pytest
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
from sqlalchemy import Engine, delete, func, select, update

from config.model import RitualFile
from rituals.planning import Plan
from rituals.streaks import Outcome
from scheduler.acts import wording
from scheduler.acts.replies import Answer, handle_reply
from scheduler.acts.wording import LIMITED, NOTHING_OPEN, STRANGER
from scheduler.ledger import Ledger, Records
from scheduler.ledger.rows import (
    CompletionRow,
    DeliveryRow,
    HouseholdRow,
    InboundMessageRow,
    OccurrenceRow,
    PartnerRow,
    PauseRow,
    StreakCheckpointRow,
)
from scheduler.planner import plan_horizon, sync_file
from scheduler.reports.streaks import household_streaks

# ---------------------------------------------------------------------------- helpers

BACK_ON = "You are back on Tend's texts. Reply HELP for the commands."


def change_file(engine: Engine, text: str, now: datetime, *, days: int = 21) -> RitualFile:
    """The couple edits the file at `now`: synced (it did change) and planned again."""
    file = ritual_file(text, now)
    synced = sync_file(Ledger(engine), file, now)
    assert synced.changed
    plan_horizon(
        Ledger(engine), Plan(file), now, generation=synced.generation, changed=True, days=days
    )
    return file


def date_nights(engine: Engine, month: int, day: int) -> list[dict[str, Any]]:
    """Every date-night occurrence of alex-sam on local day `day`, cancelled ones too."""
    found = rows_of(
        engine,
        OccurrenceRow,
        OccurrenceRow.household_id == HOUSEHOLD,
        OccurrenceRow.ritual_id == "date-night",
    )
    return sorted(
        (o for o in found if (o["slot"].month, o["slot"].day) == (month, day)),
        key=lambda o: o["slot"],
    )


def opted_out(engine: Engine, partner: str) -> datetime | None:
    (row,) = rows_of(
        engine, PartnerRow, PartnerRow.household_id == HOUSEHOLD, PartnerRow.key == partner
    )
    found: datetime | None = row["sms_opted_out_at"]
    return found


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
            select(CompletionRow.raw_text).where(CompletionRow.occurrence_id == date_night["id"])
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


@pytest.mark.parametrize("body", ["Done? No, not yet", "Yes please stop texting"])
def test_a_confirm_word_followed_by_a_denial_records_nothing(engine: Engine, body: str) -> None:
    file = plan(engine, rituals())
    now = ny(6, 7, 19, 45)
    send_due(engine, now)

    answer = Replies(engine, file)(ALEX, body, now)

    assert answer.command != "confirm"
    assert completions(engine) == []
    assert occurrence(engine, "check-in", 7)["status"] == "open"
    assert opted_out(engine, "alex") is None
    assert snoozes(engine) == []
    (inbound,) = rows_of(engine, InboundMessageRow)
    assert (inbound["body"], inbound["partner_key"]) == (body, "alex")


def test_reply_done_after_it_and_paused_until_are_told_in_the_partners_own_zone(
    engine: Engine,
) -> None:
    # Alex lives in London (New York + 5 hours); the household is in New York.
    text = rituals().replace(
        'quiet_hours = "22:00-08:00"', 'quiet_hours = "23:00-07:00"\n  timezone = "Europe/London"'
    )
    file = plan(engine, text)
    reply = Replies(engine, file)
    # Thu 18 Jun: Alex has heard that they plan Fri 19 Jun's date night (19:00 in New York).
    now = ny(6, 18, 9)
    send_due(engine, now)

    assert reply(ALEX, "DONE", now).text == (
        "The date night is on Sat 20 Jun at 00:00: reply DONE after it."
    )
    assert completions(engine) == []

    # 21:00 in New York, 02:00 in London: two weeks on is Thu 2 Jul there, Fri 3 Jul here.
    now = ny(6, 18, 21)
    assert reply(ALEX, "PAUSE 2w", now).text == (
        "Paused until Fri 3 Jul: no nudges for either of you, and your streaks hold. "
        "Reply RESUME to start again sooner."
    )
    assert reply(SAM, "PAUSE 2w", now).text.startswith("Paused until Thu 2 Jul:")


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
            select(CompletionRow.partner_key, CompletionRow.action, CompletionRow.raw_text).where(
                CompletionRow.occurrence_id == check_in["id"]
            )
        ).all()
    assert [tuple(r) for r in skipped] == [("alex", "skip", "Sam is sick today")]
    assert occurrence(engine, "check-in", 14)["status"] == "skipped"
    reminders = rows_of(
        engine,
        DeliveryRow,
        DeliveryRow.occurrence_id == check_in["id"],
        DeliveryRow.role == "reminder",
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


def test_a_skipped_date_night_does_not_come_back_when_the_ritual_moves_later_that_day(
    engine: Engine,
) -> None:
    file = plan(engine, rituals())
    reply = Replies(engine, file)
    send_due(engine, ny(6, 5, 22))
    reply(SAM, "DONE", ny(6, 5, 22))  # Fri 5 Jun: 1 date night
    # Wed 17 Jun: Alex heard on Tuesday that they plan Friday's date night; they skip it.
    now = ny(6, 17, 9)
    send_due(engine, now)
    answer = reply(ALEX, "SKIP busy", now)
    assert answer.text == (
        "Skipped the date night (Fri 19 Jun). A freeze keeps your streak at 1 "
        "(that was this month's last)."
    )
    skipped = occurrence(engine, "date-night", 19)

    # An hour later the couple moves the date night to 19:30.
    later = ny(6, 17, 10)
    moved = change_file(engine, rituals().replace("fri at 19:00", "fri at 19:30"), later)

    assert [(o["id"], o["status"]) for o in date_nights(engine, 6, 19)] == [
        (skipped["id"], "skipped")
    ]
    friday = [o["id"] for o in date_nights(engine, 6, 19)]
    assert (
        rows_of(
            engine,
            DeliveryRow,
            DeliveryRow.occurrence_id.in_(friday),
            DeliveryRow.status == "pending",
        )
        == []
    )
    # The next one did move.
    assert [(o["slot"].hour, o["slot"].minute) for o in date_nights(engine, 7, 3)] == [(19, 30)]

    after = ny(7, 1, 12)  # Friday 19 Jun's reply window has long closed
    send_due(engine, after)
    series = streak_of(engine, moved, "date-night", after)
    assert series.outcome_of(skipped["id"]) is Outcome.FROZEN
    assert [o for _, o in series.judged] == [Outcome.KEPT, Outcome.FROZEN]
    assert (series.streak.current, series.streak.longest) == (1, 1)


def test_a_skipped_occurrence_is_not_offered_for_done_and_says_it_was_skipped(
    engine: Engine,
) -> None:
    file = plan(engine, rituals())
    reply = Replies(engine, file)
    now = ny(6, 14, 19, 45)
    send_due(engine, now)
    assert reply(SAM, "SKIP", now).text.startswith("Skipped the check in (Sun 14 Jun).")

    answer = reply(ALEX, "DONE", now + timedelta(minutes=1))

    assert answer.text == (
        "The check in (Sun 14 Jun) was skipped, so there is nothing to mark as done."
    )
    assert occurrence(engine, "check-in", 14)["status"] == "skipped"
    assert ("alex", "confirm") not in completions(engine, occurrence(engine, "check-in", 14)["id"])


def test_skip_n_picks_from_the_list_the_last_answer_gave(engine: Engine) -> None:
    file = plan(engine, rituals(), days=30)
    reply = Replies(engine, file)
    # Tue 16 Jun 19:05: Alex just heard that they plan Fri 19 Jun's date night.
    now = ny(6, 16, 19, 5)
    send_due(engine, now)
    answer = reply(ALEX, "DONE", now)
    assert answer.text.startswith("Marked the appreciation (Sun 14 Jun) as done.")
    assert answer.text.endswith("Still open: 1) check in (Sun 14 Jun). Reply DONE 1 for it.")

    answer = reply(ALEX, "SKIP 1", now + timedelta(minutes=1))

    assert answer.text.startswith("Skipped the check in (Sun 14 Jun).")
    assert occurrence(engine, "check-in", 14)["status"] == "skipped"
    assert occurrence(engine, "date-night", 19)["status"] == "open"
    assert completions(engine, occurrence(engine, "date-night", 19)["id"]) == []


# ---------------------------------------------------------------------------- freezes

# A weekly date night Alex plans, told 8 days ahead (Thursday 19:00 for the Friday after next).
WEEKLY_DATE_NIGHT = (
    COUPLE
    + """
[[rituals]]
id = "date-night"
kind = "date_night"
schedule = "weekly on fri at 19:00"
planner = "alex"
plan_ahead = "8d"
"""
)


def test_a_freeze_promised_when_skipping_ahead_holds_and_a_later_skip_of_an_earlier_one_breaks(
    engine: Engine,
) -> None:
    file = plan(engine, WEEKLY_DATE_NIGHT, days=40)
    reply = Replies(engine, file)
    send_due(engine, ny(6, 5, 20))
    reply(ALEX, "DONE", ny(6, 5, 20))  # Fri 5 Jun: 1 week

    # Thu 11 Jun 20:00: Alex heard at 19:00 about Fri 19 Jun, and skips it.
    now = ny(6, 11, 20)
    send_due(engine, now)
    answer = reply(ALEX, "SKIP", now)
    assert answer.text == (
        "Skipped the date night (Fri 19 Jun). A freeze keeps your streak at 1 "
        "(that was this month's last)."
    )
    assert streak_of(engine, file, "date-night", now).streak.current == 1

    # Fri 12 Jun 20:00: Sam skips tonight's, earlier in the same month.
    now = ny(6, 12, 20)
    send_due(engine, now)
    answer = reply(SAM, "SKIP", now)
    assert answer.text == (
        "Skipped the date night (Fri 12 Jun). No freeze left this month, so the streak starts "
        "again."
    )
    assert streak_of(engine, file, "date-night", now).streak.current == 0

    # Both due: the 19th is frozen as Alex was told, the 12th broke as Sam was told.
    after = ny(6, 22, 12)
    send_due(engine, after)
    series = streak_of(engine, file, "date-night", after)
    twelfth = occurrence(engine, "date-night", 12)["id"]
    nineteenth = occurrence(engine, "date-night", 19)["id"]
    assert series.outcome_of(twelfth) is Outcome.SKIPPED
    assert series.outcome_of(nineteenth) is Outcome.FROZEN
    assert (series.streak.current, series.streak.longest) == (0, 1)
    froze = {
        r["occurrence_id"]: (r["partner_key"], r["froze"])
        for r in rows_of(engine, CompletionRow, CompletionRow.action == "skip")
    }
    assert froze == {twelfth: ("sam", False), nineteenth: ("alex", True)}


@pytest.mark.parametrize(
    ("ends", "answer"),
    [
        ("RESUME", "Welcome back! Nudges start again, and your streaks go on from here."),
        # Until Fri 19 Jun 09:00: the date night that evening is no longer covered.
        ("PAUSE 1d", "Paused until Fri 19 Jun: no nudges"),
    ],
)
def test_a_skip_made_while_paused_gets_a_freeze_when_the_pause_no_longer_covers_it(
    engine: Engine, ends: str, answer: str
) -> None:
    file = plan(engine, rituals(), days=30)
    reply = Replies(engine, file)
    send_due(engine, ny(6, 5, 22))
    reply(SAM, "DONE", ny(6, 5, 22))  # Fri 5 Jun: 1 date night
    # Wed 17 Jun: Alex heard on Tuesday that they plan Fri 19 Jun; they pause, then skip it.
    send_due(engine, ny(6, 17, 9))
    assert reply(ALEX, "PAUSE 1w", ny(6, 17, 9)).text.startswith("Paused until Wed 24 Jun:")
    assert reply(ALEX, "SKIP", ny(6, 17, 9, 1)).text == (
        "Skipped the date night (Fri 19 Jun). You are paused, so the streak holds."
    )
    nineteenth = occurrence(engine, "date-night", 19)["id"]
    (skipped,) = rows_of(engine, CompletionRow, CompletionRow.action == "skip")
    assert (skipped["occurrence_id"], skipped["froze"]) == (nineteenth, False)

    # Thu 18 Jun: back before the date night (RESUME, or a pause of a day from now).
    assert reply(SAM, ends, ny(6, 18, 9)).text.startswith(answer)

    (skipped,) = rows_of(engine, CompletionRow, CompletionRow.action == "skip")
    assert (skipped["occurrence_id"], skipped["froze"]) == (nineteenth, True)
    after = ny(6, 25, 12)
    send_due(engine, after)
    series = streak_of(engine, file, "date-night", after)
    assert series.outcome_of(nineteenth) is Outcome.FROZEN
    assert (series.streak.current, series.streak.longest) == (1, 1)
    assert series.streak.freezes_left == 0  # June's one freeze went to the 19th


def test_a_freeze_used_skipping_ahead_is_given_back_when_a_pause_covers_that_date_night(
    engine: Engine,
) -> None:
    file = plan(engine, WEEKLY_DATE_NIGHT, days=40)
    reply = Replies(engine, file)
    send_due(engine, ny(6, 5, 20))
    reply(ALEX, "DONE", ny(6, 5, 20))
    send_due(engine, ny(6, 12, 20))
    reply(SAM, "DONE", ny(6, 12, 20))  # 2 weeks
    # Thu 18 Jun 20:00: Alex heard about Fri 26 Jun at 19:00 and skips it: June's freeze.
    now = ny(6, 18, 20)
    send_due(engine, now)
    assert reply(ALEX, "SKIP", now).text == (
        "Skipped the date night (Fri 26 Jun). A freeze keeps your streak at 2 "
        "(that was this month's last)."
    )
    # Sat 20 Jun: they go away for 10 days, which covers Fri 26 Jun.
    send_due(engine, ny(6, 20, 9))
    assert reply(SAM, "PAUSE 10d", ny(6, 20, 10)).text.startswith("Paused until Tue 30 Jun:")

    # Fri 19 Jun, before the pause, skipped the day after: the freeze is June's again.
    answer = reply(SAM, "SKIP", ny(6, 20, 11))

    assert answer.text == (
        "Skipped the date night (Fri 19 Jun). A freeze keeps your streak at 2 "
        "(that was this month's last)."
    )
    nineteenth = occurrence(engine, "date-night", 19)["id"]
    twenty_sixth = occurrence(engine, "date-night", 26)["id"]
    froze = {
        r["occurrence_id"]: r["froze"]
        for r in rows_of(engine, CompletionRow, CompletionRow.action == "skip")
    }
    assert froze[nineteenth] is True
    after = ny(7, 1, 12)
    send_due(engine, after)
    series = streak_of(engine, file, "date-night", after)
    assert series.outcome_of(nineteenth) is Outcome.FROZEN
    assert series.outcome_of(twenty_sixth) is Outcome.PAUSED
    assert (series.streak.current, series.streak.longest) == (2, 2)


@pytest.mark.parametrize(
    ("freezes", "july", "june_left"),
    [(1, "that was July's last", 0), (2, "1 left in July", 1)],
)
def test_skips_in_two_months_each_use_and_count_their_own_months_freezes(
    engine: Engine, freezes: int, july: str, june_left: int
) -> None:
    text = rituals().replace(
        'streak = "either"', f'streak = "either"\nfreezes_per_month = {freezes}'
    )
    file = plan(engine, text, days=40)
    reply = Replies(engine, file)
    send_due(engine, ny(6, 5, 22))
    reply(SAM, "DONE", ny(6, 5, 22))  # Fri 5 Jun: 1 date night
    send_due(engine, ny(6, 17, 9))
    june = "1 left this month" if freezes == 2 else "that was this month's last"
    assert reply(ALEX, "SKIP", ny(6, 17, 9)).text == (
        f"Skipped the date night (Fri 19 Jun). A freeze keeps your streak at 1 ({june})."
    )
    # Tue 30 Jun 19:05: Sam heard at 19:00 that they plan Fri 3 Jul, and skips it ahead.
    now = ny(6, 30, 19, 5)
    send_due(engine, now)

    answer = reply(SAM, "SKIP", now)

    assert answer.text == (
        f"Skipped the date night (Fri 3 Jul). A freeze keeps your streak at 1 ({july})."
    )
    # Still June: what is left is June's, which July's skip does not touch.
    series = streak_of(engine, file, "date-night", now + timedelta(minutes=2))
    assert series.streak.freezes_left == june_left
    assert series.streak.current == 1


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
        DeliveryRow,
        DeliveryRow.occurrence_id == check_in["id"],
        DeliveryRow.partner_key == "alex",
        DeliveryRow.role == "day_of",
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
    synced = sync_file(Ledger(engine), ritual_file(changed, later), later)
    assert synced.changed
    plan_horizon(
        Ledger(engine),
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


def test_a_plan_ahead_nudge_is_not_snoozed_past_the_date_night_itself(engine: Engine) -> None:
    file = plan(engine, rituals())
    reply = Replies(engine, file)
    now = ny(6, 2, 19, 5)  # Sam heard at 19:00 that they plan Friday's date night
    send_due(engine, now)

    answer = reply(SAM, "SNOOZE sat", now)

    assert answer.text == (
        "That would be after the date night itself (Fri 5 Jun at 19:00): try a shorter "
        "snooze, like SNOOZE 2h."
    )
    assert snoozes(engine) == []
    # Before the date night is fine.
    assert reply(SAM, "SNOOZE tomorrow", now + timedelta(minutes=1)).text.startswith(
        "OK: Tend will remind you about the date night (Fri 5 Jun) on Wed 3 Jun at 19:00"
    )
    assert len(snoozes(engine)) == 1


def test_a_pending_snooze_is_cancelled_when_the_ritual_no_longer_applies_to_the_household(
    engine: Engine, clock: FakeClock, sms: FakeSms, make_dispatcher: MakeDispatcher
) -> None:
    # A second household (Alex there by another number) keeps the check-in.
    text = rituals(extra=SECOND_HOUSEHOLD.replace(ALEX, "+15551230009"))
    file = plan(engine, text)
    now = ny(6, 7, 20)
    send_due(engine, now)
    reply = Replies(engine, file)
    answer = reply(SAM, "SNOOZE tomorrow", now)
    assert answer.text == (
        "OK: Tend will remind you about the check in (Sun 7 Jun) on Mon 8 Jun at 19:30."
    )

    scoped = text.replace('id = "check-in"\n', 'id = "check-in"\nhouseholds = ["alex-kim"]\n')
    assert scoped != text
    changed = change_file(engine, scoped, ny(6, 7, 21))

    (snoozed,) = snoozes(engine)
    assert snoozed["status"] == "cancelled"
    assert occurrence(engine, "check-in", 7)["status"] == "cancelled"
    # The check-in still applies to alex-kim.
    assert rows_of(
        engine,
        DeliveryRow,
        DeliveryRow.household_id == "alex-kim",
        DeliveryRow.status == "pending",
        DeliveryRow.occurrence_id.in_(
            select(OccurrenceRow.id).where(OccurrenceRow.ritual_id == "check-in")
        ),
    )

    # Everything else pending out of the way: the dispatcher at the snooze's time sends nothing.
    with engine.begin() as connection:
        connection.execute(
            update(DeliveryRow)
            .where(DeliveryRow.status == "pending", DeliveryRow.role.not_like("snooze%"))
            .values(status="cancelled")
        )
    clock.set(ny(6, 8, 19, 31))
    make_dispatcher(engine, sms=sms).run_until_idle()
    assert sms.sent == []
    reply.file = changed
    assert reply(SAM, "DONE", ny(6, 8, 19, 40)).text == NOTHING_OPEN
    assert completions(engine) == []


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
    (household,) = rows_of(engine, HouseholdRow, HouseholdRow.id == HOUSEHOLD)
    assert household["paused_until"] == paused_at + timedelta(weeks=2)
    (pause,) = rows_of(engine, PauseRow)
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
        engine, DeliveryRow, DeliveryRow.due_at > paused_at, DeliveryRow.due_at <= ny(6, 21, 21, 30)
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
    (household,) = rows_of(engine, HouseholdRow, HouseholdRow.id == HOUSEHOLD)
    assert household["paused_until"] is None
    (pause,) = rows_of(engine, PauseRow)
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
            (p["household_id"], p["key"]): p["sms_opted_out_at"]
            for p in rows_of(engine, PartnerRow)
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


def test_yes_after_stop_opts_back_in_without_confirming_and_a_later_yes_confirms(
    engine: Engine,
) -> None:
    file = plan(engine, rituals())
    reply = Replies(engine, file)
    now = ny(6, 7, 19, 45)
    send_due(engine, now)
    reply(ALEX, "STOP", now)
    assert opted_out(engine, "alex") == now

    answer = reply(ALEX, "YES", now + timedelta(minutes=5))

    assert answer.text == BACK_ON
    assert opted_out(engine, "alex") is None
    assert completions(engine) == []
    assert occurrence(engine, "check-in", 7)["status"] == "open"

    answer = reply(ALEX, "YES", now + timedelta(minutes=6))

    assert answer.text.startswith("Marked the check in (Sun 7 Jun) as done.")
    assert answer.command == "confirm"
    assert completions(engine) == [("alex", "confirm")]


def test_stop_and_start_are_applied_even_over_the_rate_limit(engine: Engine) -> None:
    file = plan(engine, rituals())
    reply = Replies(engine, file)
    now = ny(6, 7, 20)
    send_due(engine, now)
    for second in range(20):
        reply(SAM, "hi", now + timedelta(seconds=second))
    limited = reply(SAM, "hi", now + timedelta(seconds=25))
    assert (limited.text, limited.command) == (LIMITED, "limited")

    answer = reply(SAM, "STOP", now + timedelta(seconds=30))  # the 22nd in a minute

    assert answer.command == "stop"
    assert opted_out(engine, "sam") == now + timedelta(seconds=30)

    answer = reply(SAM, "START", now + timedelta(seconds=40))

    assert (answer.text, answer.command) == (BACK_ON, "start")
    assert opted_out(engine, "sam") is None


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


def test_the_streak_answer_says_one_week_not_one_weeks(engine: Engine) -> None:
    file = plan(engine, rituals(), days=10)
    reply = Replies(engine, file)
    sunday = ny(6, 7, 19, 45)
    send_due(engine, sunday)
    reply(SAM, "DONE", sunday)
    answer = reply(SAM, "STREAK", sunday + timedelta(minutes=5)).text
    assert answer.startswith("Streaks in a row: check in 1 week (best 1)"), answer
    assert "1 weeks" not in answer


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        ([("check in", 1, 1, True)], "Streaks in a row: check in 1 week (best 1)."),
        ([("check in", 0, 1, True)], "Streaks in a row: check in 0 weeks (best 1)."),
        ([("check in", 2, 5, True)], "Streaks in a row: check in 2 weeks (best 5)."),
        ([("date night", 1, 3, False)], "Streaks in a row: date night 1 (best 3)."),
    ],
)
def test_the_streak_answer_counts_weeks_in_the_singular_and_the_plural(
    parts: list[tuple[str, int, int, bool]], expected: str
) -> None:
    assert wording.streaks(parts) == expected


def test_two_years_of_history_are_folded_into_a_checkpoint_that_a_late_confirm_throws_away(
    engine: Engine,
) -> None:
    # Only the check-in: the planner is not run, two years are written directly.
    text = COUPLE + RITUALS.format(streak="either", appreciation_window="3d", freezes=1)
    now = ny(6, 1, 8)
    file = ritual_file(text, now)
    sync_file(Ledger(engine), file, now)
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
        done = Records(connection).completions.confirm(
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
    sync_file(Ledger(engine), either, now)
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


LONG_IDS = ["a" * 64, "b" * 64, "c" * 64]


TRIO = (
    'timezone = "America/New_York"\n[[households]]\nid = "trio"\n'
    + "".join(
        f'  [[households.partners]]\n  id = "{p}"\n  name = "P{n}"\n'
        f'  phone = "+1555123000{n}"\n  channels = ["sms"]\n'
        for n, p in enumerate(LONG_IDS, 1)
    )
    + """
[[rituals]]
id = "check-in"
kind = "check_in"
schedule = "weekly on sun at 19:30"

[[rituals]]
id = "appreciation"
kind = "appreciation"
schedule = "weekly on sun at 20:00"
to = "each"
"""
)


def test_streak_checkpoints_work_for_three_partners_with_64_character_ids(
    engine: Engine,
) -> None:
    file = plan(engine, TRIO)
    now = ny(6, 7, 19, 45)
    send_due(engine, now)

    answer = handle_reply(
        Ledger(engine), file, sender="+15551230001", body="DONE", provider_id="SM1", now=now
    )

    assert answer.text.startswith("Marked the check in (Sun 7 Jun) as done.")
    assert answer.partner == LONG_IDS[0]
    # The answer folds only the streak it is about: the check-in's.
    saved = rows_of(engine, StreakCheckpointRow, StreakCheckpointRow.household_id == "trio")
    assert [(r["ritual_id"], r["recipient"]) for r in saved] == [("check-in", "")]
    with engine.begin() as connection:
        first = household_streaks(Records(connection), file, "trio", now)
    saved = rows_of(engine, StreakCheckpointRow, StreakCheckpointRow.household_id == "trio")
    assert sorted((r["ritual_id"], r["recipient"]) for r in saved) == [
        ("appreciation", p) for p in LONG_IDS
    ] + [("check-in", "")]
    assert all(len(r["rules"]) == 64 for r in saved)  # a sha256, whatever the audience
    with engine.begin() as connection:
        again = household_streaks(Records(connection), file, "trio", now)
    assert [s.streak for s in again] == [s.streak for s in first]
    assert first[0].streak.current == 1
    assert rows_of(engine, StreakCheckpointRow, StreakCheckpointRow.household_id == "trio") == saved


def test_a_household_time_zone_change_invalidates_streak_checkpoints(engine: Engine) -> None:
    text = COUPLE + RITUALS.format(streak="either", appreciation_window="3d", freezes=1)
    now = ny(6, 1, 8)
    sync_file(Ledger(engine), ritual_file(text, now), now)
    weekly_history(engine, datetime(2024, 6, 9, 19, 30), 104, missed={20, 50, 90}, skipped={70})
    file = ritual_file(text, now)
    assert streak_of(engine, file, "check-in", now).streak.longest == 38
    before = checkpoint(engine)
    assert before is not None

    later = now + timedelta(hours=1)
    tokyo = change_file(
        engine,
        text.replace('timezone = "America/New_York"', 'timezone = "Asia/Tokyo"'),
        later,
    )
    assert (
        rows_of(engine, HouseholdRow, HouseholdRow.id == HOUSEHOLD)[0]["timezone"] == "Asia/Tokyo"
    )

    with engine.begin() as connection:
        incremental = household_streaks(Records(connection), tokyo, HOUSEHOLD, later)

    after = checkpoint(engine)
    assert after is not None
    assert after["rules"] != before["rules"]
    with engine.begin() as connection:
        connection.execute(delete(StreakCheckpointRow))
        scratch = household_streaks(Records(connection), tokyo, HOUSEHOLD, later, save=False)
    assert [(s.ritual.id, s.recipient) for s in incremental] == [
        (s.ritual.id, s.recipient) for s in scratch
    ]
    for mine, fresh in zip(incremental, scratch, strict=True):
        a, b = mine.streak, fresh.streak
        assert (a.current, a.longest, a.kept, a.rate, a.freezes_left, a.unit) == (
            b.current,
            b.longest,
            b.kept,
            b.rate,
            b.freezes_left,
            b.unit,
        )
        assert a.score == pytest.approx(b.score, abs=1e-9)
        assert mine.judged == fresh.judged


# ---------------------------------------------------------------------------- exactly once


def test_the_same_provider_id_twice_gets_the_first_answer_and_applies_nothing_again(
    engine: Engine,
) -> None:
    file = plan(engine, rituals())
    now = ny(6, 7, 19, 45)
    send_due(engine, now)
    sid = "SM" + "a" * 32

    first = handle_reply(Ledger(engine), file, sender=ALEX, body="DONE", provider_id=sid, now=now)
    again = handle_reply(
        Ledger(engine),
        file,
        sender=ALEX,
        body="DONE",
        provider_id=sid,
        now=now + timedelta(seconds=30),
    )

    assert not first.duplicate
    assert again == Answer(first.text, "confirm", True, HOUSEHOLD, "alex")
    assert completions(engine) == [("alex", "confirm")]
    assert [c["source"] for c in rows_of(engine, CompletionRow)] == ["sms"]
    inbound = rows_of(engine, InboundMessageRow)
    assert len(inbound) == 1
    assert (inbound[0]["provider_id"], inbound[0]["answer"]) == (sid, first.text)

    snooze_sid = "SM" + "b" * 32
    handle_reply(
        Ledger(engine), file, sender=SAM, body="SNOOZE 2h", provider_id=snooze_sid, now=now
    )
    repeated = handle_reply(
        Ledger(engine), file, sender=SAM, body="SNOOZE 2h", provider_id=snooze_sid, now=now
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
            select(OccurrenceRow.household_id, OccurrenceRow.ritual_id)
            .join(CompletionRow, CompletionRow.occurrence_id == OccurrenceRow.id)
            .order_by(CompletionRow.id)
        ).all()
    assert [tuple(r) for r in done] == [("alex-sam", "appreciation"), ("alex-kim", "check-in")]
    with engine.connect() as connection:
        households = connection.execute(
            select(InboundMessageRow.household_id).order_by(InboundMessageRow.id)
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
            select(InboundMessageRow.answer, InboundMessageRow.command).order_by(
                InboundMessageRow.id
            )
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
        connection.execute(update(PartnerRow).where(PartnerRow.phone == SAM).values(phone=None))
    answer = replies(SAM, "DONE", ny(6, 7, 21))
    assert answer == Answer(STRANGER, "stranger")


def test_an_unknown_number_gets_the_stranger_answer_and_nothing_else(engine: Engine) -> None:
    file = plan(engine, rituals())
    answer = Replies(engine, file)("+15550009999", "DONE", ny(6, 7, 20))
    assert answer == Answer(STRANGER, "stranger")
    assert completions(engine) == []
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(InboundMessageRow)).scalar() == 1


def at_once(
    engine: Engine, file: RitualFile, sender: str, bodies: list[str], now: datetime
) -> tuple[list[Answer], list[BaseException]]:
    """Each of `bodies` from `sender`, handled by its own thread, all let go together."""
    answers: list[Answer] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(bodies))

    def handle(body: str, sid: str) -> None:
        barrier.wait()
        try:
            answers.append(
                handle_reply(
                    Ledger(engine), file, sender=sender, body=body, provider_id=sid, now=now
                )
            )
        except BaseException as error:  # reported by the test's assertion
            errors.append(error)

    threads = [
        threading.Thread(target=handle, args=(body, f"SM{sender}{n}"))
        for n, body in enumerate(bodies)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers, errors


def test_two_different_snoozes_from_one_partner_at_once_both_answer_and_make_one_snooze(
    pg_engine: Engine,
) -> None:
    engine = pg_engine
    file = plan(engine, rituals())
    now = ny(6, 7, 21, 45)
    send_due(engine, now)
    for sender in (ALEX, SAM):
        answers, errors = at_once(engine, file, sender, ["SNOOZE 2h", "SNOOZE 3h"], now)

        assert errors == []
        assert len(answers) == 2
        assert all(a.text.startswith("OK: Tend will remind you about the") for a in answers)
        partner = "alex" if sender == ALEX else "sam"
        mine = [s for s in snoozes(engine) if s["partner_key"] == partner]
        assert [(s["role"], s["status"]) for s in mine] == [("snooze-1", "pending")]
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(InboundMessageRow)).scalar() == 4
