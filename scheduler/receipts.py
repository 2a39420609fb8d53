"""What a provider says about a message after it was sent (Twilio's status callback).

``delivered`` is noted on the delivery. ``undelivered`` or ``failed`` (the carrier refused
it, the number is unreachable) turns the delivery from ``sent`` to ``failed`` with the
provider's error code, and the message moves to the partner's next channel, as a permanent
error at send time does. Callbacks are retried and may arrive more than once or out of
order: the first final word counts, and a repeat changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import Engine, select, update

from scheduler.dispatcher import fall_back, read_claims
from scheduler.models import Delivery

__all__ = ["FINAL", "Receipt", "record_receipt"]

log = logging.getLogger(__name__)

FINAL = frozenset({"delivered", "undelivered", "failed"})

Outcome = Literal["recorded", "repeat", "unknown", "not final"]


@dataclass(frozen=True, slots=True)
class Receipt:
    outcome: Outcome
    delivery: int | None = None
    fallback: str | None = None  # the channel the message moved to, if it did


def record_receipt(
    engine: Engine,
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
    with engine.begin() as connection:
        found = connection.execute(
            select(Delivery.id).where(
                Delivery.provider_id == provider_id, Delivery.channel == channel
            )
        ).scalar()
        if found is None:
            return Receipt("unknown")
        values: dict[str, object] = {"provider_status": status, "updated_at": now}
        if status != "delivered":
            values.update(
                status="failed",
                last_error=f"{status} (provider error {error_code or 'not given'})",
            )
        changed = connection.execute(
            update(Delivery)
            .where(
                Delivery.id == found,
                Delivery.provider_status.is_(None),
                Delivery.status == "sent",
            )
            .values(values)
        ).rowcount
    if not changed:
        return Receipt("repeat", found)
    if status == "delivered":
        return Receipt("recorded", found)
    log.warning("delivery %d: %s %s (provider error %s)", found, channel, status, error_code or "-")
    claims = read_claims(engine, [found])
    moved = fall_back(engine, claims[0], now) if claims else None
    return Receipt("recorded", found, moved)
