"""Inbound messages (replies) as received: each recorded once, by the provider's id and
Twilio's idempotency token, with the answer given, so a retried webhook is answered the
same way again."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, func, insert, or_, select

from scheduler.ledger.base import Bound
from scheduler.ledger.rows import STRANGER_ANSWERED, InboundMessageRow

__all__ = ["Earlier", "Inbound"]


@dataclass(frozen=True, slots=True)
class Earlier:
    """What a message already recorded was answered."""

    answer: str
    command: str
    household: str | None
    partner: str | None


# The hot path's statements, built once with bind parameters: building a statement and its
# cache key costs more than running it (see bench/webhook.py).
_EARLIER_COLUMNS = select(
    InboundMessageRow.answer,
    InboundMessageRow.command,
    InboundMessageRow.household_id,
    InboundMessageRow.partner_key,
).limit(1)
_EARLIER = _EARLIER_COLUMNS.where(InboundMessageRow.provider_id == bindparam("provider_id"))
_EARLIER_OR_TOKEN = _EARLIER_COLUMNS.where(
    or_(
        InboundMessageRow.provider_id == bindparam("provider_id"),
        InboundMessageRow.idempotency_token == bindparam("token"),
    )
)
_RECORD = insert(InboundMessageRow)
_RECENT = (
    select(func.count())
    .select_from(InboundMessageRow)
    .where(
        InboundMessageRow.sender == bindparam("sender"),
        InboundMessageRow.received_at > bindparam("since"),
    )
)
# Spelled as the partial index ix_inbound_message_stranger_answered is, so it is the one used.
_STRANGER_ANSWERED = (
    select(InboundMessageRow.id)
    .where(
        InboundMessageRow.sender == bindparam("sender"),
        InboundMessageRow.received_at > bindparam("since"),
        STRANGER_ANSWERED,
    )
    .limit(1)
)


class Inbound(Bound):
    """The inbound messages."""

    __slots__ = ()

    def earlier(self, provider_id: str, token: str | None) -> Earlier | None:
        """The answer given to this message (by its id, or Twilio's idempotency token)."""
        with self._reading() as connection:
            if token:
                found = connection.execute(
                    _EARLIER_OR_TOKEN, {"provider_id": provider_id, "token": token}
                )
            else:
                found = connection.execute(_EARLIER, {"provider_id": provider_id})
            row = found.first()
        if row is None:
            return None
        return Earlier(
            row.answer or "", row.command or "unknown", row.household_id, row.partner_key
        )

    def recent(self, sender: str, since: datetime) -> int:
        """How many messages `sender` sent after `since` (the rate limit)."""
        with self._reading() as connection:
            count: int = connection.execute(
                _RECENT, {"sender": sender, "since": since}
            ).scalar_one()
            return count

    def stranger_answered_since(self, sender: str, since: datetime) -> bool:
        """Whether an unknown number was answered after `since`."""
        with self._reading() as connection:
            found = connection.execute(_STRANGER_ANSWERED, {"sender": sender, "since": since})
            return found.first() is not None

    def record(
        self,
        *,
        provider_id: str,
        idempotency_token: str | None,
        channel: str,
        sender: str,
        household: str | None,
        partner: str | None,
        body: str,
        answer: str,
        command: str,
        received_at: datetime,
    ) -> None:
        with self._writing() as connection:
            connection.execute(
                _RECORD,
                {
                    "provider_id": provider_id,
                    "idempotency_token": idempotency_token,
                    "channel": channel,
                    "sender": sender,
                    "household_id": household,
                    "partner_key": partner,
                    "body": body,
                    "answer": answer,
                    "command": command,
                    "received_at": received_at,
                },
            )
