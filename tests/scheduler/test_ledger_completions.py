"""What partners did, in the ledger (:mod:`scheduler.ledger.completions`), on both databases:
a confirmation recorded once, an occurrence confirmed when everyone it needs has, a skip
with or without one of the month's freezes, and the household's pauses, made longer,
shorter or ended through :func:`scheduler.acts.acts.pause` and ``resume``.

Rows come from the January couple's file through the planner (Alex and Sam, the noon
check-in on Monday 12, Tuesday 13 and Wednesday 14 January 2026, UTC; one freeze a month):
occurrences 1, 2 and 3.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from january_couple import COUPLE, at, deliveries, plan
from june_couple import rows_of
from query_plans import sqlite_plans
from ritual_files import ritual_file
from sqlalchemy import Engine, update

from scheduler.acts import acts
from scheduler.ledger import Ledger
from scheduler.ledger.completions import Completions, Confirmed, Skipped
from scheduler.ledger.rows import CompletionRow, HouseholdRow, OccurrenceRow, PauseRow

HOUSEHOLD = "alex-sam"
MONDAY = datetime(2026, 1, 12, 12, 0)  # occurrence 1's local slot
FILE = ritual_file(COUPLE)


@pytest.fixture
def completions(engine: Engine) -> Completions:
    plan(engine, COUPLE, at(9))
    return Ledger(engine).completions


def confirm(completions: Completions, partner: str, occurrence: int = 1, **options: Any) -> Any:
    return completions.confirm(
        household=options.pop("household", HOUSEHOLD),
        occurrence=occurrence,
        partner=partner,
        at=options.pop("at", at(12, 30)),
        source="sms",
        **options,
    )


def skip(
    completions: Completions,
    partner: str,
    occurrence: int,
    freezes: int = 1,
    household: str = HOUSEHOLD,
) -> Skipped:
    return completions.skip(
        household=household,
        occurrence=occurrence,
        partner=partner,
        at=at(10),
        source="sms",
        reason="away",
        freezes_per_month=freezes,
    )


def status(engine: Engine, occurrence: int) -> str:
    (row,) = rows_of(engine, OccurrenceRow, OccurrenceRow.id == occurrence)
    found: str = row["status"]
    return found


def done(engine: Engine) -> list[tuple[int, str, str, bool]]:
    """Every completion: (occurrence, partner, action, froze), in order."""
    return [
        (r["occurrence_id"], r["partner_key"], r["action"], r["froze"])
        for r in sorted(rows_of(engine, CompletionRow), key=lambda r: r["id"])
    ]


# ----------------------------------------------------------------------------- confirming


def test_a_confirmation_is_recorded_once_and_confirms_the_occurrence(
    engine: Engine, completions: Completions
) -> None:
    seen = completions.look_before_confirming(household=HOUSEHOLD, occurrence=1, partner="alex")
    assert seen == Confirmed("open", "check-in", MONDAY, frozenset())

    first = confirm(completions, "alex")
    again = confirm(completions, "alex", at=at(13))
    other = confirm(completions, "sam")

    assert first == Confirmed("confirmed", "check-in", MONDAY, frozenset({"alex"}))
    assert again == Confirmed("already", "check-in", MONDAY, frozenset({"alex"}))
    assert other == Confirmed("confirmed", "check-in", MONDAY, frozenset({"alex", "sam"}))
    assert status(engine, 1) == "confirmed"
    assert done(engine) == [(1, "alex", "confirm", False), (1, "sam", "confirm", False)]
    assert completions.look_before_confirming(
        household=HOUSEHOLD, occurrence=1, partner="alex"
    ) == Confirmed("already", "check-in", MONDAY, frozenset({"alex", "sam"}))


def test_a_confirmation_of_an_unknown_occurrence_or_partner_records_nothing(
    engine: Engine, completions: Completions
) -> None:
    unknown = {
        "no such occurrence": (HOUSEHOLD, 999, "alex"),
        "no such partner": (HOUSEHOLD, 1, "kim"),
        "an occurrence of another household": ("kim-lee", 1, "alex"),
    }
    for household, occurrence, partner in unknown.values():
        assert confirm(completions, partner, occurrence, household=household) == Confirmed(
            "unknown"
        )
        assert completions.look_before_confirming(
            household=household, occurrence=occurrence, partner=partner
        ) == Confirmed("unknown")
        assert skip(completions, partner, occurrence, household=household).outcome == "unknown"
    assert done(engine) == []
    assert status(engine, 1) == "open"


def test_a_called_off_occurrence_is_neither_confirmed_nor_skipped(
    engine: Engine, completions: Completions
) -> None:
    with engine.begin() as connection:
        connection.execute(
            update(OccurrenceRow).where(OccurrenceRow.id == 1).values(status="cancelled")
        )

    assert confirm(completions, "alex") == Confirmed("cancelled", "check-in", MONDAY)
    assert skip(completions, "alex", 1) == Skipped("cancelled", "check-in", MONDAY)
    assert done(engine) == []
    assert status(engine, 1) == "cancelled"


@pytest.mark.parametrize(
    ("needs", "after_alex", "after_sam"),
    [
        pytest.param(frozenset(), "confirmed", "confirmed", id="either-the-first-confirms-it"),
        pytest.param(
            frozenset({"alex", "sam"}), "open", "confirmed", id="both-it-waits-for-the-second"
        ),
        pytest.param(frozenset({"sam"}), "open", "confirmed", id="only-the-one-it-needs-counts"),
    ],
)
def test_an_occurrence_is_confirmed_once_everyone_it_needs_has_confirmed(
    engine: Engine,
    completions: Completions,
    needs: frozenset[str],
    after_alex: str,
    after_sam: str,
) -> None:
    alex = confirm(completions, "alex", needs=needs)
    assert (alex.outcome, status(engine, 1)) == ("confirmed", after_alex)
    sam = confirm(completions, "sam", needs=needs, at=at(13))
    assert (sam.outcome, sam.confirmed_by, status(engine, 1)) == (
        "confirmed",
        frozenset({"alex", "sam"}),
        after_sam,
    )


# ----------------------------------------------------------------------------- skipping


def test_a_skip_without_a_freeze_marks_it_skipped_and_cancels_its_messages_still_to_send(
    engine: Engine, completions: Completions
) -> None:
    skipped = skip(completions, "alex", 1, freezes=0)

    assert skipped == Skipped("skipped", "check-in", MONDAY, cancelled=2, froze=False)
    assert status(engine, 1) == "skipped"
    assert {(d["status"], d["last_error"]) for d in deliveries(engine, occurrence_id=1)} == {
        ("cancelled", "skipped by alex")
    }
    assert [d["status"] for d in deliveries(engine, occurrence_id=2)] == ["pending"] * 2
    assert done(engine) == [(1, "alex", "skip", False)]
    assert completions.freezes_used(HOUSEHOLD, "check-in", "", MONDAY) == 0


def test_a_skip_cancels_its_messages_by_their_occurrence_not_through_every_pending_one(
    sqlite_engine: Engine,
) -> None:
    """Through the status index a skip read every pending delivery of every household:
    4.1 s at 100,000 households, holding SQLite's one writer. By the occurrence: 0.1 ms."""
    plan(sqlite_engine, COUPLE, at(9))
    with sqlite_plans(sqlite_engine, "UPDATE delivery") as plans:
        skipped = skip(Ledger(sqlite_engine).completions, "alex", 1, freezes=0)
    assert skipped.cancelled == 2
    (found,) = plans
    assert "sqlite_autoindex_delivery_1 (occurrence_id=?)" in found
    assert "ix_delivery_status_next_attempt_at" not in found, found


def test_the_first_skip_of_the_month_uses_its_freeze_and_the_second_finds_none_left(
    engine: Engine, completions: Completions
) -> None:
    first = skip(completions, "alex", 1)
    second = skip(completions, "alex", 2)

    assert (first.outcome, first.froze, first.freezes_left) == ("skipped", True, 0)
    assert (second.outcome, second.froze, second.freezes_left) == ("skipped", False, 0)
    assert completions.freezes_used(HOUSEHOLD, "check-in", "", MONDAY) == 1
    # Another month's count is its own.
    assert completions.freezes_used(HOUSEHOLD, "check-in", "", datetime(2026, 2, 2, 12)) == 0


def test_the_other_partners_skip_of_the_same_occurrence_keeps_its_one_freeze(
    engine: Engine, completions: Completions
) -> None:
    skip(completions, "alex", 1)
    sam = skip(completions, "sam", 1)

    assert (sam.outcome, sam.froze, sam.cancelled) == ("skipped", True, 0)
    assert skip(completions, "sam", 1) == Skipped("already", "check-in", MONDAY)
    assert done(engine) == [(1, "alex", "skip", True), (1, "sam", "skip", True)]
    assert completions.freezes_used(HOUSEHOLD, "check-in", "", MONDAY) == 1


def test_a_skipped_occurrence_confirmed_after_all_gives_its_freeze_back(
    engine: Engine, completions: Completions
) -> None:
    skip(completions, "alex", 1)
    assert confirm(completions, "sam").outcome == "confirmed"

    assert status(engine, 1) == "confirmed"
    assert completions.freezes_used(HOUSEHOLD, "check-in", "", MONDAY) == 0
    assert skip(completions, "alex", 2).froze
    assert skip(completions, "sam", 1) == Skipped("done", "check-in", MONDAY)


def test_a_skip_inside_a_pause_needs_no_freeze_and_one_at_its_end_does(
    engine: Engine, completions: Completions
) -> None:
    # Paused from Monday 09:00 until Tuesday noon: Monday's check-in is covered; Tuesday's
    # starts as the pause ends (a pause covers its start, not its end).
    completions.start_pause(HOUSEHOLD, "sam", at(9), at(12, day=1))

    paused = skip(completions, "alex", 1)
    after = skip(completions, "alex", 2)

    assert (paused.outcome, paused.paused, paused.froze, paused.freezes_left) == (
        "skipped",
        True,
        False,
        1,
    )
    assert (after.paused, after.froze) == (False, True)


# ----------------------------------------------------------------------------- pauses


def pause(engine: Engine, now: datetime, length: timedelta) -> datetime:
    with Ledger(engine).transaction() as tx:
        return acts.pause(tx, FILE, household=HOUSEHOLD, partner="alex", now=now, length=length)


def resume(engine: Engine, now: datetime) -> bool:
    with Ledger(engine).transaction() as tx:
        return acts.resume(tx, FILE, household=HOUSEHOLD, now=now)


def pauses(engine: Engine) -> list[tuple[datetime, datetime]]:
    return sorted((p["starts_at"], p["ends_at"]) for p in rows_of(engine, PauseRow))


def paused_until(engine: Engine) -> datetime | None:
    (row,) = rows_of(engine, HouseholdRow, HouseholdRow.id == HOUSEHOLD)
    found: datetime | None = row["paused_until"]
    return found


def test_a_pause_in_force_is_made_longer_rather_than_started_again(
    engine: Engine, completions: Completions
) -> None:
    assert pause(engine, at(9), timedelta(days=14)) == at(9, day=14)
    assert (paused_until(engine), pauses(engine)) == (at(9, day=14), [(at(9), at(9, day=14))])

    assert pause(engine, at(10), timedelta(days=21)) == at(10, day=21)

    assert pauses(engine) == [(at(9), at(10, day=21))]
    assert paused_until(engine) == at(10, day=21)
    assert completions.paused_until(HOUSEHOLD) == at(10, day=21)


def test_a_shorter_pause_gives_the_skips_it_no_longer_covers_a_freeze(
    engine: Engine, completions: Completions
) -> None:
    pause(engine, at(9), timedelta(days=14))
    assert skip(completions, "alex", 3).paused  # Wednesday's, inside the pause: no freeze

    # Cut short to end on Tuesday 10:00: Wednesday's skip is no longer covered.
    assert pause(engine, at(10), timedelta(days=1)) == at(10, day=1)

    assert pauses(engine) == [(at(9), at(10, day=1))]
    assert paused_until(engine) == at(10, day=1)
    assert done(engine) == [(3, "alex", "skip", True)]
    assert completions.freezes_used(HOUSEHOLD, "check-in", "", MONDAY) == 1


def test_resume_ends_the_pause_now_and_a_later_pause_is_a_new_one(
    engine: Engine, completions: Completions
) -> None:
    pause(engine, at(9), timedelta(days=14))
    assert skip(completions, "alex", 2).paused

    assert resume(engine, at(11))

    assert (paused_until(engine), pauses(engine)) == (None, [(at(9), at(11))])
    assert done(engine) == [(2, "alex", "skip", True)]  # Tuesday's is no longer covered
    assert not resume(engine, at(11, 30))  # not paused
    assert pause(engine, at(12), timedelta(days=7)) == at(12, day=7)
    assert pauses(engine) == [(at(9), at(11)), (at(12), at(12, day=7))]


def test_a_pause_that_ran_out_is_not_resumed_and_a_new_one_starts_afresh(
    engine: Engine, completions: Completions
) -> None:
    pause(engine, at(9), timedelta(days=1))

    assert not resume(engine, at(9, day=1))  # it ended exactly now
    pause(engine, at(10, day=1), timedelta(days=2))

    assert pauses(engine) == [(at(9), at(9, day=1)), (at(10, day=1), at(10, day=3))]
    assert paused_until(engine) == at(10, day=3)
