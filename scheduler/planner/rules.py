"""The planner's change rules: given what the file makes (candidates) and what the ledger
already has (a snapshot), which rows a plan writes. Pure, and tested from tables in
``tests/scheduler/test_planner_rules.py`` (and end to end in ``test_change_rules.py``).

1. Nothing new is made in the past once the ledger has planned before (and nothing
   cancelled in the past is revived): a ritual added at 19:30 starts with its next slot, a
   partner added at noon does not get the morning's messages late, and a change undone does
   not send again what went out meanwhile. The first plan of a new ledger does make what is
   still inside its grace (DESIGN.md: late by at most grace is sent), provided the
   occurrence's own message is among it.
2. A day whose occurrence the couple skipped or confirmed is settled: a ritual moved to
   another time that day makes no new occurrence (a skip would come back and break the
   streak; a DONE would be asked for again).
3. A ritual moved on a day whose message already reached a partner is not sent to them
   again that day (to whom it did not reach yet, it still goes).
4. Unless the file changed, a row that exists and is not cancelled is left as it is: not
   written at all (the hourly re-plan then writes only what is new). A cancelled one may be
   revived, so it is written.
5. A message sent already (by the channel the partner preferred then) is not made again on
   another channel; an overdue one is not made, unless it moves an unsent one to another
   channel.
6. A change whose new slot for a day is already past keeps the day's old slot, rather than
   losing the day (see :func:`kept_days`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from scheduler.ledger.plans import MAIN_ROLES, OccurrenceKey, Snapshot
from scheduler.planner.candidates import Candidate

__all__ = ["Chosen", "choose", "delivery_rows", "kept_days", "occurrence_rows"]

Day = tuple[str, str, date, str]  # household, ritual, local day, recipient


@dataclass(frozen=True)
class Chosen:
    """What a chunk writes: the occurrences chosen, and the days whose new slot is lost."""

    candidates: list[Candidate]
    lost_days: set[Day]


def choose(
    candidates: Sequence[Candidate], before: Snapshot, now: datetime, *, first_plan: bool
) -> Chosen:
    """The candidates to write (rules 1 to 3), each with the deliveries it keeps."""
    existing = before.occurrences
    settled_days = {
        (household, ritual, slot.date(), recipient)
        for (household, ritual, slot, recipient), (_, status) in existing.items()
        if status in ("skipped", "confirmed")
    }
    chosen: list[Candidate] = []
    lost_days: set[Day] = set()
    for candidate in candidates:
        status = existing.get(candidate.key, (0, None))[1]
        if status is not None and status != "cancelled":
            chosen.append(candidate)
            continue
        household, ritual, slot, recipient = candidate.key
        if (household, ritual, slot.date(), recipient) in settled_days:
            continue  # that day's occurrence was skipped or done at its old time
        if candidate.row["at"] < now and not (first_plan and candidate.main_in_time):
            lost_days.add((household, ritual, slot.date(), recipient))
            continue
        keep = [
            d
            for d in candidate.deliveries
            if (household, ritual, slot.date(), d["partner_key"]) not in before.reached
        ]
        if any(d["role"] in MAIN_ROLES for d in keep) or not any(
            d["role"] in MAIN_ROLES for d in candidate.deliveries
        ):
            chosen.append(replace(candidate, deliveries=keep))
    return Chosen(chosen, lost_days)


def occurrence_rows(
    chosen: Sequence[Candidate], before: Snapshot, *, changed: bool
) -> tuple[list[dict[str, Any]], int]:
    """The occurrence rows to upsert (rule 4), and how many occurrences that writes
    (inserted, revived, or after a change brought up to date)."""
    existing = before.occurrences
    upserted = [
        c.row for c in chosen if changed or existing.get(c.key, (0, "cancelled"))[1] == "cancelled"
    ]
    written = sum(
        1 for c in chosen if c.key not in existing or existing[c.key][1] == "cancelled" or changed
    )
    return upserted, written


def delivery_rows(
    chosen: Sequence[Candidate],
    ids: dict[OccurrenceKey, tuple[int, str]],
    before: Snapshot,
    now: datetime,
    *,
    first_plan: bool,
    changed: bool,
) -> tuple[list[dict[str, Any]], int]:
    """The delivery rows to upsert (rules 4 and 5; `ids`: each occurrence's id), and how
    many of them are new work to announce (inserted, revived, or brought up to date)."""
    rows = []
    for candidate in chosen:
        occurrence_id = ids[candidate.key][0]
        for made in candidate.deliveries:
            message = (occurrence_id, made["partner_key"], made["role"])
            status = before.deliveries.get((*message, made["channel"]))
            if status is None or status == "cancelled":  # a new row, or one to revive
                if message in before.settled:
                    continue  # sent already (by the channel the partner preferred then)
                if made["due_at"] < now and not first_plan and message not in before.unsent:
                    continue  # overdue; unless it moves an unsent one to another channel
            elif not changed:
                continue  # the upsert would leave it as it is (rule 4)
            rows.append({**made, "occurrence_id": occurrence_id})
    announced = 0
    for row in rows:
        key = (row["occurrence_id"], row["partner_key"], row["role"], row["channel"])
        status = before.deliveries.get(key)
        if status is None or status == "cancelled" or (changed and status == "pending"):
            announced += 1
    return rows, announced


def kept_days(before: Snapshot, candidates: Sequence[Candidate], lost_days: set[Day]) -> list[int]:
    """Rule 6: a change whose new slot for a day is already past (a random draw moved by new
    quiet hours, a ritual moved earlier than now) keeps the day's old slot rather than
    losing the day. The ids of those old, still open occurrences; the ledger keeps those
    still to come or with a message still inside its grace."""
    made = {c.key for c in candidates}
    return [
        occurrence_id
        for (household, ritual, slot, recipient), (occurrence_id, status) in (
            before.occurrences.items()
        )
        if status == "open"
        and (household, ritual, slot.date(), recipient) in lost_days
        and (household, ritual, slot, recipient) not in made
    ]
