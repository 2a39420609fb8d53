"""Deliveries as the dispatcher sees them: due work claimed atomically, a claim and what
deciding about it needs, and every write of a claim's outcome, guarded so that only the
holder of the claim (or, reconciling, whoever finds it stale) can write it.

A delivery moves ``pending -> sending -> sent | failed | missed | cancelled``. The claim is
one short transaction (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several workers share
the work without waiting on each other; a conditional UPDATE on SQLite, whose single worker
is the only writer of claims). The provider call happens outside any transaction; its
outcome is written afterwards, guarded by ``status = 'sending' AND claimed_by = me``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, exists, func, select, update
from sqlalchemy.sql.dml import Update

from notifiers.base import Message, Recipient
from scheduler.ledger.base import Bound
from scheduler.ledger.engine import dialect_insert
from scheduler.ledger.rows import (
    RETRIED_PENDING,
    UNINDEXED_STATUS,
    CompletionRow,
    DeliveryRow,
    HouseholdRow,
    OccurrenceRow,
    PageTokenRow,
    PartnerRow,
)

__all__ = ["Claim", "Claims", "MoveOn", "SentRecord"]

# The dispatcher's log: these lines are about its deliveries.
log = logging.getLogger("scheduler.dispatcher")


@dataclass(frozen=True)
class Claim:
    """A claimed delivery and what deciding about it needs, read after the claim."""

    id: int
    occurrence_id: int | None  # None for a TELL
    household_id: str
    partner_key: str
    role: str
    channel: str
    body: str = field(repr=False)  # a TELL's words are the partners': never in a repr
    subject: str | None
    due_at: datetime
    expires_at: datetime
    attempts: int
    claimed_at: datetime
    last_error: str | None
    occurrence_status: str | None  # None for a TELL
    partner_done: bool  # this partner confirmed the occurrence
    ritual_id: str | None  # None for a TELL
    slot: datetime | None  # None for a TELL
    household_active: bool
    paused_until: datetime | None
    name: str
    phone: str | None = field(repr=False)
    email: str | None = field(repr=False)
    channels: tuple[str, ...]
    timezone: str
    quiet_hours: str | None
    partner_active: bool
    sms_opted_out_at: datetime | None
    email_opted_out_at: datetime | None
    # (channel, body) of the partner's later channels that word it otherwise.
    fallback_bodies: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    # A TELL's inbound message (its provider id): what makes it once.
    inbound_id: str | None = None
    # A pulse check-in's other wordings (DeliveryRow.pulse): never in a repr.
    pulse: dict[str, Any] | None = field(default=None, repr=False, compare=False, hash=False)
    # The generation of the partner's page URL, read with the claim (None: never rotated,
    # generation 0): an e-mail links the page as it is now, never a revoked URL.
    page_generation: int | None = None

    @property
    def is_tell(self) -> bool:
        """A partner's TELL passed on: about no occurrence."""
        return self.occurrence_id is None

    @property
    def key(self) -> str:
        if self.slot is None:  # a TELL: its inbound message identifies it
            return (
                f"{self.household_id}/{self.role}/{self.inbound_id}/"
                f"{self.partner_key}/{self.channel}"
            )
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
            page_generation=self.page_generation or 0,
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

    def next_channel(self, now: datetime) -> str | None:
        """The partner's next usable channel after this one, in their order of preference;
        None when there is none, or when the delivery is past its grace."""
        if now > self.expires_at:
            return None
        order = list(self.channels)
        later = order[order.index(self.channel) + 1 :] if self.channel in order else []
        for channel in later:
            if not self.opted_out(channel) and self.address(channel):
                return channel
        return None


@dataclass(frozen=True, slots=True)
class SentRecord:
    """A send that went out, as the ledger records it."""

    claim: Claim
    attempts: int
    provider_id: str | None
    sent_at: datetime
    last_error: str | None


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
        DeliveryRow.fallback_bodies,
        DeliveryRow.inbound_id,
        DeliveryRow.pulse,
        select(PageTokenRow.generation)
        .where(
            PageTokenRow.household_id == DeliveryRow.household_id,
            PageTokenRow.partner_key == DeliveryRow.partner_key,
        )
        .scalar_subquery()
        .label("page_generation"),
    )
    # Outer: a TELL is about no occurrence.
    .outerjoin(OccurrenceRow, OccurrenceRow.id == DeliveryRow.occurrence_id)
    .join(HouseholdRow, HouseholdRow.id == DeliveryRow.household_id)
    .join(
        PartnerRow,
        (PartnerRow.household_id == DeliveryRow.household_id)
        & (PartnerRow.key == DeliveryRow.partner_key),
    )
    .order_by(DeliveryRow.next_attempt_at, DeliveryRow.id)
)


# The record of a send, guarded as `_still_held` is: written only while the claim is as it
# was read (still `sending`, claimed at the same instant, by this worker).
_RECORD_SENT = (
    update(DeliveryRow)
    .where(
        DeliveryRow.id == bindparam("b_id"),
        DeliveryRow.status == "sending",
        DeliveryRow.claimed_at == bindparam("b_claimed_at"),
        DeliveryRow.claimed_by == bindparam("b_worker"),
    )
    .values(
        status="sent",
        claimed_by=None,
        updated_at=bindparam("b_now", type_=DeliveryRow.updated_at.type),
        attempts=bindparam("b_attempts", type_=DeliveryRow.attempts.type),
        provider_id=bindparam("b_provider_id", type_=DeliveryRow.provider_id.type),
        sent_at=bindparam("b_sent_at", type_=DeliveryRow.sent_at.type),
        last_error=bindparam("b_last_error", type_=DeliveryRow.last_error.type),
    )
)
_NEXT_DUE = select(func.min(DeliveryRow.next_attempt_at)).where(DeliveryRow.status == "pending")


def _read(connection: Connection, ids: Sequence[int]) -> list[Claim]:
    if not ids:
        return []
    rows = connection.execute(_CLAIMS.where(DeliveryRow.id.in_(ids))).mappings().all()
    claims = []
    for row in rows:
        values: dict[str, Any] = dict(row)
        values["channels"] = tuple(c for c in values["channels"].split(",") if c)
        values["fallback_bodies"] = tuple(sorted((values["fallback_bodies"] or {}).items()))
        claims.append(Claim(**values))
    return claims


def _still_held(claim: Claim, worker: str | None) -> Update:
    """An UPDATE of `claim`'s row that matches only while the claim is as it was read:
    still `sending`, claimed at the same instant (and by `worker`, unless None: the
    reconciler's, whoever holds it)."""
    statement = update(DeliveryRow).where(
        DeliveryRow.id == claim.id,
        DeliveryRow.status == "sending",
        DeliveryRow.claimed_at == claim.claimed_at,
    )
    return statement if worker is None else statement.where(DeliveryRow.claimed_by == worker)


class Claims(Bound):
    """The dispatcher's deliveries: claiming, reading, and recording outcomes."""

    __slots__ = ()

    def read(self, ids: Sequence[int]) -> list[Claim]:
        """The claims (deliveries with what deciding about them needs) of `ids`; reads only."""
        if not ids:
            return []
        with self._reading() as connection:
            return _read(connection, ids)

    def next_due(self) -> datetime | None:
        with self._reading() as connection:
            value: datetime | None = connection.execute(_NEXT_DUE).scalar_one()
            return value

    def mark_missed(self, now: datetime) -> int:
        """Pending deliveries past their grace are missed: never sent late (DESIGN.md).

        Every such delivery is due by then, or a failed try put its next attempt after its
        grace; each kind is found by an index (the claim's, and ``RETRIED_PENDING``'s), not
        by a look through every pending delivery: that took 7.9 s at 100,000 households on
        SQLite (2.9 million pending), before each batch the dispatcher claimed, holding
        SQLite's one writer all the while."""
        missed = {
            "status": "missed",
            "last_error": "not sent within the ritual's grace",
            "updated_at": now,
        }
        with self._writing() as connection:
            due = connection.execute(
                update(DeliveryRow)
                .where(
                    DeliveryRow.status == "pending",
                    DeliveryRow.next_attempt_at <= now,
                    DeliveryRow.expires_at < now,
                )
                .values(missed)
            )
            retried = connection.execute(
                update(DeliveryRow)
                .where(RETRIED_PENDING, DeliveryRow.expires_at < now)
                .values(missed)
            )
        return int(due.rowcount or 0) + int(retried.rowcount or 0)

    def claim(self, worker: str, now: datetime, limit: int) -> list[Claim]:
        """Atomically move up to `limit` due deliveries to ``sending`` under `worker`."""
        # A MATERIALIZED CTE on PostgreSQL: as a plain subquery the planner may run it once
        # per candidate row (a nested loop, chosen on a freshly planned ledger without
        # statistics), so the LIMIT applies to each run and one claim took every due row.
        due = (
            select(DeliveryRow.id)
            .where(DeliveryRow.status == "pending", DeliveryRow.next_attempt_at <= now)
            .order_by(DeliveryRow.next_attempt_at, DeliveryRow.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .cte("due")
            .prefix_with("MATERIALIZED", dialect="postgresql")
        )
        with self._writing() as connection:
            ids = list(
                connection.execute(
                    update(DeliveryRow)
                    # By their ids: SQLite would walk the status index instead, every
                    # pending delivery of every household, for each batch.
                    .where(DeliveryRow.id.in_(select(due.c.id)), UNINDEXED_STATUS == "pending")
                    .values(status="sending", claimed_by=worker, claimed_at=now, updated_at=now)
                    .returning(DeliveryRow.id)
                ).scalars()
            )
            return _read(connection, ids)

    def stale(self, now: datetime, older_than: timedelta | None) -> list[Claim]:
        """Deliveries left in ``sending`` (claimed before ``now - older_than``; all of them
        with None, when this process is known to be the only worker)."""
        stale = select(DeliveryRow.id).where(DeliveryRow.status == "sending")
        if older_than is not None:
            stale = stale.where(DeliveryRow.claimed_at < now - older_than)
        with self._reading() as connection:
            ids = list(connection.execute(stale).scalars())
        return self.read(ids)

    def renew(self, claim: Claim, worker: str, now: datetime) -> bool:
        """Claim it again at `now`, if it is still `worker`'s."""
        with self._writing() as connection:
            result = connection.execute(_still_held(claim, worker).values(claimed_at=now))
        return bool(result.rowcount)

    def reword(self, claim: Claim, worker: str, now: datetime, body: str) -> bool:
        """Write the body `claim` goes out with (a pulse check-in's longer-conversation
        wording), if the claim is still `worker`'s: what a reply, a snooze and the
        reconciler's lookup then go by."""
        with self._writing() as connection:
            result = connection.execute(
                _still_held(claim, worker).values(body=body, updated_at=now)
            )
        return bool(result.rowcount)

    def finish(
        self, claim: Claim, worker: str | None, now: datetime, values: dict[str, Any]
    ) -> bool:
        """Write a claim's outcome (`values`: status and what goes with it), if the claim is
        still as it was read and `worker`'s (None: whoever holds it, for the reconciler)."""
        with self._writing() as connection:
            result = connection.execute(_still_held(claim, worker).values(updated_at=now, **values))
        return bool(result.rowcount)

    def record_sent(self, worker: str, now: datetime, sent: Sequence[SentRecord]) -> list[int]:
        """Write sends that went out, in one transaction; return the ids of those written.

        One statement, built once, run for the whole batch (the driver's executemany):
        built per row, statements cost more CPU than the sends themselves. Each row is
        written only if the claim is still `worker`'s."""
        rows = [
            {
                "b_id": item.claim.id,
                "b_claimed_at": item.claim.claimed_at,
                "b_worker": worker,
                "b_now": now,
                "b_attempts": item.attempts,
                "b_provider_id": item.provider_id,
                "b_sent_at": item.sent_at,
                "b_last_error": item.last_error,
            }
            for item in sent
        ]
        with self._writing() as connection:
            result = connection.execute(_RECORD_SENT, rows)
            if connection.dialect.supports_sane_multi_rowcount and result.rowcount == len(rows):
                return [item.claim.id for item in sent]
            # Some claims were reconciled meanwhile (or the driver cannot count): which?
            found: dict[int, str | None] = {
                row.id: row.provider_id
                for row in connection.execute(
                    select(DeliveryRow.id, DeliveryRow.provider_id).where(
                        DeliveryRow.id.in_([item.claim.id for item in sent]),
                        DeliveryRow.status == "sent",
                    )
                )
            }
        return [
            item.claim.id
            for item in sent
            if item.claim.id in found and found[item.claim.id] == item.provider_id
        ]

    def fall_back(self, claim: Claim, now: datetime) -> str | None:
        """Insert the same delivery on the partner's next usable channel, due now; that
        channel, or None when there is none."""
        channel = claim.next_channel(now)
        if channel is None:
            return None
        with self._writing() as connection:
            _insert_fallback(connection, claim, channel, now)
        log.info("delivery %d: falling back from %s to %s", claim.id, claim.channel, channel)
        return channel

    def move_on(self, claim: Claim, worker: str, now: datetime, values: dict[str, Any]) -> MoveOn:
        """Settle a claim that will not be sent on its channel (`values`: its outcome, failed
        or cancelled) and make the same message on the partner's next usable channel, in one
        transaction: both are written, or neither. Only while the claim is `worker`'s, so a
        settled delivery makes its fallback once, whoever repeats the call."""
        channel = claim.next_channel(now)
        with self._writing() as connection:
            result = connection.execute(
                _still_held(claim, worker).values(updated_at=now, claimed_by=None, **values)
            )
            if not result.rowcount:
                return MoveOn(written=False, channel=None)
            if channel is not None:
                _insert_fallback(connection, claim, channel, now)
        return MoveOn(written=True, channel=channel)


@dataclass(frozen=True, slots=True)
class MoveOn:
    """What :meth:`Claims.move_on` wrote: the outcome (``written``: the claim was still
    held) and the channel the message moved to (None: nowhere, or not written)."""

    written: bool
    channel: str | None


def _insert_fallback(connection: Connection, claim: Claim, channel: str, now: datetime) -> None:
    """The delivery of `claim` again on `channel`, due now, worded for `channel` (once: the
    unique key on occurrence, partner, role and channel, or a TELL's on its inbound message,
    partner and channel, makes a repeat a no-op)."""
    bodies = dict(claim.fallback_bodies)  # those not named say what claim.body says
    body = bodies.get(channel, claim.body)
    order = list(claim.channels)
    later = order[order.index(channel) + 1 :] if channel in order else []
    # The same rule for the new row: the later channels that word it otherwise than `body`.
    still = {c: bodies.get(c, claim.body) for c in later if bodies.get(c, claim.body) != body}
    insert = dialect_insert(connection, DeliveryRow)
    connection.execute(
        insert.values(
            occurrence_id=claim.occurrence_id,
            inbound_id=claim.inbound_id,
            household_id=claim.household_id,
            partner_key=claim.partner_key,
            role=claim.role,
            channel=channel,
            status="pending",
            due_at=claim.due_at,
            next_attempt_at=now,
            expires_at=claim.expires_at,
            attempts=0,
            body=body,
            fallback_bodies=still or None,
            pulse=claim.pulse,
            subject=claim.subject,
            generation=0,
            fallback_of=claim.id,
            created_at=now,
            updated_at=now,
        ).on_conflict_do_nothing()
    )
