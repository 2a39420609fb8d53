"""A claimed delivery and what deciding about it needs, read from the ledger; moving a
delivery to the partner's next channel. Shared by the dispatcher and the receipts."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, exists, select

from notifiers.base import Message, Recipient
from scheduler.ledger.engine import dialect_insert
from scheduler.ledger.rows import (
    CompletionRow,
    DeliveryRow,
    HouseholdRow,
    OccurrenceRow,
    PartnerRow,
)

__all__ = ["Claim", "fall_back", "read_claims"]

log = logging.getLogger("scheduler.dispatcher")


@dataclass(frozen=True)
class Claim:
    """A claimed delivery and what deciding about it needs, read after the claim."""

    id: int
    occurrence_id: int
    household_id: str
    partner_key: str
    role: str
    channel: str
    body: str
    subject: str | None
    due_at: datetime
    expires_at: datetime
    attempts: int
    claimed_at: datetime
    last_error: str | None
    occurrence_status: str
    partner_done: bool  # this partner confirmed the occurrence
    ritual_id: str
    slot: datetime
    household_active: bool
    paused_until: datetime | None
    name: str
    phone: str | None
    email: str | None
    channels: tuple[str, ...]
    timezone: str
    quiet_hours: str | None
    partner_active: bool
    sms_opted_out_at: datetime | None
    email_opted_out_at: datetime | None

    @property
    def key(self) -> str:
        return (
            f"{self.household_id}/{self.ritual_id}/{self.slot:%Y-%m-%dT%H:%M}/"
            f"{self.partner_key}/{self.role}/{self.channel}"
        )

    def message(self) -> Message:
        return Message(
            recipient=Recipient(
                household=self.household_id,
                partner=self.partner_key,
                name=self.name,
                phone=self.phone,
                email=self.email,
            ),
            channel=self.channel,
            body=self.body,
            subject=self.subject,
            key=self.key,
            ritual=self.ritual_id,
            occurrence=self.occurrence_id,
        )

    def opted_out(self, channel: str) -> bool:
        return (channel == "sms" and self.sms_opted_out_at is not None) or (
            channel == "email" and self.email_opted_out_at is not None
        )

    def contact(self) -> str | None:
        """The phone number or e-mail address this claim goes to (None for the console)."""
        return {"sms": self.phone, "email": self.email}.get(self.channel)

    def address(self, channel: str) -> str | None:
        return {"sms": self.phone, "email": self.email, "console": self.name}.get(channel)


def read_claims(engine: Engine, ids: Sequence[int]) -> list[Claim]:
    """The claims (deliveries with what deciding about them needs) of `ids`; reads only."""
    if not ids:
        return []
    with engine.connect() as connection:
        return read_claims_on(connection, ids)


def read_claims_on(connection: Connection, ids: Sequence[int]) -> list[Claim]:
    """:func:`read_claims` on an open connection (the claim's own transaction)."""
    if not ids:
        return []
    rows = connection.execute(_CLAIMS.where(DeliveryRow.id.in_(ids))).mappings().all()
    claims = []
    for row in rows:
        values: dict[str, Any] = dict(row)
        values["channels"] = tuple(c for c in values["channels"].split(",") if c)
        claims.append(Claim(**values))
    return claims


# Built once: the claim query is the dispatcher's most frequent read.
_CLAIMS = (
    select(
        DeliveryRow.id,
        DeliveryRow.occurrence_id,
        DeliveryRow.household_id,
        DeliveryRow.partner_key,
        DeliveryRow.role,
        DeliveryRow.channel,
        DeliveryRow.body,
        DeliveryRow.subject,
        DeliveryRow.due_at,
        DeliveryRow.expires_at,
        DeliveryRow.attempts,
        DeliveryRow.claimed_at,
        DeliveryRow.last_error,
        OccurrenceRow.status.label("occurrence_status"),
        exists()
        .where(
            CompletionRow.occurrence_id == DeliveryRow.occurrence_id,
            CompletionRow.partner_key == DeliveryRow.partner_key,
            CompletionRow.action == "confirm",
        )
        .label("partner_done"),
        OccurrenceRow.ritual_id,
        OccurrenceRow.slot,
        HouseholdRow.active.label("household_active"),
        HouseholdRow.paused_until,
        PartnerRow.name,
        PartnerRow.phone,
        PartnerRow.email,
        PartnerRow.channels,
        PartnerRow.timezone,
        PartnerRow.quiet_hours,
        PartnerRow.active.label("partner_active"),
        PartnerRow.sms_opted_out_at,
        PartnerRow.email_opted_out_at,
    )
    .join(OccurrenceRow, OccurrenceRow.id == DeliveryRow.occurrence_id)
    .join(HouseholdRow, HouseholdRow.id == DeliveryRow.household_id)
    .join(
        PartnerRow,
        (PartnerRow.household_id == DeliveryRow.household_id)
        & (PartnerRow.key == DeliveryRow.partner_key),
    )
    .order_by(DeliveryRow.next_attempt_at, DeliveryRow.id)
)


def fall_back(engine: Engine, claim: Claim, now: datetime) -> str | None:
    """Insert the same delivery on the partner's next usable channel, due now."""
    if now > claim.expires_at:
        return None
    order = list(claim.channels)
    later = order[order.index(claim.channel) + 1 :] if claim.channel in order else []
    for channel in later:
        if claim.opted_out(channel) or not claim.address(channel):
            continue
        with engine.begin() as connection:
            insert = dialect_insert(connection, DeliveryRow)
            connection.execute(
                insert.values(
                    occurrence_id=claim.occurrence_id,
                    household_id=claim.household_id,
                    partner_key=claim.partner_key,
                    role=claim.role,
                    channel=channel,
                    status="pending",
                    due_at=claim.due_at,
                    next_attempt_at=now,
                    expires_at=claim.expires_at,
                    attempts=0,
                    body=claim.body,
                    subject=claim.subject,
                    generation=0,
                    fallback_of=claim.id,
                    created_at=now,
                    updated_at=now,
                ).on_conflict_do_nothing()
            )
        log.info("delivery %d: falling back from %s to %s", claim.id, claim.channel, channel)
        return channel
    return None
