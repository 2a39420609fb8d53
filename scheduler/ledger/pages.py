"""Page tokens: the generation of each couple's page URL (the household's, or one
partner's). A token names the generation it was made in; one older than the ledger's is
revoked. A page nobody rotated is at generation 0, with no row."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import select, update

from scheduler.ledger.base import Bound
from scheduler.ledger.engine import dialect_insert
from scheduler.ledger.rows import PageTokenRow

__all__ = ["Pages"]


class Pages(Bound):
    """Page URL generations."""

    __slots__ = ()

    def generation(self, household: str, partner: str | None) -> int:
        """The current generation of the household's page (`partner` None) or a partner's."""
        with self._reading() as connection:
            found = connection.execute(
                select(PageTokenRow.generation).where(
                    PageTokenRow.household_id == household,
                    PageTokenRow.partner_key == (partner or ""),
                )
            ).scalar()
        return int(found or 0)

    def generations(self, household: str, partners: Collection[str]) -> dict[str, int]:
        """Each of `partners`' current generation (0 when never rotated)."""
        with self._reading() as connection:
            rows = connection.execute(
                select(PageTokenRow.partner_key, PageTokenRow.generation).where(
                    PageTokenRow.household_id == household,
                    PageTokenRow.partner_key.in_(list(partners)),
                )
            ).all()
        found = {key: int(generation) for key, generation in rows}
        return {p: found.get(p, 0) for p in partners}

    def rotate(self, household: str, partner: str | None, now: datetime) -> int:
        """Raise the page's generation by one (every URL made before stops working); the
        new generation."""
        key = partner or ""
        with self._writing() as connection:
            done = connection.execute(
                update(PageTokenRow)
                .where(PageTokenRow.household_id == household, PageTokenRow.partner_key == key)
                .values(generation=PageTokenRow.generation + 1, rotated_at=now)
            )
            if done.rowcount == 0:
                connection.execute(
                    dialect_insert(connection, PageTokenRow)
                    .values(household_id=household, partner_key=key, generation=1, rotated_at=now)
                    .on_conflict_do_update(
                        index_elements=["household_id", "partner_key"],
                        set_={"generation": PageTokenRow.generation + 1, "rotated_at": now},
                    )
                )
            found = connection.execute(
                select(PageTokenRow.generation).where(
                    PageTokenRow.household_id == household, PageTokenRow.partner_key == key
                )
            ).scalar_one()
        return int(found)
