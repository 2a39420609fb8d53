"""Partners as the ledger knows them: who has a number, and who opted out of which channel
(one place for the dispatcher, when a provider says so; the web app's unsubscribe link; a
STOP text; and ``tend send-test``, which must not message them either)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, Connection, and_, bindparam, func, or_, select, update
from sqlalchemy.orm import InstrumentedAttribute

from scheduler.ledger.base import Bound
from scheduler.ledger.rows import DeliveryRow, PartnerRow

__all__ = ["Partners"]

_COLUMNS: dict[str, InstrumentedAttribute[datetime | None]] = {
    "sms": PartnerRow.sms_opted_out_at,
    "email": PartnerRow.email_opted_out_at,
}

# Built once: an inbound text looks its sender up by number.
_BY_PHONE = select(PartnerRow.household_id, PartnerRow.key).where(
    PartnerRow.phone == bindparam("phone"), PartnerRow.active.is_(True)
)
_SAME_NUMBER = select(PartnerRow.household_id, PartnerRow.key).where(
    PartnerRow.phone == bindparam("phone")
)


def _partner(household: str, partner: str) -> ColumnElement[bool]:
    return and_(PartnerRow.household_id == household, PartnerRow.key == partner)


class Partners(Bound):
    """Partners: their numbers, and their opt-outs."""

    __slots__ = ()

    def with_phone(self, phone: str) -> list[tuple[str, str]]:
        """(household, partner) of the active partners with this number."""
        with self._reading() as connection:
            return [
                (r.household_id, r.key) for r in connection.execute(_BY_PHONE, {"phone": phone})
            ]

    def sharing_number(self, phone: str) -> list[tuple[str, str]]:
        """Every partner with this number, active or not: an opt-out belongs to the number."""
        with self._reading() as connection:
            rows = connection.execute(_SAME_NUMBER, {"phone": phone})
            return [(r.household_id, r.key) for r in rows]

    def last_texted(self, partners: Sequence[tuple[str, str]]) -> dict[tuple[str, str], datetime]:
        """When Tend last texted each of these partners (those it ever texted)."""
        with self._reading() as connection:
            rows = connection.execute(
                select(
                    DeliveryRow.household_id,
                    DeliveryRow.partner_key,
                    func.max(DeliveryRow.sent_at).label("last"),
                )
                .where(
                    or_(
                        *(
                            (DeliveryRow.household_id == h) & (DeliveryRow.partner_key == k)
                            for h, k in partners
                        )
                    ),
                    DeliveryRow.channel == "sms",
                )
                .group_by(DeliveryRow.household_id, DeliveryRow.partner_key)
            )
            return {(r.household_id, r.partner_key): r.last for r in rows if r.last is not None}

    def opted_out_at(self, household: str, partner: str, channel: str) -> datetime | None:
        """When the partner opted out of `channel`, or None (also for channels without
        opt-out)."""
        column = _COLUMNS.get(channel)
        if column is None:
            return None
        with self._reading() as connection:
            found: datetime | None = connection.execute(
                select(column).where(_partner(household, partner))
            ).scalar()
            return found

    def record_opt_out(self, household: str, partner: str, channel: str, at: datetime) -> bool:
        """Record that the partner opted out of `channel` at `at`, keeping an earlier time.

        False when the ledger has no such partner (or the channel has no opt-out)."""
        column = _COLUMNS.get(channel)
        if column is None:
            return False
        with self._writing() as connection:
            connection.execute(
                update(PartnerRow)
                .where(_partner(household, partner), column.is_(None))
                .values({column.key: at})
            )
            return _exists(connection, household, partner)

    def clear_opt_out(self, household: str, partner: str, channel: str) -> bool:
        """Opt the partner back in to `channel`; False when they had not opted out."""
        column = _COLUMNS.get(channel)
        if column is None:
            return False
        with self._writing() as connection:
            done = connection.execute(
                update(PartnerRow)
                .where(_partner(household, partner), column.is_not(None))
                .values({column.key: None})
            )
            return bool(done.rowcount)


def _exists(connection: Connection, household: str, partner: str) -> bool:
    return bool(
        connection.execute(
            select(func.count()).select_from(PartnerRow).where(_partner(household, partner))
        ).scalar_one()
    )
