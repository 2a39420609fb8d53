"""What the ledger tells about itself, read only: deliveries counted by status (``tend
status``, ``/metrics``), the next due ones, a household's occurrences for its calendar, and
its past occurrences with what became of them (the history heatmap)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, bindparam, exists, func, or_, select, type_coerce

from scheduler.ledger.base import Bound
from scheduler.ledger.rows import (
    REACHED,
    CompletionRow,
    DeliveryRow,
    HouseholdRow,
    OccurrenceRow,
    OccurrenceStatus,
    PartnerRow,
    UTCDateTime,
)

__all__ = ["TELL_LABEL", "CalendarEntry", "Due", "HistoryEntry", "People", "Reports"]

#: What `tend status` shows in the ritual's place for a TELL (about no ritual).
TELL_LABEL = "TELL"


@dataclass(frozen=True, slots=True)
class Due:
    """A delivery still to send."""

    next_attempt_at: datetime
    household_id: str
    ritual_id: str
    partner_key: str
    role: str
    channel: str
    status: str
    timezone: str  # the recipient's own zone (IANA), as the ledger has it


@dataclass(frozen=True, slots=True)
class People:
    """A household's zone and partners' names, as the ledger has them."""

    timezone: str
    names: dict[str, str]


@dataclass(frozen=True, slots=True)
class CalendarEntry:
    """An occurrence, as a calendar shows it."""

    ritual_id: str
    slot: datetime
    recipient: str
    kind: str
    at: datetime
    status: OccurrenceStatus
    item: str | None
    deck: str | None
    planners: str
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """A due occurrence and what became of it, as the history heatmap reads it."""

    ritual_id: str
    recipient: str  # "" for the household's; the partner's id for their own nudge
    slot: datetime  # naive, the household's wall clock
    at: datetime  # aware UTC
    item: str | None
    reached_at: datetime | None  # the last message about it that reached a partner
    waiting: bool  # a message about it is still to send (pending, or being sent)
    confirmed_by: frozenset[str]
    skipped_by: str | None  # the partner who skipped it, if anyone did
    froze: bool  # the skip used a freeze


def _history_statement() -> Select[Any]:
    """A household's due occurrences since an instant, with their completions (one row per
    completion, or one without): one indexed read for the whole heatmap."""
    reached = type_coerce(
        select(func.max(DeliveryRow.sent_at))
        .where(DeliveryRow.occurrence_id == OccurrenceRow.id, DeliveryRow.status.in_(REACHED))
        .scalar_subquery(),
        UTCDateTime(),
    )
    waiting = exists().where(
        DeliveryRow.occurrence_id == OccurrenceRow.id,
        DeliveryRow.status.in_(("pending", "sending")),
    )
    return (
        select(
            OccurrenceRow.id,
            OccurrenceRow.ritual_id,
            OccurrenceRow.recipient,
            OccurrenceRow.slot,
            OccurrenceRow.at,
            OccurrenceRow.item,
            reached.label("reached_at"),
            waiting.label("waiting"),
            CompletionRow.partner_key,
            CompletionRow.action,
            CompletionRow.froze,
        )
        .outerjoin(CompletionRow, CompletionRow.occurrence_id == OccurrenceRow.id)
        .where(
            OccurrenceRow.household_id == bindparam("household"),
            OccurrenceRow.at >= bindparam("since"),
            # Due, or skipped ahead (its freeze is taken at the skip), as streaks read them.
            or_(OccurrenceRow.at <= bindparam("now"), OccurrenceRow.status == "skipped"),
            OccurrenceRow.status != "cancelled",
        )
        .order_by(OccurrenceRow.at, OccurrenceRow.id)
    )


_HISTORY = _history_statement()


def _history_entry(
    fields: list[Any], confirmed: set[str], skipped_by: str | None, froze: bool
) -> HistoryEntry:
    ritual, recipient, slot, at, item, reached_at, waiting = fields
    return HistoryEntry(
        ritual_id=ritual,
        recipient=recipient,
        slot=slot,
        at=at,
        item=item,
        reached_at=reached_at,
        waiting=bool(waiting),
        confirmed_by=frozenset(confirmed),
        skipped_by=skipped_by,
        froze=froze,
    )


class Reports(Bound):
    """Read-only views of the ledger."""

    __slots__ = ()

    def counts(self, household: str | None = None) -> dict[str, int]:
        """Deliveries by status (of one household, or of all)."""
        query = select(DeliveryRow.status, func.count()).group_by(DeliveryRow.status)
        if household is not None:
            query = query.where(DeliveryRow.household_id == household)
        with self._reading() as connection:
            return {status: int(count) for status, count in connection.execute(query)}

    def counts_by_channel(self) -> dict[tuple[str, str], int]:
        """Deliveries by (status, channel)."""
        with self._reading() as connection:
            rows = connection.execute(
                select(DeliveryRow.status, DeliveryRow.channel, func.count()).group_by(
                    DeliveryRow.status, DeliveryRow.channel
                )
            ).all()
        return {(status, channel): n for status, channel, n in rows}

    def next_due(self, limit: int, household: str | None = None) -> list[Due]:
        """The `limit` deliveries still to send soonest (of one household, or of all)."""
        query = (
            select(
                DeliveryRow.next_attempt_at,
                DeliveryRow.household_id,
                # A TELL is about no occurrence: shown as its role's word.
                func.coalesce(OccurrenceRow.ritual_id, TELL_LABEL),
                DeliveryRow.partner_key,
                DeliveryRow.role,
                DeliveryRow.channel,
                DeliveryRow.status,
                PartnerRow.timezone,
            )
            .outerjoin(OccurrenceRow, OccurrenceRow.id == DeliveryRow.occurrence_id)
            .join(
                PartnerRow,
                (PartnerRow.household_id == DeliveryRow.household_id)
                & (PartnerRow.key == DeliveryRow.partner_key),
            )
            .where(DeliveryRow.status.in_(("pending", "sending")))
            .order_by(DeliveryRow.next_attempt_at)
            .limit(limit)
        )
        if household is not None:
            query = query.where(DeliveryRow.household_id == household)
        with self._reading() as connection:
            return [Due(*row) for row in connection.execute(query)]

    def household_ids(self) -> list[str]:
        """Every household the ledger has (also those since removed from the file), by id."""
        with self._reading() as connection:
            return list(
                connection.execute(select(HouseholdRow.id).order_by(HouseholdRow.id)).scalars()
            )

    def people(self, household: str) -> People | None:
        """The household's zone and its partners' names; None when the ledger has no such
        household."""
        with self._reading() as connection:
            rows = connection.execute(
                select(HouseholdRow.timezone, PartnerRow.key, PartnerRow.name)
                .outerjoin(PartnerRow, PartnerRow.household_id == HouseholdRow.id)
                .where(HouseholdRow.id == household)
            ).all()
        if not rows:
            return None
        return People(rows[0].timezone, {r.key: r.name for r in rows if r.key is not None})

    def events(
        self,
        household: str,
        since: datetime,
        limit: int,
        *,
        recipients: Collection[str] | None = None,
        leaving_out: Collection[str] = (),
    ) -> list[CalendarEntry]:
        """The household's occurrences at or after `since` but those called off, the
        newest `limit` of them, newest first: only those of `recipients` (``""``: an
        occurrence for the household rather than one partner's own; None: every one), and
        none of the rituals `leaving_out`."""
        # Bounded by the window and the limit; served by the unique index on
        # (household_id, ritual_id, slot, recipient).
        chosen = []
        if recipients is not None:
            chosen.append(OccurrenceRow.recipient.in_(list(recipients)))
        if leaving_out:
            chosen.append(OccurrenceRow.ritual_id.not_in(list(leaving_out)))
        with self._reading() as connection:
            rows = connection.execute(
                select(
                    OccurrenceRow.ritual_id,
                    OccurrenceRow.slot,
                    OccurrenceRow.recipient,
                    OccurrenceRow.kind,
                    OccurrenceRow.at,
                    OccurrenceRow.status,
                    OccurrenceRow.item,
                    OccurrenceRow.deck,
                    OccurrenceRow.planners,
                    OccurrenceRow.updated_at,
                )
                .where(
                    OccurrenceRow.household_id == household,
                    OccurrenceRow.at >= since,
                    OccurrenceRow.status != "cancelled",
                    *chosen,
                )
                .order_by(
                    OccurrenceRow.at.desc(),
                    OccurrenceRow.ritual_id.desc(),
                    OccurrenceRow.recipient.desc(),
                )
                .limit(limit)
            )
            return [CalendarEntry(*row) for row in rows]

    def history(self, household: str, since: datetime, now: datetime) -> list[HistoryEntry]:
        """The household's occurrences due from `since` to `now` (and those skipped ahead),
        but those called off, oldest first, each with its completions and whether a message
        about it reached anyone."""
        with self._reading() as connection:
            rows = connection.execute(
                _HISTORY, {"household": household, "since": since, "now": now}
            ).all()
        found: list[HistoryEntry] = []
        last: int | None = None
        confirmed: set[str] = set()
        skipped_by: str | None = None
        froze = False
        head: Any = None
        # Rows unpacked as tuples: a named attribute costs more per row, and a long history
        # is thousands of rows.
        for occurrence, *fields, partner, action, froze_here in rows:
            if occurrence != last:
                if head is not None:
                    found.append(_history_entry(head, confirmed, skipped_by, froze))
                last, head = occurrence, fields
                confirmed, skipped_by, froze = set(), None, False
            if action == "confirm":
                confirmed.add(partner)
            elif action == "skip":
                skipped_by = partner
                froze = froze or bool(froze_here)
        if head is not None:
            found.append(_history_entry(head, confirmed, skipped_by, froze))
        return found
