"""Regressions from a bug hunt on replies, streaks and file changes: each test is one bug,
reproduced through the same code paths as test_replies (the planner, ``handle_reply``, the
streaks), whose histories and helpers it reuses (Alex and Sam in New York, June 2026)."""

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

from config.loader import parse_ritual_file
from config.model import RitualFile
from rituals.planning import Plan
from rituals.streaks import Outcome
from scheduler.models import (
    Completion,
    Delivery,
    Household,
    InboundMessage,
    Occurrence,
    Partner,
    StreakCheckpoint,
)
from scheduler.planner import SyncedFile, plan_horizon, sync_file
from scheduler.replies import LIMITED, NOTHING_OPEN, Answer, handle_reply
from scheduler.streaks import household_streaks

BACK_ON = "You are back on Tend's texts. Reply HELP for the commands."


def change_file(engine: Engine, text: str, now: datetime, *, days: int = 21) -> RitualFile:
    """The couple edits the file at `now`: synced (it did change) and planned again."""
    file = ritual_file(text, now)
    synced = sync_file(engine, file, now)
    assert synced.changed
    plan_horizon(engine, Plan(file), now, generation=synced.generation, changed=True, days=days)
    return file


def date_nights(engine: Engine, month: int, day: int) -> list[dict[str, Any]]:
    """Every date-night occurrence of alex-sam on local day `day`, cancelled ones too."""
    found = rows_of(
        engine,
        Occurrence,
        Occurrence.household_id == HOUSEHOLD,
        Occurrence.ritual_id == "date-night",
    )
    return sorted(
        (o for o in found if (o["slot"].month, o["slot"].day) == (month, day)),
        key=lambda o: o["slot"],
    )


def opted_out(engine: Engine, partner: str) -> datetime | None:
    (row,) = rows_of(engine, Partner, Partner.household_id == HOUSEHOLD, Partner.key == partner)
    found: datetime | None = row["sms_opted_out_at"]
    return found


# ---------------------------------------------------------------------------- 1. skip, move


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
        rows_of(engine, Delivery, Delivery.occurrence_id.in_(friday), Delivery.status == "pending")
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


# ---------------------------------------------------------------------------- 2. freezes

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
        for r in rows_of(engine, Completion, Completion.action == "skip")
    }
    assert froze == {twelfth: ("sam", False), nineteenth: ("alex", True)}


# ---------------------------------------------------------------------------- 3. scoped away


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
        Delivery,
        Delivery.household_id == "alex-kim",
        Delivery.status == "pending",
        Delivery.occurrence_id.in_(select(Occurrence.id).where(Occurrence.ritual_id == "check-in")),
    )

    # Everything else pending out of the way: the dispatcher at the snooze's time sends nothing.
    with engine.begin() as connection:
        connection.execute(
            update(Delivery)
            .where(Delivery.status == "pending", Delivery.role.not_like("snooze%"))
            .values(status="cancelled")
        )
    clock.set(ny(6, 8, 19, 31))
    make_dispatcher(engine, sms=sms).run_until_idle()
    assert sms.sent == []
    reply.file = changed
    assert reply(SAM, "DONE", ny(6, 8, 19, 40)).text == NOTHING_OPEN
    assert completions(engine) == []


# ---------------------------------------------------------------------------- 4. long ids

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
        engine, file, sender="+15551230001", body="DONE", provider_id="SM1", now=now
    )

    assert answer.text.startswith("Marked the check in (Sun 7 Jun) as done.")
    assert answer.partner == LONG_IDS[0]
    # The answer folds only the streak it is about: the check-in's.
    saved = rows_of(engine, StreakCheckpoint, StreakCheckpoint.household_id == "trio")
    assert [(r["ritual_id"], r["recipient"]) for r in saved] == [("check-in", "")]
    with engine.begin() as connection:
        first = household_streaks(connection, file, "trio", now)
    saved = rows_of(engine, StreakCheckpoint, StreakCheckpoint.household_id == "trio")
    assert sorted((r["ritual_id"], r["recipient"]) for r in saved) == [
        ("appreciation", p) for p in LONG_IDS
    ] + [("check-in", "")]
    assert all(len(r["rules"]) == 64 for r in saved)  # a sha256, whatever the audience
    with engine.begin() as connection:
        again = household_streaks(connection, file, "trio", now)
    assert [s.streak for s in again] == [s.streak for s in first]
    assert first[0].streak.current == 1
    assert rows_of(engine, StreakCheckpoint, StreakCheckpoint.household_id == "trio") == saved


# ---------------------------------------------------------------------------- 5-7. words


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
    (inbound,) = rows_of(engine, InboundMessage)
    assert (inbound["body"], inbound["partner_key"]) == (body, "alex")


# ---------------------------------------------------------------------------- 8. zones


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


# ---------------------------------------------------------------------------- 9. zone change


def test_a_household_time_zone_change_invalidates_streak_checkpoints(engine: Engine) -> None:
    text = COUPLE + RITUALS.format(streak="either", appreciation_window="3d", freezes=1)
    now = ny(6, 1, 8)
    sync_file(engine, ritual_file(text, now), now)
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
    assert rows_of(engine, Household, Household.id == HOUSEHOLD)[0]["timezone"] == "Asia/Tokyo"

    with engine.begin() as connection:
        incremental = household_streaks(connection, tokyo, HOUSEHOLD, later)

    after = checkpoint(engine)
    assert after is not None
    assert after["rules"] != before["rules"]
    with engine.begin() as connection:
        connection.execute(delete(StreakCheckpoint))
        scratch = household_streaks(connection, tokyo, HOUSEHOLD, later, save=False)
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


# ---------------------------------------------------------------------------- 10. races


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
                handle_reply(engine, file, sender=sender, body=body, provider_id=sid, now=now)
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
        assert connection.execute(select(func.count()).select_from(InboundMessage)).scalar() == 4


# ---------------------------------------------------------------------------- a new user's trial


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


# ---- second review


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
    (skipped,) = rows_of(engine, Completion, Completion.action == "skip")
    assert (skipped["occurrence_id"], skipped["froze"]) == (nineteenth, False)

    # Thu 18 Jun: back before the date night (RESUME, or a pause of a day from now).
    assert reply(SAM, ends, ny(6, 18, 9)).text.startswith(answer)

    (skipped,) = rows_of(engine, Completion, Completion.action == "skip")
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
        for r in rows_of(engine, Completion, Completion.action == "skip")
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


ENDED = (
    COUPLE
    + """
[[rituals]]
id = "check-in"
kind = "check_in"
schedule = "weekly on sun at 19:30"

[[rituals]]
id = "june-challenge"
kind = "custom"
schedule = "rrule: FREQ=DAILY;BYHOUR=9;BYMINUTE=0;UNTIL=20260630T235900"
message = "Day of the June challenge"
"""
)


def test_a_ritual_whose_rrule_has_ended_warns_and_the_synced_file_still_loads(
    engine: Engine,
) -> None:
    start = ny(6, 1, 8)
    loaded = parse_ritual_file(ENDED, name="tend.toml", today=start)
    assert loaded.warnings == []
    sync_file(engine, loaded.file, start, text=ENDED)

    later = ny(7, 2, 8)  # the challenge ended on 30 Jun
    again = parse_ritual_file(ENDED, name="tend.toml", today=later)
    (warning,) = again.warnings
    assert warning.severity == "warning"
    assert "has ended" in warning.message
    assert [r.id for r in again.file.rituals] == ["check-in", "june-challenge"]

    synced = SyncedFile(engine, fallback=None, clock=lambda: later)()
    assert synced is not None
    assert [r.id for r in synced.rituals] == ["check-in", "june-challenge"]
    assert [h.id for h in synced.households] == [HOUSEHOLD]
