"""TELLs: a partner's appreciation passed on to the other, as a delivery about no
occurrence (role ``tell``, ``occurrence_id`` NULL) that carries the inbound message's id.
The dispatcher sends it like any delivery; the unique key on the inbound message, the
recipient and the channel makes it once."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from scheduler.ledger.base import Bound
from scheduler.ledger.engine import dialect_insert
from scheduler.ledger.rows import TELL_ROLE, DeliveryRow, InboundMessageRow
from scheduler.ledger.workers import NOTIFY_CHANNEL

__all__ = ["Tells"]


class Tells(Bound):
    """TELLs passed on, and how many a partner sent lately."""

    __slots__ = ()

    def pass_on(
        self,
        *,
        inbound_id: str,
        household: str,
        partner: str,
        channel: str,
        body: str,
        subject: str | None,
        due: datetime,
        expires: datetime,
        now: datetime,
        role: str = TELL_ROLE,
    ) -> bool:
        """Queue the TELL of inbound message `inbound_id` to `partner` on `channel`, due at
        `due`; False when it was queued already (nothing is written twice). A
        ``share_pulse`` line (role ``pulse``) is queued the same way, by the rating's message.

        On PostgreSQL the workers are woken when the transaction commits (``NOTIFY`` is
        transactional), as the planner wakes them: a web process queued it, and a worker's
        next wake-up may be later than `due` (the 30 s poll would still find it)."""
        with self._writing() as connection:
            insert = dialect_insert(connection, DeliveryRow)
            result = connection.execute(
                insert.values(
                    occurrence_id=None,
                    inbound_id=inbound_id,
                    household_id=household,
                    partner_key=partner,
                    role=role,
                    channel=channel,
                    status="pending",
                    due_at=due,
                    next_attempt_at=due,
                    expires_at=expires,
                    attempts=0,
                    body=body,
                    fallback_bodies=None,
                    subject=subject,
                    generation=0,
                    created_at=now,
                    updated_at=now,
                ).on_conflict_do_nothing()
            )
            if result.rowcount and self._dialect == "postgresql":
                connection.execute(select(func.pg_notify(NOTIFY_CHANNEL, "tell")))
        return bool(result.rowcount)

    def sent_since(self, household: str, sender: str, since: datetime) -> int:
        """How many TELLs `sender` passed on since `since` (each inbound message once,
        whatever its recipients and channels)."""
        query = (
            select(func.count(func.distinct(DeliveryRow.inbound_id)))
            .join(InboundMessageRow, InboundMessageRow.provider_id == DeliveryRow.inbound_id)
            .where(
                InboundMessageRow.household_id == household,
                InboundMessageRow.partner_key == sender,
                InboundMessageRow.received_at >= since,
                DeliveryRow.role == TELL_ROLE,
            )
        )
        with self._reading() as connection:
            return int(connection.execute(query).scalar_one())
