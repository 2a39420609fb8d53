"""Alex and Sam in New York, June 2026 (summer time: UTC-4): the reply tests' couple, its
rituals, its wall-clock instants, and the ledger helpers its tests read and reply with.

Histories come from the ritual file through the planner (`plan`); the messages due before a
moment are marked sent (`send_due`), and each reply is applied at a chosen `now`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from ritual_files import couple_file, household_table, partner_table, ritual_file
from sqlalchemy import Engine, insert, select, update

from config.model import RitualFile
from rituals.planning import Plan
from scheduler.acts.replies import Answer, handle_reply
from scheduler.ledger import Ledger, Records
from scheduler.ledger.rows import (
    CompletionRow,
    DeliveryRow,
    OccurrenceRow,
    StreakCheckpointRow,
    is_follow_up,
)
from scheduler.planner import plan_horizon, sync_file
from scheduler.reports.streaks import SeriesStreak, household_streaks

NEW_YORK = ZoneInfo("America/New_York")
ALEX = "+15551230001"
SAM = "+15551230002"
HOUSEHOLD = "alex-sam"

COUPLE = couple_file(
    partner_table("alex", phone=True, channels=["sms"], quiet_hours="22:00-08:00"),
    partner_table("sam", phone=True, channels=["sms"]),
    timezone="America/New_York",
)

# Sundays: the check-in at 19:30 (a reminder at 21:30), each partner's appreciation at 20:00.
# Every other Friday at 19:00 a date night; its planner hears on the Tuesday before at 19:00
# (Sam plans Fri 5 Jun, Alex Fri 19 Jun).
RITUALS = """
[[rituals]]
id = "check-in"
kind = "check_in"
schedule = "weekly on sun at 19:30"
remind_after = "2h"
freezes_per_month = {freezes}

[[rituals]]
id = "date-night"
kind = "date_night"
schedule = "every 2 weeks on fri at 19:00"
streak = "{streak}"

[[rituals]]
id = "appreciation"
kind = "appreciation"
schedule = "weekly on sun at 20:00"
to = "each"
reply_window = "{appreciation_window}"
"""

# Alex, by the same number, in a second household one hour behind (Chicago).
SECOND_HOUSEHOLD = household_table(
    "alex-kim",
    partner_table("alex", phone=True, channels=["sms"]),
    partner_table("kim", phone=True, channels=["sms"]),
    timezone="America/Chicago",
)


def rituals(
    *, streak: str = "either", appreciation_window: str = "3d", freezes: int = 1, extra: str = ""
) -> str:
    return (
        COUPLE
        + extra
        + RITUALS.format(streak=streak, appreciation_window=appreciation_window, freezes=freezes)
    )


def ny(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    """A New York wall-clock time in 2026, as the aware UTC instant the ledger stores."""
    return datetime(2026, month, day, hour, minute, tzinfo=NEW_YORK).astimezone(UTC)


START = ny(6, 1, 8)  # Monday 1 June 2026, 08:00 in New York


def plan(engine: Engine, text: str, now: datetime = START, *, days: int = 21) -> RitualFile:
    """Sync the file and plan its next `days`, as the service does at `now`."""
    file = ritual_file(text, now)
    synced = sync_file(Ledger(engine), file, now)
    plan_horizon(
        Ledger(engine),
        Plan(file),
        now,
        generation=synced.generation,
        changed=synced.changed,
        days=days,
    )
    return file


def send_due(engine: Engine, before: datetime) -> None:
    """What a dispatcher running until `before` would have done: every pending message due
    before it sent on time, except follow-ups about an occurrence no longer open."""
    with engine.begin() as connection:
        due = [
            (row.id, row.role, row.occurrence_status)
            for row in connection.execute(
                select(
                    DeliveryRow.id,
                    DeliveryRow.role,
                    OccurrenceRow.status.label("occurrence_status"),
                )
                .join(OccurrenceRow, OccurrenceRow.id == DeliveryRow.occurrence_id)
                .where(DeliveryRow.status == "pending", DeliveryRow.due_at < before)
            )
        ]
        chased = [i for i, role, status in due if is_follow_up(role) and status != "open"]
        sent = [i for i, *_ in due if i not in chased]
        if chased:
            connection.execute(
                update(DeliveryRow).where(DeliveryRow.id.in_(chased)).values(status="cancelled")
            )
        if sent:
            connection.execute(
                update(DeliveryRow)
                .where(DeliveryRow.id.in_(sent))
                .values(status="sent", sent_at=DeliveryRow.due_at)
            )


class Replies:
    """Texts from one number, each with its own provider id."""

    def __init__(self, engine: Engine, file: RitualFile) -> None:
        self.engine = engine
        self.file = file
        self.count = 0

    def __call__(self, sender: str, body: str, now: datetime, **options: Any) -> Answer:
        self.count += 1
        options.setdefault("provider_id", f"SM{self.count:032d}")
        return handle_reply(
            Ledger(self.engine), self.file, sender=sender, body=body, now=now, **options
        )


def occurrence(
    engine: Engine, ritual: str, day: int, *, month: int = 6, recipient: str = ""
) -> dict[str, Any]:
    """The household alex-sam's occurrence of `ritual` on local day `day`."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(*OccurrenceRow.__table__.c).where(
                OccurrenceRow.household_id == HOUSEHOLD,
                OccurrenceRow.ritual_id == ritual,
                OccurrenceRow.recipient == recipient,
            )
        ).mappings()
        found = [dict(r) for r in rows if (r["slot"].month, r["slot"].day) == (month, day)]
    assert len(found) == 1, f"{ritual} on {month}/{day}: {len(found)} occurrences"
    return found[0]


def completions(engine: Engine, occurrence_id: int | None = None) -> list[tuple[str, str]]:
    """(partner, action) of the completions, of one occurrence or all, in order."""
    query = select(CompletionRow.partner_key, CompletionRow.action).order_by(CompletionRow.id)
    if occurrence_id is not None:
        query = query.where(CompletionRow.occurrence_id == occurrence_id)
    with engine.connect() as connection:
        return [(r.partner_key, r.action) for r in connection.execute(query)]


def rows_of(engine: Engine, table: Any, *where: Any) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        return [
            dict(r) for r in connection.execute(select(*table.__table__.c).where(*where)).mappings()
        ]


def snoozes(engine: Engine) -> list[dict[str, Any]]:
    return rows_of(engine, DeliveryRow, DeliveryRow.role.like("snooze%"))


def streak_of(
    engine: Engine,
    file: RitualFile,
    ritual: str,
    now: datetime,
    *,
    household: str = HOUSEHOLD,
    recipient: str | None = None,
) -> SeriesStreak:
    with engine.begin() as connection:
        found = household_streaks(Records(connection), file, household, now)
    return next(s for s in found if s.ritual.id == ritual and s.recipient == recipient)


def weekly_history(
    engine: Engine,
    first: datetime,
    weeks: int,
    *,
    missed: set[int],
    skipped: set[int],
) -> list[int]:
    """`weeks` weekly check-ins from local `first`, each told to Alex and confirmed by Sam,
    except the `missed` (told, never confirmed) and the `skipped`; their ids, in order."""
    with engine.begin() as connection:
        for week in range(weeks):
            slot = first + timedelta(weeks=week)
            at = slot.replace(tzinfo=NEW_YORK).astimezone(UTC)
            status = "skipped" if week in skipped else "open" if week in missed else "confirmed"
            connection.execute(
                insert(OccurrenceRow).values(
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
            )
        ids = list(
            connection.execute(
                select(OccurrenceRow.id)
                .where(
                    OccurrenceRow.household_id == HOUSEHOLD, OccurrenceRow.ritual_id == "check-in"
                )
                .order_by(OccurrenceRow.at)
            ).scalars()
        )
        occurrences = connection.execute(
            select(OccurrenceRow.id, OccurrenceRow.at).where(OccurrenceRow.id.in_(ids))
        ).all()
        connection.execute(
            insert(DeliveryRow),
            [
                {
                    "occurrence_id": o.id,
                    "household_id": HOUSEHOLD,
                    "partner_key": "alex",
                    "role": "day_of",
                    "channel": "sms",
                    "status": "sent",
                    "due_at": o.at,
                    "next_attempt_at": o.at,
                    "expires_at": o.at + timedelta(hours=2),
                    "sent_at": o.at,
                    "attempts": 1,
                    "body": "Check-in time.",
                    "created_at": o.at,
                    "updated_at": o.at,
                }
                for o in occurrences
            ],
        )
        done = [
            {
                "occurrence_id": ids[week],
                "partner_key": "sam",
                "action": "skip" if week in skipped else "confirm",
                "froze": week in skipped,  # decided when skipped: the month's one freeze
                "at": occurrences[0].at,
                "source": "sms",
            }
            for week in range(weeks)
            if week not in missed
        ]
        connection.execute(insert(CompletionRow), done)
    return ids


def checkpoint(engine: Engine) -> dict[str, Any] | None:
    found = rows_of(engine, StreakCheckpointRow, StreakCheckpointRow.ritual_id == "check-in")
    return found[0] if found else None
