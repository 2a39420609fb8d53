"""Pulse ratings and pulse turns: a partner's 1-5 rating of a check-in (one per partner
and occurrence, a second replacing the first), and how each pulse check-in went out (the
longer conversation, the support message), decided once at its first send.

A rating is the partner's own: nothing here logs one, and only :meth:`Ratings.of` and
:meth:`Ratings.by_partner` read them back, for the partner's trend, the slip rule and a
``share_pulse`` household's shared line.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from sqlalchemy import select, update

from rituals.pulse import Rated, Turn
from scheduler.ledger.base import Bound
from scheduler.ledger.engine import dialect_insert
from scheduler.ledger.rows import PULSE_SHARE_ROLE, PulseTurnRow, RatingRow

__all__ = ["PULSE_SHARE_ROLE", "Ratings"]


class Ratings(Bound):
    """Ratings and pulse turns."""

    __slots__ = ()

    def record(
        self,
        *,
        household: str,
        partner: str,
        occurrence: int,
        rating: int,
        at: datetime,
        inbound_id: str | None,
    ) -> Literal["new", "replaced"]:
        """`partner`'s `rating` of `occurrence`: a new one, or in place of their earlier one.
        Two at once for the same occurrence: the second insert meets the unique key, and the
        caller's transaction is tried again (it then replaces)."""
        with self._writing() as connection:
            found = connection.execute(
                select(RatingRow.id).where(
                    RatingRow.occurrence_id == occurrence, RatingRow.partner_key == partner
                )
            ).scalar()
            if found is not None:
                connection.execute(
                    update(RatingRow)
                    .where(RatingRow.id == found)
                    .values(rating=rating, rated_at=at, inbound_id=inbound_id)
                )
                return "replaced"
            connection.execute(
                dialect_insert(connection, RatingRow).values(
                    household_id=household,
                    partner_key=partner,
                    occurrence_id=occurrence,
                    rating=rating,
                    rated_at=at,
                    inbound_id=inbound_id,
                )
            )
        return "new"

    def of(self, occurrence: int) -> dict[str, int]:
        """Each partner's rating of `occurrence`."""
        with self._reading() as connection:
            rows = connection.execute(
                select(RatingRow.partner_key, RatingRow.rating).where(
                    RatingRow.occurrence_id == occurrence
                )
            ).all()
        return {partner: int(rating) for partner, rating in rows}

    def by_partner(
        self, household: str, since: datetime, until: datetime, partner: str | None = None
    ) -> dict[str, list[Rated]]:
        """The household's ratings given in ``(since, until]``, each partner's oldest first
        (only `partner`'s, when given)."""
        query = select(RatingRow.partner_key, RatingRow.rated_at, RatingRow.rating).where(
            RatingRow.household_id == household,
            RatingRow.rated_at > since,
            RatingRow.rated_at <= until,
        )
        if partner is not None:
            query = query.where(RatingRow.partner_key == partner)
        found: dict[str, list[Rated]] = {}
        with self._reading() as connection:
            for key, at, rating in connection.execute(query.order_by(RatingRow.rated_at)):
                found.setdefault(key, []).append(Rated(at, int(rating)))
        return found

    # ------------------------------------------------------------------ pulse turns

    def turn(self, occurrence: int) -> Turn | None:
        """How `occurrence` went out, if its first message has been sent."""
        with self._reading() as connection:
            row = connection.execute(
                select(PulseTurnRow.at, PulseTurnRow.conversation, PulseTurnRow.support).where(
                    PulseTurnRow.occurrence_id == occurrence
                )
            ).first()
        return None if row is None else Turn(row.at, bool(row.conversation), bool(row.support))

    def turns_before(
        self, household: str, ritual: str, before: datetime, limit: int, since: datetime
    ) -> list[Turn]:
        """The household's last `limit` turns of `ritual` before `before`, and every one
        since `since` (the support message's 8 weeks), oldest first."""
        with self._reading() as connection:
            mine = (
                PulseTurnRow.household_id == household,
                PulseTurnRow.ritual_id == ritual,
                PulseTurnRow.at < before,
            )
            last = connection.execute(
                select(PulseTurnRow.at, PulseTurnRow.conversation, PulseTurnRow.support)
                .where(*mine)
                .order_by(PulseTurnRow.at.desc())
                .limit(limit)
            ).all()
            recent = connection.execute(
                select(PulseTurnRow.at, PulseTurnRow.conversation, PulseTurnRow.support).where(
                    *mine, PulseTurnRow.at > since
                )
            ).all()
        rows = {(r.at, r.conversation, r.support) for r in (*last, *recent)}
        return sorted((Turn(at, bool(c), bool(s)) for at, c, s in rows), key=lambda t: t.at)

    def decide(
        self,
        *,
        occurrence: int,
        household: str,
        ritual: str,
        turn: Turn,
    ) -> Turn:
        """Record how `occurrence` goes out, unless that was decided already (the other
        partner's message went first, or a worker decided it at the same moment): the
        turn in force either way."""
        with self._writing() as connection:
            connection.execute(
                dialect_insert(connection, PulseTurnRow)
                .values(
                    occurrence_id=occurrence,
                    household_id=household,
                    ritual_id=ritual,
                    at=turn.at,
                    conversation=turn.conversation,
                    support=turn.support,
                )
                .on_conflict_do_nothing()
            )
            row = connection.execute(
                select(PulseTurnRow.at, PulseTurnRow.conversation, PulseTurnRow.support).where(
                    PulseTurnRow.occurrence_id == occurrence
                )
            ).one()
        return Turn(row.at, bool(row.conversation), bool(row.support))
