"""Occurrences and the messages about them, as a partner's reply needs them: which
occurrences a message reached the partner about lately, who has done or skipped each, and
the snoozed copies of a message (a SNOOZE makes the nudge come again)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update

from scheduler.ledger.base import Bound
from scheduler.ledger.rows import (
    REACHED,
    SNOOZE_ROLE,
    CompletionRow,
    DeliveryRow,
    OccurrenceRow,
    OccurrenceStatus,
)

__all__ = ["Found", "Occurrences", "Snooze", "Told"]


@dataclass(frozen=True, slots=True)
class Told:
    """The latest message that reached a partner about one occurrence."""

    occurrence: int
    ritual: str
    recipient: str
    slot: datetime
    at: datetime
    status: OccurrenceStatus
    sent_at: datetime
    due_at: datetime
    body: str
    channel: str
    subject: str | None


@dataclass(frozen=True, slots=True)
class Found:
    """An occurrence, by id."""

    ritual: str
    recipient: str
    at: datetime
    status: OccurrenceStatus


@dataclass(frozen=True, slots=True)
class Snooze:
    """A snoozed copy of a message (role ``snooze-N``)."""

    id: int
    role: str
    status: str


# Built once: every reply reads these.
_TOLD = (
    select(
        DeliveryRow.occurrence_id,
        DeliveryRow.sent_at,
        DeliveryRow.due_at,
        DeliveryRow.body,
        DeliveryRow.channel,
        DeliveryRow.subject,
        OccurrenceRow.ritual_id,
        OccurrenceRow.recipient,
        OccurrenceRow.slot,
        OccurrenceRow.at,
        OccurrenceRow.status,
    )
    # Inner: a TELL the partner received is about no occurrence, so nothing to reply to.
    .join(OccurrenceRow, OccurrenceRow.id == DeliveryRow.occurrence_id)
    .where(
        DeliveryRow.household_id == bindparam("household"),
        DeliveryRow.partner_key == bindparam("partner"),
        DeliveryRow.sent_at >= bindparam("since"),
        DeliveryRow.status.in_(REACHED),
    )
    .order_by(DeliveryRow.sent_at.desc(), DeliveryRow.id.desc())
    .limit(500)
)
_DONE_BY = select(
    CompletionRow.occurrence_id, CompletionRow.partner_key, CompletionRow.action
).where(CompletionRow.occurrence_id.in_(bindparam("occurrences", expanding=True)))
_FIND = select(
    OccurrenceRow.ritual_id, OccurrenceRow.recipient, OccurrenceRow.at, OccurrenceRow.status
).where(OccurrenceRow.id == bindparam("occurrence"))
_SNOOZES = select(DeliveryRow.id, DeliveryRow.role, DeliveryRow.status).where(
    DeliveryRow.occurrence_id == bindparam("occurrence"),
    DeliveryRow.partner_key == bindparam("partner"),
    DeliveryRow.role.like(f"{SNOOZE_ROLE}%"),
)


class Occurrences(Bound):
    """Occurrences, and the messages about them, for replies and links."""

    __slots__ = ()

    def find(self, occurrence: int) -> Found | None:
        with self._reading() as connection:
            row = connection.execute(_FIND, {"occurrence": occurrence}).first()
        return None if row is None else Found(row.ritual_id, row.recipient, row.at, row.status)

    def told(self, household: str, partner: str, since: datetime) -> list[Told]:
        """Messages that reached the partner since `since`, the latest first (at most 500)."""
        with self._reading() as connection:
            rows = connection.execute(
                _TOLD, {"household": household, "partner": partner, "since": since}
            ).all()
        return [
            Told(
                occurrence=row.occurrence_id,
                ritual=row.ritual_id,
                recipient=row.recipient,
                slot=row.slot,
                at=row.at,
                status=row.status,
                sent_at=row.sent_at,
                due_at=row.due_at,
                body=row.body,
                channel=row.channel,
                subject=row.subject,
            )
            for row in rows
        ]

    def done_by(
        self, occurrences: Sequence[int]
    ) -> tuple[dict[int, set[str]], dict[int, set[str]]]:
        """Who confirmed, and who skipped, each of `occurrences`."""
        confirmed: dict[int, set[str]] = defaultdict(set)
        skipped: dict[int, set[str]] = defaultdict(set)
        with self._reading() as connection:
            for done in connection.execute(_DONE_BY, {"occurrences": list(occurrences)}):
                (confirmed if done.action == "confirm" else skipped)[done.occurrence_id].add(
                    done.partner_key
                )
        return confirmed, skipped

    def snoozes(self, occurrence: int, partner: str) -> list[Snooze]:
        with self._reading() as connection:
            rows = connection.execute(_SNOOZES, {"occurrence": occurrence, "partner": partner})
            return [Snooze(r.id, r.role, r.status) for r in rows]

    def move_snooze(self, delivery: int, values: dict[str, Any]) -> None:
        """A snoozed copy still waiting comes at another time."""
        with self._writing() as connection:
            connection.execute(update(DeliveryRow).where(DeliveryRow.id == delivery).values(values))

    def add_snooze(
        self,
        *,
        occurrence: int,
        channel: str,
        body: str,
        subject: str | None,
        household: str,
        partner: str,
        number: int,
        now: datetime,
        values: dict[str, Any],
    ) -> None:
        """A message about `occurrence` comes again, as ``snooze-<number>``."""
        with self._writing() as connection:
            connection.execute(
                insert(DeliveryRow).values(
                    occurrence_id=occurrence,
                    household_id=household,
                    partner_key=partner,
                    role=f"{SNOOZE_ROLE}-{number}",
                    channel=channel,
                    status="pending",
                    attempts=0,
                    body=body,
                    subject=subject,
                    generation=0,
                    created_at=now,
                    **values,
                )
            )
