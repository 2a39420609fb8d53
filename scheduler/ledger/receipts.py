"""What a provider says about a message after it was sent (Twilio's status callback).

``delivered`` is noted on the delivery. ``undelivered`` or ``failed`` (the carrier refused
it, the number is unreachable) turns the delivery from ``sent`` to ``failed`` with the
provider's error code, and the message moves to the partner's next channel, as a permanent
error at send time does. Callbacks may arrive more than once or out of order: the first
final word counts, and a repeat changes nothing.

A callback can also come before the worker has recorded the message's id (a slow database
write, a send that timed out after the provider took it, a crash before the record): it is
held in ``provider_receipt`` and applied when the id is recorded (:func:`apply_held`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import delete, exists, select, update

from scheduler.ledger.base import Bound
from scheduler.ledger.claims import Claims
from scheduler.ledger.engine import dialect_insert
from scheduler.ledger.rows import DeliveryRow, ProviderReceiptRow

__all__ = ["FAILED", "FINAL", "Receipt", "Receipts"]

log = logging.getLogger(__name__)

FINAL = frozenset({"delivered", "undelivered", "failed"})
FAILED = frozenset({"undelivered", "failed"})
# A held receipt no delivery claimed in this long was not for a message of ours.
HOLD_FOR = timedelta(days=2)

Outcome = Literal["recorded", "repeat", "held", "not final"]


@dataclass(frozen=True, slots=True)
class Receipt:
    outcome: Outcome
    delivery: int | None = None
    fallback: str | None = None  # the channel the message moved to, if it did


class Receipts(Bound):
    """What providers say about messages after they were sent."""

    __slots__ = ()

    def record(
        self,
        *,
        channel: str,
        provider_id: str,
        status: str,
        error_code: str | None,
        now: datetime,
    ) -> Receipt:
        status = status.lower()
        if status not in FINAL:  # queued, sending, sent, accepted, scheduled, read...
            return Receipt("not final")
        ours = select(DeliveryRow.id).where(
            DeliveryRow.provider_id == provider_id, DeliveryRow.channel == channel
        )
        with self._writing() as connection:
            found = connection.execute(ours).scalar()
            if found is None:
                insert = dialect_insert(connection, ProviderReceiptRow)
                connection.execute(
                    insert.values(
                        provider_id=provider_id,
                        channel=channel,
                        status=status,
                        error_code=error_code,
                        received_at=now,
                    ).on_conflict_do_nothing()  # the first final word counts
                )
                connection.execute(
                    delete(ProviderReceiptRow).where(
                        ProviderReceiptRow.received_at < now - HOLD_FOR
                    )
                )
                # The id may have been recorded (and the held receipts looked at) in the
                # meantime: PostgreSQL shows this statement what committed since the last one.
                found = connection.execute(ours).scalar()
                if found is None:
                    return Receipt("held")
                connection.execute(
                    delete(ProviderReceiptRow).where(ProviderReceiptRow.provider_id == provider_id)
                )
            values: dict[str, object] = {"provider_status": status, "updated_at": now}
            if status in FAILED:
                values.update(
                    status="failed",
                    last_error=f"{status} (provider error {error_code or 'not given'})",
                )
            changed = connection.execute(
                update(DeliveryRow)
                .where(
                    DeliveryRow.id == found,
                    DeliveryRow.provider_status.is_(None),
                    DeliveryRow.status == "sent",
                )
                .values(values)
            ).rowcount
            if not changed:
                return Receipt("repeat", found)
            if status not in FAILED:
                return Receipt("recorded", found)
            # The failure and the message on the next channel are written together: a crash
            # between two transactions would leave it failed with no fallback, and the
            # provider's retry of the callback would then be a repeat.
            claims = Claims(connection)
            found_claims = claims.read([found])
            moved = claims.fall_back(found_claims[0], now) if found_claims else None
        log.warning(
            "delivery %d: %s %s (provider error %s)", found, channel, status, error_code or "-"
        )
        return Receipt("recorded", found, moved)

    def apply_held(self, *, channel: str, provider_id: str, now: datetime) -> Receipt | None:
        """Apply a receipt that came before `provider_id` was recorded as sent, if one did."""
        with self._writing() as connection:
            held = connection.execute(
                delete(ProviderReceiptRow)
                .where(
                    ProviderReceiptRow.provider_id == provider_id,
                    ProviderReceiptRow.channel == channel,
                )
                .returning(ProviderReceiptRow.status, ProviderReceiptRow.error_code)
            ).one_or_none()
        if held is None:
            return None
        status, error_code = held
        try:
            return self.record(
                channel=channel,
                provider_id=provider_id,
                status=status,
                error_code=error_code,
                now=now,
            )
        except Exception:
            # Held again, for `apply_matched` to try later, rather than lost.
            try:
                with self._writing() as connection:
                    connection.execute(
                        dialect_insert(connection, ProviderReceiptRow)
                        .values(
                            provider_id=provider_id,
                            channel=channel,
                            status=status,
                            error_code=error_code,
                            received_at=now,
                        )
                        .on_conflict_do_nothing()
                    )
            except Exception:
                log.exception("%s receipt for a sent message could not be held again", channel)
            raise

    def apply_matched(self, now: datetime) -> int:
        """Apply the held receipts whose message is recorded as sent by now; return how many.

        The dispatcher applies a held receipt as it records the send; this catches the rest: a
        receipt whose application failed and was held again, or one held by a transaction that
        committed just after the send's record looked for it. Run with the reconciler."""
        # From the few held receipts to their messages: joined, SQLite went the other way,
        # through every message ever sent (the status index), or every delivery.
        recorded = exists().where(
            DeliveryRow.provider_id == ProviderReceiptRow.provider_id,
            DeliveryRow.channel == ProviderReceiptRow.channel,
            DeliveryRow.status.in_(("sent", "failed")),
        )
        matched = select(ProviderReceiptRow.channel, ProviderReceiptRow.provider_id).where(recorded)
        with self._reading() as connection:
            found = connection.execute(matched).all()
        applied = 0
        for channel, provider_id in found:
            try:
                applied += (
                    self.apply_held(channel=channel, provider_id=provider_id, now=now) is not None
                )
            except Exception:
                log.exception("a held %s receipt was not applied; it is tried again later", channel)
        return applied
