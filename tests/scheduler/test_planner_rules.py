"""The planner's change rules (:mod:`scheduler.planner.rules`) from tables: what the file
makes (hand-made candidates) against what the ledger has (a hand-made snapshot), one row per
rule and one at each rule's edge. The rules are numbered as in the module's docstring.

No database: the rows a plan writes are judged before any statement runs. The household is
alex-sam on UTC; it is Monday 12 January 2026, 09:00, and the check-in is daily at 12:00.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from scheduler.ledger.plans import OccurrenceKey, Snapshot
from scheduler.planner.candidates import Candidate
from scheduler.planner.rules import choose, delivery_rows, kept_days, occurrence_rows

HOUSEHOLD = "alex-sam"
RITUAL = "check-in"
NOW = datetime(2026, 1, 12, 9, 0, tzinfo=UTC)
BOTH = (("alex", "day_of"), ("sam", "day_of"))


def slot(hour: int, minute: int = 0, *, day: int = 12) -> datetime:
    """A naive local slot in January 2026 (the household is on UTC)."""
    return datetime(2026, 1, day, hour, minute)


def key(at: datetime, recipient: str = "") -> OccurrenceKey:
    return (HOUSEHOLD, RITUAL, at, recipient)


def candidate(
    at: datetime,
    messages: Sequence[tuple[str, str]] = BOTH,
    *,
    recipient: str = "",
    channel: str = "sms",
    main_in_time: bool = True,
) -> Candidate:
    """The check-in at local `at`, with a message to each (partner, role) of `messages`,
    due at the slot (a reminder two hours after it; a plan-ahead message three days before)."""
    instant = at.replace(tzinfo=UTC)
    shift = {"reminder": timedelta(hours=2), "plan_ahead": -timedelta(days=3)}
    return Candidate(
        key=key(at, recipient),
        row={
            "household_id": HOUSEHOLD,
            "ritual_id": RITUAL,
            "slot": at,
            "recipient": recipient,
            "kind": "check_in",
            "at": instant,
            "status": "open",
        },
        deliveries=[
            {
                "household_id": HOUSEHOLD,
                "partner_key": partner,
                "role": role,
                "channel": channel,
                "status": "pending",
                "due_at": instant + shift.get(role, timedelta()),
            }
            for partner, role in messages
        ],
        main_in_time=main_in_time,
    )


def snapshot(
    *occurrences: tuple[datetime, str] | tuple[datetime, str, str],
    reached: Sequence[tuple[int, str]] = (),
) -> Snapshot:
    """Occurrences (local slot, status[, recipient]) numbered 1, 2, ... in order, and the
    (day of January, partner) whose main message of the check-in reached them."""
    found: dict[OccurrenceKey, tuple[int, str]] = {}
    for number, (at, status, *recipient) in enumerate(occurrences, start=1):
        found[key(at, *recipient)] = (number, status)
    return Snapshot(
        found,
        reached={(HOUSEHOLD, RITUAL, date(2026, 1, day), who) for day, who in reached},
    )


def made(chosen: Sequence[Candidate]) -> list[str]:
    """``"12 12:00 alex/day_of sam/day_of"``: each chosen occurrence and its deliveries."""
    return [
        " ".join(
            [f"{c.key[2]:%d %H:%M}", *(f"{d['partner_key']}/{d['role']}" for d in c.deliveries)]
        )
        for c in chosen
    ]


# ----------------------------------------------------------------------------- rules 1 to 3


def case(
    candidates: list[Candidate],
    before: Snapshot,
    expected: list[str],
    lost: set[int],
    id: str,
    *,
    now: datetime = NOW,
    first_plan: bool = False,
) -> Any:
    return pytest.param(candidates, before, now, first_plan, expected, lost, id=id)


CHOICES = [
    # 1. Nothing new in the past once the ledger has planned before.
    case(
        [candidate(slot(12))],
        snapshot(),
        ["12 12:00 alex/day_of sam/day_of"],
        set(),
        "1-a-slot-still-to-come-is-made",
    ),
    case(
        [candidate(slot(8))],
        snapshot(),
        [],
        {12},
        "1-a-slot-gone-by-is-not-made-once-the-ledger-has-planned-and-its-day-is-lost",
    ),
    case(
        [candidate(slot(9))],
        snapshot(),
        ["12 09:00 alex/day_of sam/day_of"],
        set(),
        "1-a-slot-at-this-very-moment-is-still-made",
    ),
    case(
        [candidate(slot(8))],
        snapshot(),
        ["12 08:00 alex/day_of sam/day_of"],
        set(),
        "1-the-first-plan-makes-a-slot-gone-by-whose-own-message-is-in-its-grace",
        first_plan=True,
    ),
    case(
        [candidate(slot(8), main_in_time=False)],
        snapshot(),
        [],
        {12},
        "1-the-first-plan-leaves-a-slot-gone-by-whose-own-message-is-past-its-grace",
        first_plan=True,
    ),
    case(
        [candidate(slot(8))],
        snapshot((slot(8), "cancelled")),
        [],
        {12},
        "1-an-occurrence-cancelled-in-the-past-is-not-revived",
    ),
    case(
        [candidate(slot(12))],
        snapshot((slot(12), "cancelled")),
        ["12 12:00 alex/day_of sam/day_of"],
        set(),
        "1-a-cancelled-occurrence-still-to-come-is-revived",
    ),
    case(
        [candidate(slot(8))],
        snapshot((slot(8), "open"), reached=[(12, "alex")]),
        ["12 08:00 alex/day_of sam/day_of"],
        set(),
        "1-an-occurrence-the-ledger-has-is-kept-whole-even-gone-by",
    ),
    # 2. A day the couple skipped or confirmed is settled.
    case(
        [candidate(slot(18))],
        snapshot((slot(12), "skipped")),
        [],
        set(),
        "2-a-day-skipped-at-its-old-time-makes-no-new-occurrence",
    ),
    case(
        [candidate(slot(18))],
        snapshot((slot(12), "confirmed")),
        [],
        set(),
        "2-a-day-confirmed-at-its-old-time-makes-no-new-occurrence",
    ),
    case(
        [candidate(slot(18))],
        snapshot((slot(8), "missed")),
        ["12 18:00 alex/day_of sam/day_of"],
        set(),
        "2-a-day-missed-at-its-old-time-is-not-settled",
    ),
    case(
        [candidate(slot(12, day=13))],
        snapshot((slot(12), "skipped")),
        ["13 12:00 alex/day_of sam/day_of"],
        set(),
        "2-a-settled-day-does-not-hold-back-the-next-day",
    ),
    case(
        [candidate(slot(12))],
        snapshot((slot(12), "confirmed")),
        ["12 12:00 alex/day_of sam/day_of"],
        set(),
        "2-the-settled-occurrence-itself-is-kept",
    ),
    case(
        [candidate(slot(18), [("sam", "nudge")], recipient="sam")],
        snapshot((slot(12), "skipped", "alex")),
        ["12 18:00 sam/nudge"],
        set(),
        "2-one-partners-skip-of-an-each-ritual-does-not-settle-the-others-day",
    ),
    # 3. A message that reached a partner that day is not sent to them again that day.
    case(
        [candidate(slot(18))],
        snapshot((slot(12), "cancelled"), reached=[(12, "alex")]),
        ["12 18:00 sam/day_of"],
        set(),
        "3-moved-after-it-reached-alex-it-still-goes-to-sam-alone",
    ),
    case(
        [candidate(slot(18))],
        snapshot((slot(12), "cancelled"), reached=[(12, "alex"), (12, "sam")]),
        [],
        set(),
        "3-moved-after-it-reached-both-nothing-is-made-that-day",
    ),
    case(
        [candidate(slot(18), [("alex", "day_of"), ("alex", "reminder")])],
        snapshot(reached=[(12, "alex")]),
        [],
        set(),
        "3-a-reminder-alone-is-not-made-once-the-main-message-reached-its-partner",
    ),
    case(
        [candidate(slot(18))],
        snapshot(reached=[(11, "alex")]),
        ["12 18:00 alex/day_of sam/day_of"],
        set(),
        "3-a-message-that-reached-them-the-day-before-does-not-count",
    ),
    case(
        [candidate(slot(12, day=15), [("alex", "plan_ahead")])],
        snapshot(),
        ["15 12:00 alex/plan_ahead"],
        set(),
        "3-an-occurrence-that-makes-no-main-message-of-its-own-is-still-made",
    ),
]


@pytest.mark.parametrize(("candidates", "before", "now", "first_plan", "expected", "lost"), CHOICES)
def test_the_planner_chooses_what_the_rules_let_it_make(
    candidates: list[Candidate],
    before: Snapshot,
    now: datetime,
    first_plan: bool,
    expected: list[str],
    lost: set[int],
) -> None:
    chosen = choose(candidates, before, now, first_plan=first_plan)
    assert made(chosen.candidates) == expected
    assert chosen.lost_days == {(HOUSEHOLD, RITUAL, date(2026, 1, day), "") for day in lost}


# ----------------------------------------------------------------------------- rule 4: occurrences


@pytest.mark.parametrize(
    ("status", "changed", "upserted", "written"),
    [
        pytest.param(None, False, True, 1, id="a-new-occurrence-is-written"),
        pytest.param("open", False, False, 0, id="an-unchanged-open-one-is-not-written"),
        pytest.param("confirmed", False, False, 0, id="an-unchanged-confirmed-one-is-not-written"),
        pytest.param("cancelled", False, True, 1, id="a-cancelled-one-is-written-to-revive-it"),
        pytest.param("open", True, True, 1, id="after-a-change-an-open-one-is-written"),
        pytest.param(None, True, True, 1, id="after-a-change-a-new-one-is-written-once"),
    ],
)
def test_an_occurrence_row_is_written_only_when_new_revived_or_the_file_changed(
    status: str | None, changed: bool, upserted: bool, written: int
) -> None:
    before = snapshot((slot(12), status)) if status else snapshot()
    rows, count = occurrence_rows([candidate(slot(12))], before, changed=changed)
    assert [r["slot"] for r in rows] == ([slot(12)] if upserted else [])
    assert count == written


def test_occurrence_rows_of_a_chunk_write_only_the_new_and_count_them() -> None:
    before = snapshot((slot(12), "open"), (slot(12, day=13), "cancelled"))
    chosen = [candidate(slot(12)), candidate(slot(12, day=13)), candidate(slot(12, day=14))]
    rows, count = occurrence_rows(chosen, before, changed=False)
    assert [r["slot"] for r in rows] == [slot(12, day=13), slot(12, day=14)]
    assert count == 2


# ------------------------------------------------------------------------ rules 4, 5: deliveries

MESSAGE = (1, "alex", "day_of")  # occurrence 1's day-of message to Alex


def delivery_case(
    *,
    due: datetime,
    channel: str = "sms",
    had: dict[str, str] | None = None,
    first_plan: bool = False,
    changed: bool = False,
    written: bool,
    announced: bool,
    id: str,
) -> Any:
    """Alex's day-of message on `channel`, due at `due`, when the ledger `had` the message
    on these channels with these statuses."""
    return pytest.param(due, channel, had or {}, first_plan, changed, written, announced, id=id)


LATER = NOW + timedelta(hours=3)
EARLIER = NOW - timedelta(hours=1)

DELIVERIES = [
    delivery_case(due=LATER, written=True, announced=True, id="4-a-new-message-is-written"),
    delivery_case(
        due=LATER,
        had={"sms": "pending"},
        written=False,
        announced=False,
        id="4-an-unchanged-pending-message-is-not-written",
    ),
    delivery_case(
        due=LATER,
        had={"sms": "pending"},
        changed=True,
        written=True,
        announced=True,
        id="4-after-a-change-a-pending-message-is-written-and-announced",
    ),
    delivery_case(
        due=LATER,
        had={"sms": "sent"},
        changed=True,
        written=True,
        announced=False,
        id="4-after-a-change-a-sent-message-is-written-but-is-no-new-work",
    ),
    delivery_case(
        due=LATER,
        had={"sms": "cancelled"},
        written=True,
        announced=True,
        id="4-a-cancelled-message-is-written-to-revive-it",
    ),
    # 5. Sent already: not made again on another channel.
    delivery_case(
        due=LATER,
        channel="email",
        had={"sms": "sent"},
        written=False,
        announced=False,
        id="5-a-message-sent-by-sms-is-not-made-again-by-email",
    ),
    delivery_case(
        due=LATER,
        channel="email",
        had={"sms": "failed"},
        changed=True,
        written=False,
        announced=False,
        id="5-a-message-given-up-on-is-not-made-again-on-another-channel",
    ),
    delivery_case(
        due=LATER,
        had={"email": "sent", "sms": "cancelled"},
        changed=True,
        written=False,
        announced=False,
        id="5-a-message-sent-by-email-does-not-revive-the-cancelled-sms",
    ),
    delivery_case(
        due=LATER,
        channel="email",
        had={"sms": "cancelled"},
        written=True,
        announced=True,
        id="5-a-message-whose-only-row-was-cancelled-is-made-on-the-new-channel",
    ),
    # 5. Overdue: not made, unless it moves an unsent one to another channel.
    delivery_case(
        due=EARLIER,
        written=False,
        announced=False,
        id="5-an-overdue-new-message-is-not-made",
    ),
    delivery_case(
        due=EARLIER,
        changed=True,
        written=False,
        announced=False,
        id="5-an-overdue-new-message-is-not-made-after-a-change-either",
    ),
    delivery_case(
        due=NOW,
        written=True,
        announced=True,
        id="5-a-message-due-this-very-moment-is-made",
    ),
    delivery_case(
        due=EARLIER,
        first_plan=True,
        written=True,
        announced=True,
        id="5-the-first-plan-makes-an-overdue-message",
    ),
    delivery_case(
        due=EARLIER,
        channel="email",
        had={"sms": "pending"},
        written=True,
        announced=True,
        id="5-an-overdue-unsent-message-moves-to-the-new-channel",
    ),
    delivery_case(
        due=EARLIER,
        had={"sms": "cancelled"},
        written=False,
        announced=False,
        id="5-an-overdue-cancelled-message-is-not-revived",
    ),
]


@pytest.mark.parametrize(
    ("due", "channel", "had", "first_plan", "changed", "written", "announced"), DELIVERIES
)
def test_a_delivery_row_is_written_as_rules_4_and_5_say(
    due: datetime,
    channel: str,
    had: dict[str, str],
    first_plan: bool,
    changed: bool,
    written: bool,
    announced: bool,
) -> None:
    chosen = candidate(slot(12), [("alex", "day_of")], channel=channel)
    chosen.deliveries[0]["due_at"] = due
    before = snapshot((slot(12), "open"))
    for other, status in had.items():
        before.deliveries[(*MESSAGE, other)] = status
        if status == "pending":
            before.unsent.add(MESSAGE)
        elif status != "cancelled":
            before.settled.add(MESSAGE)
    ids = {chosen.key: (1, "open")}

    rows, count = delivery_rows([chosen], ids, before, NOW, first_plan=first_plan, changed=changed)

    assert [(r["occurrence_id"], r["channel"]) for r in rows] == ([(1, channel)] if written else [])
    assert count == (1 if announced else 0)


def test_delivery_rows_take_the_occurrence_ids_given_after_the_upsert() -> None:
    chosen = candidate(slot(12))
    rows, count = delivery_rows(
        [chosen], {chosen.key: (41, "open")}, snapshot(), NOW, first_plan=False, changed=False
    )
    assert [(r["occurrence_id"], r["partner_key"]) for r in rows] == [(41, "alex"), (41, "sam")]
    assert count == 2


# ----------------------------------------------------------------------------- rule 6: kept days

LOST_MONDAY = {(HOUSEHOLD, RITUAL, date(2026, 1, 12), "")}


@pytest.mark.parametrize(
    ("before", "candidates", "lost", "kept"),
    [
        pytest.param(
            snapshot((slot(12), "open")),
            [candidate(slot(8))],
            LOST_MONDAY,
            [1],
            id="6-a-day-whose-new-slot-is-past-keeps-its-old-open-slot",
        ),
        pytest.param(
            snapshot((slot(12), "confirmed")),
            [candidate(slot(8))],
            LOST_MONDAY,
            [],
            id="6-an-old-slot-that-is-not-open-is-not-kept",
        ),
        pytest.param(
            snapshot((slot(12, day=13), "open")),
            [candidate(slot(8))],
            LOST_MONDAY,
            [],
            id="6-an-old-slot-of-a-day-not-lost-is-not-kept",
        ),
        pytest.param(
            snapshot((slot(12), "open")),
            [candidate(slot(8)), candidate(slot(12))],
            LOST_MONDAY,
            [],
            id="6-an-old-slot-the-file-still-makes-is-not-kept-apart",
        ),
        pytest.param(
            snapshot((slot(12), "open", "alex"), (slot(12), "open", "sam")),
            [candidate(slot(8), recipient="alex")],
            {(HOUSEHOLD, RITUAL, date(2026, 1, 12), "alex")},
            [1],
            id="6-only-the-recipient-whose-day-is-lost-keeps-the-old-slot",
        ),
        pytest.param(
            snapshot((slot(12), "open")),
            [candidate(slot(8))],
            set(),
            [],
            id="6-nothing-is-kept-when-no-day-is-lost",
        ),
    ],
)
def test_kept_days_are_the_open_old_slots_of_lost_days_not_made_again(
    before: Snapshot, candidates: list[Candidate], lost: set[Any], kept: list[int]
) -> None:
    assert kept_days(before, candidates, lost) == kept


def test_a_change_to_a_time_already_past_keeps_the_day_through_choose_and_kept_days() -> None:
    # 09:00: the noon check-in is moved to 08:00. Monday's 08:00 is gone by: the day would be
    # lost, so Monday's noon occurrence the ledger has is kept; Tuesday's 08:00 is made, and
    # Tuesday's noon is left to be cancelled.
    before = snapshot((slot(12), "open"), (slot(12, day=13), "open"))
    candidates = [candidate(slot(8)), candidate(slot(8, day=13))]
    chosen = choose(candidates, before, NOW, first_plan=False)
    assert made(chosen.candidates) == ["13 08:00 alex/day_of sam/day_of"]
    assert kept_days(before, candidates, chosen.lost_days) == [1]
