"""The ledger's side of streaks (:mod:`scheduler.ledger.streaks`, and the checkpoints
:func:`scheduler.reports.streaks.household_streaks` keeps there), on both databases: which
occurrences a streak reads, and checkpoints saved, read back instead of the history they
folded, moved on once a week, and forgotten when a settled occurrence changes.

The maths is tests/rituals/test_streaks.py's; replies that read streaks are
tests/scheduler/test_replies.py's (a late confirm link throws a checkpoint away there).
Alex and Sam are the June couple (New York); their weekly check-in is written directly:
each Sunday at 19:30 told to Alex and confirmed by Sam unless missed or skipped.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from june_couple import COUPLE, HOUSEHOLD, NEW_YORK, RITUALS, ny, rows_of, weekly_history
from ritual_files import ritual_file
from sqlalchemy import Engine, delete, insert, update

from config.model import RitualFile
from rituals.streaks import Entry
from scheduler.ledger import Ledger
from scheduler.ledger.rows import CompletionRow, DeliveryRow, OccurrenceRow, StreakCheckpointRow
from scheduler.ledger.streaks import Checkpoint
from scheduler.planner import sync_file
from scheduler.reports.streaks import SeriesStreak, household_streaks

NOW = ny(6, 1, 8)  # Monday 1 June 2026, 08:00 in New York
TEXT = COUPLE + RITUALS.format(streak="either", appreciation_window="3d", freezes=1)
CHECK_IN = ("check-in", "")


@pytest.fixture
def file(engine: Engine) -> RitualFile:
    """The couple's file, synced: the ledger knows the household and its zone."""
    found = ritual_file(TEXT, NOW)
    sync_file(Ledger(engine), found, NOW)
    return found


def local(slot: datetime) -> datetime:
    return slot.replace(tzinfo=NEW_YORK).astimezone(UTC)


def add_occurrence(engine: Engine, slot: datetime, status: str) -> int:
    at = local(slot)
    with engine.begin() as connection:
        found: int = connection.execute(
            insert(OccurrenceRow)
            .values(
                household_id=HOUSEHOLD,
                ritual_id="check-in",
                slot=slot,
                recipient="",
                kind="check_in",
                at=at,
                status=status,
                created_at=at,
                updated_at=at,
            )
            .returning(OccurrenceRow.id)
        ).scalar_one()
    return found


def add_delivery(
    engine: Engine, occurrence: int, role: str, status: str, sent_at: datetime
) -> None:
    with engine.begin() as connection:
        connection.execute(
            insert(DeliveryRow).values(
                occurrence_id=occurrence,
                household_id=HOUSEHOLD,
                partner_key="alex",
                role=role,
                channel="sms",
                status=status,
                due_at=sent_at,
                next_attempt_at=sent_at,
                expires_at=sent_at + timedelta(hours=2),
                sent_at=sent_at,
                attempts=1,
                body="Check-in time.",
                created_at=sent_at,
                updated_at=sent_at,
            )
        )


def add_completion(engine: Engine, occurrence: int, partner: str, action: str) -> None:
    """A completion written behind the ledger's back: no checkpoint is forgotten."""
    with engine.begin() as connection:
        connection.execute(
            insert(CompletionRow).values(
                occurrence_id=occurrence, partner_key=partner, action=action, at=NOW, source="sms"
            )
        )


def summary(found: list[tuple[int, Entry]]) -> list[tuple[Any, ...]]:
    """(id, local day, who confirmed, skipped, froze, when the message reached them)."""
    return [
        (
            i,
            f"{e.slot:%m-%d}",
            "".join(sorted(p[0] for p in e.confirmed_by)),
            e.skipped,
            e.froze,
            e.reached_at,
        )
        for i, e in found
    ]


# ----------------------------------------------------------------------------- what a streak reads


def test_entries_are_the_due_occurrences_by_time_with_who_confirmed_and_when_told(
    engine: Engine, file: RitualFile
) -> None:
    # Sundays 3, 10, 17 and 24 May: confirmed, missed (told, no reply), skipped, confirmed.
    may = weekly_history(engine, datetime(2026, 5, 3, 19, 30), 4, missed={1}, skipped={2})
    add_completion(engine, may[0], "alex", "confirm")  # both did it: one entry still
    # A reminder reached Alex later on the 24th; a failed one after it did not.
    add_delivery(engine, may[3], "reminder", "sent", local(datetime(2026, 5, 24, 21, 30)))
    add_delivery(engine, may[3], "snooze-1", "failed", local(datetime(2026, 5, 24, 23, 0)))
    called_off = add_occurrence(engine, datetime(2026, 5, 31, 19, 30), "cancelled")
    ahead = add_occurrence(engine, datetime(2026, 6, 7, 19, 30), "open")
    skipped_ahead = add_occurrence(engine, datetime(2026, 6, 14, 19, 30), "skipped")
    streaks = Ledger(engine).streaks

    found = streaks.entries(HOUSEHOLD, local(datetime(2026, 5, 3, 19, 30)), NOW, include=[])

    assert list(found) == [CHECK_IN]
    told = [local(datetime(2026, 5, day, 19, 30)) for day in (3, 10, 17)]
    assert summary(found[CHECK_IN]) == [
        (may[0], "05-03", "as", False, False, told[0]),
        (may[1], "05-10", "", False, False, told[1]),
        (may[2], "05-17", "", True, True, told[2]),
        (may[3], "05-24", "s", False, False, local(datetime(2026, 5, 24, 21, 30))),
        (skipped_ahead, "06-14", "", False, False, None),  # skipped ahead: its freeze is now
    ]
    assert called_off not in [i for i, _ in found[CHECK_IN]]
    with_ahead = streaks.entries(HOUSEHOLD, told[1], NOW, include=[ahead])
    assert [i for i, _ in with_ahead[CHECK_IN]] == [may[1], may[2], may[3], ahead, skipped_ahead]


def test_entries_of_a_household_the_ledger_does_not_know_are_none(
    engine: Engine, file: RitualFile
) -> None:
    weekly_history(engine, datetime(2026, 5, 3, 19, 30), 2, missed=set(), skipped=set())
    streaks = Ledger(engine).streaks
    assert streaks.entries("kim-lee", NOW - timedelta(days=90), NOW, include=[]) == {}
    assert streaks.zone("kim-lee") is None
    assert streaks.zone(HOUSEHOLD) == "America/New_York"


# ----------------------------------------------------------------------------- checkpoints


def test_a_checkpoint_is_saved_once_per_streak_and_forgotten_only_by_a_change_before_it(
    engine: Engine, file: RitualFile
) -> None:
    streaks = Ledger(engine).streaks
    through = ny(5, 21, 0)
    assert streaks.checkpoints(HOUSEHOLD) == []

    streaks.save_checkpoint(
        HOUSEHOLD, "check-in", "", "rules-1", through=through, state='{"a": 1}', now=NOW
    )
    streaks.save_checkpoint(
        HOUSEHOLD, "check-in", "", "rules-2", through=through, state='{"a": 2}', now=NOW
    )
    streaks.save_checkpoint(
        HOUSEHOLD, "appreciation", "sam", "rules-3", through=through, state="{}", now=NOW
    )

    assert sorted(streaks.checkpoints(HOUSEHOLD), key=lambda c: c.ritual) == [
        Checkpoint("appreciation", "sam", "rules-3", "{}"),
        Checkpoint("check-in", "", "rules-2", '{"a": 2}'),
    ]
    # A change at or after `through` is not part of what was folded: the checkpoint stays.
    streaks.forget_settled(HOUSEHOLD, "check-in", "", through)
    streaks.forget_settled(HOUSEHOLD, "check-in", "", through + timedelta(days=1))
    streaks.forget_settled(HOUSEHOLD, "appreciation", "alex", through - timedelta(days=1))
    streaks.forget_settled("kim-lee", "check-in", "", through - timedelta(days=1))
    assert len(streaks.checkpoints(HOUSEHOLD)) == 2

    streaks.forget_settled(HOUSEHOLD, "check-in", "", through - timedelta(seconds=1))

    assert streaks.checkpoints(HOUSEHOLD) == [Checkpoint("appreciation", "sam", "rules-3", "{}")]


# ----------------------------------------------------------------------------- household_streaks


def check_in(engine: Engine, file: RitualFile, now: datetime, **options: Any) -> SeriesStreak:
    with Ledger(engine).transaction() as tx:
        found = household_streaks(tx, file, HOUSEHOLD, now, **options)
    return next(s for s in found if s.ritual.id == "check-in")


def saved(engine: Engine) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["ritual_id"], r["recipient"]): r for r in rows_of(engine, StreakCheckpointRow)}


def fresh(engine: Engine, file: RitualFile, now: datetime = NOW) -> SeriesStreak:
    """The check-in's streak folded from all its history, no checkpoint read or written."""
    with engine.begin() as connection:
        connection.execute(delete(StreakCheckpointRow))
    return check_in(engine, file, now, save=False)


@pytest.fixture
def weeks(engine: Engine, file: RitualFile) -> list[int]:
    """21 Sundays, 4 January to 24 May 2026: the 15 March one missed, the 19 April one
    skipped with the month's freeze. Runs kept: 10 weeks, then 9."""
    return weekly_history(engine, datetime(2026, 1, 4, 19, 30), 21, missed={10}, skipped={15})


def test_streaks_save_a_checkpoint_per_streak_only_when_asked(
    engine: Engine, file: RitualFile, weeks: list[int]
) -> None:
    unsaved = check_in(engine, file, NOW, save=False)
    assert saved(engine) == {}

    first = check_in(engine, file, NOW)

    assert (first.streak.current, first.streak.longest, first.streak.kept) == (9, 10, 19)
    assert first.streak == unsaved.streak
    assert set(saved(engine)) == {
        ("check-in", ""),
        ("date-night", ""),
        ("appreciation", "alex"),
        ("appreciation", "sam"),
    }
    checkpoint = saved(engine)[CHECK_IN]
    # Folded through the local midnight before anything could still change.
    assert checkpoint["through"] == ny(5, 21, 0)
    assert checkpoint["updated_at"] == NOW


def test_a_saved_checkpoint_is_read_back_instead_of_the_history_it_folded(
    engine: Engine, file: RitualFile, weeks: list[int]
) -> None:
    first = check_in(engine, file, NOW)
    before = saved(engine)[CHECK_IN]
    # Behind the ledger's back, 15 March is confirmed after all: the checkpoint is not told.
    add_completion(engine, weeks[10], "sam", "confirm")

    again = check_in(engine, file, NOW + timedelta(hours=1))

    assert again.streak.longest == first.streak.longest == 10  # from the checkpoint
    assert saved(engine)[CHECK_IN] == before  # not moved on: less than a week has settled
    assert fresh(engine, file).streak.longest == 20  # what the whole history says now


def test_a_checkpoint_moves_on_once_a_week_more_of_history_has_settled(
    engine: Engine, file: RitualFile, weeks: list[int]
) -> None:
    check_in(engine, file, NOW)
    six_days = NOW + timedelta(days=6)
    check_in(engine, file, six_days)
    assert saved(engine)[CHECK_IN]["through"] == ny(5, 21, 0)

    a_week = NOW + timedelta(days=7)
    later = check_in(engine, file, a_week)

    checkpoint = saved(engine)[CHECK_IN]
    assert (checkpoint["through"], checkpoint["updated_at"]) == (ny(5, 28, 0), a_week)
    assert later.streak == fresh(engine, file, a_week).streak


def test_a_late_skip_of_a_settled_occurrence_forgets_its_checkpoint_and_the_streak_refolds(
    engine: Engine, file: RitualFile, weeks: list[int]
) -> None:
    check_in(engine, file, NOW)
    # 15 March, missed and long settled, is skipped late (March's freeze is still unused).
    skipped = Ledger(engine).completions.skip(
        household=HOUSEHOLD,
        occurrence=weeks[10],
        partner="sam",
        at=NOW,
        source="sms",
        freezes_per_month=1,
    )
    assert (skipped.outcome, skipped.froze) == ("skipped", True)
    assert CHECK_IN not in saved(engine)
    assert ("appreciation", "alex") in saved(engine)  # other streaks keep theirs

    after = check_in(engine, file, NOW)

    assert (after.streak.current, after.streak.longest, after.streak.kept) == (19, 19, 19)
    assert CHECK_IN in saved(engine)
    assert after.streak == fresh(engine, file).streak


def test_a_late_skip_of_an_occurrence_after_the_checkpoint_keeps_it(
    engine: Engine, file: RitualFile, weeks: list[int]
) -> None:
    check_in(engine, file, NOW)
    before = saved(engine)[CHECK_IN]
    with engine.begin() as connection:  # 24 May: not settled yet, so open for a skip
        connection.execute(
            update(OccurrenceRow).where(OccurrenceRow.id == weeks[20]).values(status="open")
        )
        connection.execute(delete(CompletionRow).where(CompletionRow.occurrence_id == weeks[20]))

    Ledger(engine).completions.skip(
        household=HOUSEHOLD, occurrence=weeks[20], partner="sam", at=NOW, source="sms"
    )

    assert saved(engine)[CHECK_IN] == before
