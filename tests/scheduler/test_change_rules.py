"""The planner's change rules, from a second review: each test is a couple's edit that once
went wrong (a message sent twice, or lost) and now goes right.

Time is the scheduler tests' fake clock (Monday 12 January 2026, UTC); rows come from
small ritual files through the planner and are sent by the real dispatcher.
"""

from __future__ import annotations

from datetime import datetime

from fake_notifiers import FakeClock, FakeEmail, FakeSms, MakeDispatcher, transient
from january_couple import COUPLE, SOLO, at, deliveries, key, one, plan
from sqlalchemy import Engine, select

from scheduler.ledger.rows import OccurrenceRow


def sent_on(notifier_keys: list[str], who: str, role: str, day: str) -> list[str]:
    """Message keys for `who` and `role` about an occurrence on local day `day`."""
    return [k for k in notifier_keys if f"/{who}/{role}/" in k and f"/{day}T" in k]


def run(dispatcher: object, clock: FakeClock, *moments: datetime) -> None:
    for moment in moments:
        clock.set(moment)
        dispatcher.run_until_idle()  # type: ignore[attr-defined]


# ------------------------------------------------------------------ a change reverted


def test_reverting_a_channel_change_after_the_new_channel_sent_does_not_send_it_again(
    engine: Engine,
    clock: FakeClock,
    sms: FakeSms,
    email: FakeEmail,
    make_dispatcher: MakeDispatcher,
) -> None:
    dispatcher = make_dispatcher(engine, sms=sms, email=email)
    plan(engine, SOLO, at(9))
    # 11:00 Alex prefers email: the pending SMS is cancelled, an email is planned instead.
    email_first = SOLO.replace('["sms", "email"]', '["email", "sms"]')
    plan(engine, email_first, at(11))
    run(dispatcher, clock, at(12))
    assert sent_on(email.sent, "alex", "day_of", "2026-01-12") != []

    # 12:30 Alex switches back. The cancelled SMS row used to be revived (its key was
    # "known", so the "already sent on another channel" check was skipped) and go out too.
    plan(engine, SOLO, at(12, 30))
    run(dispatcher, clock, at(12, 30), at(13))

    got = sent_on(sms.sent + email.sent, "alex", "day_of", "2026-01-12")
    assert len(got) == 1, f"Alex got the 12:00 check-in {len(got)} times: {got}"


def test_reverting_a_time_change_after_the_moved_message_went_out_does_not_send_it_again(
    engine: Engine,
    clock: FakeClock,
    sms: FakeSms,
    make_dispatcher: MakeDispatcher,
) -> None:
    dispatcher = make_dispatcher(engine, sms=sms)
    plan(engine, SOLO, at(9))
    # 10:00 the check-in moves to 11:00 today; it goes out at 11:00.
    plan(engine, SOLO.replace("daily at 12:00", "daily at 11:00"), at(10))
    run(dispatcher, clock, at(11))
    assert len(sent_on(sms.sent, "alex", "day_of", "2026-01-12")) == 1

    # 11:30 they move it back to 12:00 (a later time on a day whose message went out): the
    # old 12:00 occurrence and delivery used to be revived and sent a second time.
    plan(engine, SOLO, at(11, 30))
    run(dispatcher, clock, at(12), at(12, 30))

    got = sent_on(sms.sent, "alex", "day_of", "2026-01-12")
    assert len(got) == 1, f"Alex got today's check-in {len(got)} times: {got}"


# ------------------------------------------------------------------ lost messages

DATE_NIGHT = COUPLE.replace('id = "check-in"', 'id = "date-night"').replace(
    'kind = "check_in"\nschedule = "daily at 12:00"',
    'kind = "date_night"\nschedule = "weekly on fri at 19:00"',
)


def test_moving_a_date_night_after_its_plan_ahead_nudge_went_out_keeps_the_date_night(
    engine: Engine,
    clock: FakeClock,
    sms: FakeSms,
    email: FakeEmail,
    make_dispatcher: MakeDispatcher,
) -> None:
    assert "weekly on fri at 19:00" in DATE_NIGHT
    dispatcher = make_dispatcher(engine, sms=sms, email=email)
    plan(engine, DATE_NIGHT, at(9), days=7)
    # Tuesday 19:00: the planner hears "date night on Friday" (plan_ahead 3d).
    run(dispatcher, clock, at(19, day=1))
    assert len([k for k in sms.sent if "/plan_ahead/" in k and "2026-01-16T19:00" in k]) == 1

    # Wednesday: the table is booked for 20:00, so they move the date night to 20:00.
    later = DATE_NIGHT.replace("weekly on fri at 19:00", "weekly on fri at 20:00")
    for day, hour in ((2, 10), (2, 11), (3, 10), (4, 10), (4, 19)):
        plan(engine, later, at(hour, day=day), days=7)
    run(dispatcher, clock, at(19, day=4), at(20, day=4), at(21, day=4))

    # Friday: someone must hear "date night tonight". The 20:00 occurrence used to be left
    # unmade because the plan-ahead nudge counted as "the day's message already went out".
    friday = [k for k in sms.sent if "/day_of/" in k and "2026-01-16T" in k]
    assert sorted(friday) != [], "Friday's date night was never announced to anyone"


QUIET_SAM = COUPLE.replace(
    'channels = ["sms"]\n', 'channels = ["sms"]\n  quiet_hours = "22:00-08:00"\n'
).replace("daily at 12:00", "daily at 07:00")


def test_a_ritual_moved_later_after_one_partner_got_it_still_reaches_the_other(
    engine: Engine,
    clock: FakeClock,
    sms: FakeSms,
    make_dispatcher: MakeDispatcher,
) -> None:
    assert 'quiet_hours = "22:00-08:00"' in QUIET_SAM
    dispatcher = make_dispatcher(engine, sms=sms)
    plan(engine, QUIET_SAM, at(6))
    # 07:00: Alex gets it; Sam's waits for the end of his quiet hours (08:00).
    run(dispatcher, clock, at(7))
    assert len(sent_on(sms.sent, "alex", "day_of", "2026-01-12")) == 1

    # 07:30 they move the morning check-in to the evening.
    evening = QUIET_SAM.replace("daily at 07:00", "daily at 21:00")
    plan(engine, evening, at(7, 30))
    run(dispatcher, clock, at(8), at(9), at(21), at(21, 30))
    plan(engine, evening, at(8, 30))
    run(dispatcher, clock, at(21, 45))

    # Sam's 08:00 delivery is cancelled by the change; tonight's 21:00 used to be left
    # unmade for him too because Alex's message "already went out".
    got = sent_on(sms.sent, "sam", "day_of", "2026-01-12")
    assert len(got) == 1, "Sam got no check-in on Monday"


# A random-window appreciation, three times a week between 10:00 and 20:00.
SPARK = (
    COUPLE.replace('id = "check-in"', 'id = "spark"')
    .replace('kind = "check_in"', 'kind = "appreciation"')
    .replace(
        'schedule = "daily at 12:00"',
        'schedule = { times = 3, per = "week", between = "10:00-20:00" }',
    )
)


def test_editing_quiet_hours_outside_a_random_window_keeps_todays_nudge(
    engine: Engine,
    clock: FakeClock,
    sms: FakeSms,
    make_dispatcher: MakeDispatcher,
) -> None:
    dispatcher = make_dispatcher(engine, sms=sms)
    monday = at(9, day=14)  # Monday 26 January
    plan(engine, SPARK, monday, days=7)
    wednesday = [d for d in deliveries(engine) if d["due_at"].date() == at(0, day=16).date()]
    # Wednesday's nudge is drawn for 15:00.
    assert {d["due_at"] for d in wednesday} == {datetime(2026, 1, 28, 15, 0, tzinfo=monday.tzinfo)}

    # Wednesday noon Sam, a late sleeper, sets quiet hours 22:00-11:00: nothing to do with
    # 15:00, yet the whole week is drawn again and Wednesday's slot becomes 11:15 (past).
    late_sleeper = SPARK.replace(
        'channels = ["sms"]\n', 'channels = ["sms"]\n  quiet_hours = "22:00-11:00"\n'
    )
    noon = at(12, day=16)
    plan(engine, late_sleeper, noon, days=7)
    run(dispatcher, clock, noon, at(15, day=16), at(16, day=16), at(20, day=16))
    plan(engine, late_sleeper, at(13, day=16), days=7)
    run(dispatcher, clock, at(21, day=16))

    got = [k for k in sms.sent if "/nudge/" in k and "/2026-01-28T" in k]
    assert got != [], "Wednesday's nudge (planned for 15:00, still to come) was never sent"


# ------------------------------------------------------------------ horizon


def test_a_one_day_horizon_plans_the_rituals_between_midnight_and_the_next_hourly_plan(
    engine: Engine,
    clock: FakeClock,
    sms: FakeSms,
    make_dispatcher: MakeDispatcher,
) -> None:
    """TEND_HORIZON_DAYS=1 is allowed (ge=1): the planner used to write only the local
    today, so a slot just after midnight was past by the next hourly plan."""
    midnight = SOLO.replace("daily at 12:00", "daily at 00:15")
    dispatcher = make_dispatcher(engine, sms=sms)
    plan(engine, midnight, at(9), days=1)
    # Any edit at all makes the ledger's generation 2: from then on nothing is made late.
    edited = midnight + 'message = "Time for a check-in, {{ partner }}"\n'
    plan(engine, edited, at(9, 30), days=1)
    # The worker's hourly plans, at half past.
    for hour in range(10, 24):
        plan(engine, edited, at(hour, 30), days=1)
    plan(engine, edited, at(0, 30, day=1), days=1)
    run(dispatcher, clock, at(0, 30, day=1), at(1, day=1))

    got = [k for k in sms.sent if "/2026-01-13T00:15/" in k]
    assert got != [], "Tuesday's 00:15 check-in was never planned"


# ------------------------------------------------------------------ to = "each" and planners


def test_each_changed_to_both_and_moved_later_does_not_send_the_days_message_twice(
    engine: Engine,
    clock: FakeClock,
    sms: FakeSms,
    make_dispatcher: MakeDispatcher,
) -> None:
    each = COUPLE.replace("daily at 12:00", "daily at 09:00") + 'to = "each"\n'
    dispatcher = make_dispatcher(engine, sms=sms)
    plan(engine, each, at(8))
    run(dispatcher, clock, at(9))
    assert len(sent_on(sms.sent, "alex", "day_of", "2026-01-12")) == 1

    # 10:00 one shared check-in in the evening instead of one each in the morning.
    both = COUPLE.replace("daily at 12:00", "daily at 18:00")
    plan(engine, both, at(10))
    run(dispatcher, clock, at(18), at(18, 30))

    # "Moved later on a day its message went out" used to be keyed by recipient: the old
    # occurrences' were "alex"/"sam", the new one's "", so tonight went out too.
    got = sent_on(sms.sent, "alex", "day_of", "2026-01-12")
    assert len(got) == 1, f"Alex got Monday's check-in {len(got)} times: {got}"


def test_reordering_partners_after_the_plan_ahead_nudge_keeps_the_planner(
    engine: Engine,
    clock: FakeClock,
    sms: FakeSms,
    email: FakeEmail,
    make_dispatcher: MakeDispatcher,
) -> None:
    dispatcher = make_dispatcher(engine, sms=sms, email=email)
    plan(engine, DATE_NIGHT, at(9), days=7)
    run(dispatcher, clock, at(19, day=1))  # Tuesday: the plan-ahead nudge for Friday
    (told,) = [k.split("/")[3] for k in sms.sent if "/plan_ahead/" in k]

    # Wednesday: Sam's block is moved above Alex's (tidying the file). "alternate" used to
    # count planners by position, giving Friday's occurrence the other partner as planner.
    alex_block = DATE_NIGHT[
        DATE_NIGHT.index("  [[households.partners]]") : DATE_NIGHT.index(
            '  [[households.partners]]\n  id = "sam"'
        )
    ]
    reordered = DATE_NIGHT.replace(alex_block, "", 1).replace(
        "\n[[rituals]]", "\n" + alex_block + "\n[[rituals]]", 1
    )
    assert reordered.index('id = "sam"') < reordered.index('id = "alex"')
    plan(engine, reordered, at(10, day=2), days=7)
    run(dispatcher, clock, at(19, day=4))

    with engine.connect() as connection:
        planners = connection.execute(
            select(OccurrenceRow.planners).where(OccurrenceRow.slot == datetime(2026, 1, 16, 19))
        ).scalar_one()
    day_of = [d["body"] for d in deliveries(engine, role="day_of", status="sent")]
    assert planners == told, f"{told} was told to plan Friday, the ledger now says {planners}"
    assert all(f"Planner: {told.title()}" in body for body in day_of), day_of


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


# ------------------------------------------------------------------ performance


def test_the_hourly_plans_stale_work_check_does_not_scan_the_whole_occurrence_history(
    pg_engine: Engine,
) -> None:
    """Occurrences stay `open` forever unless a partner answers, so the table of open
    occurrences of older generations grows by every ritual of every household, every day.
    `_unfinished` runs on every hourly plan; with `ritual_id NOT IN (...)` ORed in and no
    time bound, it used to read the whole history each hour (`_cancel_stale` likewise)."""
    from sqlalchemy import event, text

    plan(pg_engine, COUPLE, at(9))
    plan(pg_engine, COUPLE.replace("daily at 12:00", "daily at 13:00"), at(10))
    statements: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        statements.append((statement, parameters))

    event.listen(pg_engine, "before_cursor_execute", record)
    try:
        plan(pg_engine, COUPLE.replace("daily at 12:00", "daily at 13:00"), at(11))  # hourly
    finally:
        event.remove(pg_engine, "before_cursor_execute", record)
    (check, parameters) = next(
        (s, p) for s, p in statements if "EXISTS" in s and "occurrence.generation" in s
    )
    with pg_engine.connect() as connection:
        connection.execute(text("SET enable_seqscan = off"))
        explained = "\n".join(
            row[0] for row in connection.exec_driver_sql("EXPLAIN " + check, parameters)
        )
    assert "Seq Scan on occurrence" not in explained, explained
