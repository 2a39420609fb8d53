"""Recording that a partner did a ritual: the ledger side of a confirm link (and, with the
replies issue, of a DONE text)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import Connection, and_, func, insert, select, update

from scheduler.models import Completion, Occurrence, Partner

__all__ = ["Confirmed", "confirm"]

Outcome = Literal["confirmed", "already", "unknown", "cancelled"]


@dataclass(frozen=True, slots=True)
class Confirmed:
    outcome: Outcome
    ritual: str | None = None
    slot: datetime | None = None  # the occurrence's local wall-clock time (naive)


def confirm(
    connection: Connection,
    *,
    household: str,
    occurrence: int,
    partner: str,
    at: datetime,
    source: str,
    raw_text: str | None = None,
) -> Confirmed:
    """Record that `partner` of `household` did `occurrence`, once.

    ``unknown``: no such occurrence in that household, or no such partner; ``cancelled``:
    the ritual was called off, nothing recorded; ``already``: this partner had confirmed it.
    The occurrence is locked first (PostgreSQL), so two clicks at once record one row.
    """
    found = connection.execute(
        select(Occurrence.ritual_id, Occurrence.slot, Occurrence.status)
        .where(Occurrence.id == occurrence, Occurrence.household_id == household)
        .with_for_update()
    ).one_or_none()
    known_partner = connection.execute(
        select(func.count())
        .select_from(Partner)
        .where(Partner.household_id == household, Partner.key == partner)
    ).scalar_one()
    if found is None or not known_partner:
        return Confirmed("unknown")
    ritual, slot, status = found
    if status == "cancelled":
        return Confirmed("cancelled", ritual, slot)
    done_before = connection.execute(
        select(func.count())
        .select_from(Completion)
        .where(
            and_(
                Completion.occurrence_id == occurrence,
                Completion.partner_key == partner,
                Completion.action == "confirm",
            )
        )
    ).scalar_one()
    if done_before:
        return Confirmed("already", ritual, slot)
    connection.execute(
        insert(Completion).values(
            occurrence_id=occurrence,
            partner_key=partner,
            action="confirm",
            at=at,
            source=source,
            raw_text=raw_text,
        )
    )
    connection.execute(
        update(Occurrence)
        .where(Occurrence.id == occurrence, Occurrence.status != "confirmed")
        .values(status="confirmed", updated_at=at)
    )
    return Confirmed("confirmed", ritual, slot)
