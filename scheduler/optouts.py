"""Who opted out of which channel: one place for the dispatcher (a provider said so), the web
app (an unsubscribe link) and ``tend send-test`` (which must not message them either)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, Connection, and_, func, select, update
from sqlalchemy.orm import InstrumentedAttribute

from scheduler.ledger.rows import PartnerRow

__all__ = ["clear_opt_out", "opted_out_at", "record_opt_out"]

_COLUMNS: dict[str, InstrumentedAttribute[datetime | None]] = {
    "sms": PartnerRow.sms_opted_out_at,
    "email": PartnerRow.email_opted_out_at,
}


def _partner(household: str, partner: str) -> ColumnElement[bool]:
    return and_(PartnerRow.household_id == household, PartnerRow.key == partner)


def opted_out_at(
    connection: Connection, household: str, partner: str, channel: str
) -> datetime | None:
    """When the partner opted out of `channel`, or None (also for channels without opt-out)."""
    column = _COLUMNS.get(channel)
    if column is None:
        return None
    found: datetime | None = connection.execute(
        select(column).where(_partner(household, partner))
    ).scalar()
    return found


def record_opt_out(
    connection: Connection, household: str, partner: str, channel: str, at: datetime
) -> bool:
    """Record that the partner opted out of `channel` at `at`, keeping an earlier time.

    False when the ledger has no such partner (or the channel has no opt-out)."""
    column = _COLUMNS.get(channel)
    if column is None:
        return False
    connection.execute(
        update(PartnerRow)
        .where(_partner(household, partner), column.is_(None))
        .values({column.key: at})
    )
    return bool(
        connection.execute(
            select(func.count()).select_from(PartnerRow).where(_partner(household, partner))
        ).scalar_one()
    )


def clear_opt_out(connection: Connection, household: str, partner: str, channel: str) -> bool:
    """Opt the partner back in to `channel`; False when they had not opted out."""
    column = _COLUMNS.get(channel)
    if column is None:
        return False
    done = connection.execute(
        update(PartnerRow)
        .where(_partner(household, partner), column.is_not(None))
        .values({column.key: None})
    )
    return bool(done.rowcount)
