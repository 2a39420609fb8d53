"""What the ritual file makes for some households over the horizon, as rows not yet
written: pure, computed before the planner's transaction (on SQLite it holds the lock)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from rituals.planning import Occurrence, Plan
from scheduler.ledger.plans import MAIN_ROLES, OccurrenceKey

__all__ = ["Candidate", "candidates"]


@dataclass
class Candidate:
    """An occurrence the file makes, and its deliveries, as rows."""

    key: OccurrenceKey
    row: dict[str, Any]
    deliveries: list[dict[str, Any]]
    main_in_time: bool  # the day-of message or nudge can still be sent in its grace


def candidates(
    plan: Plan, household_ids: Sequence[str], now: datetime, generation: int, days: int
) -> list[Candidate]:
    """What the file makes for these households over the next `days` local days."""
    found = []
    for household_id in household_ids:
        zone = plan.zone_of(household_id)
        for ritual in plan.rituals_for(household_id):
            # Back far enough to see again every occurrence with a delivery still pending:
            # its follow-up (after `remind_after`, maybe moved a day by quiet hours) can be
            # due until its grace runs out.
            back = ritual.grace + (ritual.remind_after or timedelta()) + timedelta(days=1)
            first = (now - back).astimezone(zone).date() - timedelta(days=1)
            ahead = ritual.plan_ahead.days + 1 if ritual.plan_ahead else 0
            # One day more than asked: an hourly plan must reach past the next midnight.
            after = now.astimezone(zone).date() + timedelta(days=days + 1 + ahead)
            for occurrence in plan.occurrences(household_id, ritual, first, after):
                rows = []
                main_in_time = False
                # Those past their grace were never planned in time to be sent: not planned.
                for delivery in plan.deliveries(occurrence, expired_before=now):
                    main_in_time |= delivery.role in MAIN_ROLES
                    rows.append(
                        {
                            "household_id": household_id,
                            "partner_key": delivery.partner,
                            "role": delivery.role,
                            "channel": delivery.channel,
                            "status": "pending",
                            "due_at": delivery.due_at,
                            "next_attempt_at": delivery.due_at,
                            "expires_at": delivery.due_at + ritual.grace,
                            "attempts": 0,
                            "body": delivery.text,
                            "fallback_bodies": dict(delivery.fallback_texts) or None,
                            "pulse": {
                                "conversation": dict(delivery.conversation_texts),
                                "support": delivery.support,
                            }
                            if delivery.conversation_texts
                            else None,
                            "subject": f"Tend: {ritual.display_name}",
                            "generation": generation,
                            "created_at": now,
                            "updated_at": now,
                        }
                    )
                found.append(_candidate(occurrence, rows, main_in_time, now, generation))
    return found


def _candidate(
    occurrence: Occurrence,
    rows: list[dict[str, Any]],
    main_in_time: bool,
    now: datetime,
    generation: int,
) -> Candidate:
    recipient = occurrence.recipient or ""
    return Candidate(
        key=(occurrence.household, occurrence.ritual, occurrence.slot, recipient),
        row={
            "household_id": occurrence.household,
            "ritual_id": occurrence.ritual,
            "slot": occurrence.slot,
            "recipient": recipient,
            "kind": occurrence.kind,
            "at": occurrence.at,
            "status": "open",
            "item": occurrence.item,
            "deck": occurrence.deck,
            "planners": ",".join(occurrence.planners),
            "generation": generation,
            "created_at": now,
            "updated_at": now,
        },
        deliveries=rows,
        main_in_time=main_in_time,
    )
