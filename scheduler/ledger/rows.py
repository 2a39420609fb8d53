"""The ledger's tables. The ritual file is the truth for who and what; these rows are the
truth for what was planned, what was sent and what the couple did.

Every instant is stored in UTC (naive in the database, aware in Python, see
:class:`UTCDateTime`); an occurrence's local slot is stored as the naive wall-clock value
that identifies it, never as an instant.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
    func,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "MAY_HAVE_REACHED",
    "PULSE_SHARE_ROLE",
    "REACHED",
    "RETRIED_PENDING",
    "SNOOZE_ROLE",
    "STRANGER_ANSWERED",
    "TELL_ROLE",
    "UNINDEXED_STATUS",
    "Base",
    "CompletionAction",
    "CompletionRow",
    "ConfigStateRow",
    "DeliveryRow",
    "DeliveryStatus",
    "HouseholdRow",
    "InboundMessageRow",
    "OccurrenceRow",
    "OccurrenceStatus",
    "PageTokenRow",
    "PartnerRow",
    "PauseRow",
    "ProviderReceiptRow",
    "PulseTurnRow",
    "RatingRow",
    "StreakCheckpointRow",
    "UTCDateTime",
    "WorkerHeartbeatRow",
    "is_follow_up",
]

OccurrenceStatus = Literal["open", "confirmed", "skipped", "missed", "cancelled"]
# A partner's SNOOZE makes a delivery of role "snooze-1", "snooze-2", ... (a nudge sent
# again): the planner does not make these, so it does not cancel them either.
SNOOZE_ROLE = "snooze"
# A partner's TELL makes a delivery of role "tell" to the other partner: about no
# occurrence (occurrence_id is NULL), made once per inbound message (its inbound_id).
TELL_ROLE = "tell"
# A share_pulse household's line with both ratings, to the partner who rated first: like a
# TELL, about no occurrence and made once per inbound message (the second rating's).
PULSE_SHARE_ROLE = "pulse"


def is_follow_up(role: str) -> bool:
    """A message that chases an occurrence (a reminder, a snoozed nudge): not needed once
    the partner confirmed it or it was skipped."""
    return role == "reminder" or role.startswith(SNOOZE_ROLE)


DeliveryStatus = Literal["pending", "sending", "sent", "delivered", "failed", "missed", "cancelled"]
CompletionAction = Literal["confirm", "skip"]

#: A delivery whose message reached its partner: what streaks and replies go by.
REACHED: tuple[DeliveryStatus, ...] = ("sent", "delivered")
#: A delivery whose message reached its partner or may have (one being sent): what the
#: planner goes by, which must never make a message again that may be on its way.
MAY_HAVE_REACHED: tuple[DeliveryStatus, ...] = ("sending", *REACHED)

# Names every constraint, so Alembic migrations can refer to them on both databases.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC ``datetime`` in Python, a naive UTC timestamp in the database.

    SQLite has no time zones and compares timestamps as text, so everything stored is UTC in
    one format; a naive value handed in is a bug, refused rather than guessed.
    """

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the ledger stores aware UTC instants")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime()}


class ConfigStateRow(Base):
    """The ritual file last synced: its hash and a generation that counts the changes."""

    __tablename__ = "config_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    file_hash: Mapped[str] = mapped_column(String(64))
    generation: Mapped[int] = mapped_column(Integer)
    synced_at: Mapped[datetime]
    # The last good file as written: a worker restarted while the file is broken runs on it.
    file_text: Mapped[str | None] = mapped_column(Text)
    # "directory": file_text is a ritual directory's rituals.toml, and each household's own
    # file is kept on its row; None: one ritual file, households and all.
    layout: Mapped[str | None] = mapped_column(String(16))
    # The problems (``file:line: ...`` lines) of the files the planner last read, while some
    # are broken and their last good versions are in force; None when every one is good.
    problems: Mapped[str | None] = mapped_column(Text)


class HouseholdRow(Base):
    __tablename__ = "household"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    timezone: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(default=True)
    paused_until: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # A ritual directory's household (None from one ritual file): the hash of its file's
    # content, its last good version (the validated household, as JSON), and the hash (of
    # this file and rituals.toml) its plan was last finished for.
    config_hash: Mapped[str | None] = mapped_column(String(64))
    config_json: Mapped[str | None] = mapped_column(Text)
    planned_hash: Mapped[str | None] = mapped_column(String(64))


class PartnerRow(Base):
    """A partner as the file has them, plus what only the ledger knows: opt-outs."""

    __tablename__ = "partner"
    __table_args__ = (
        UniqueConstraint("household_id", "key"),
        # An inbound text finds its partner by the sender's number.
        Index("ix_partner_phone", "phone"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    household_id: Mapped[str] = mapped_column(ForeignKey("household.id"))
    key: Mapped[str] = mapped_column(String(64))  # the partner's id in the file
    name: Mapped[str] = mapped_column(String(64))
    phone: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(320))
    channels: Mapped[str] = mapped_column(String(64))  # "sms,email": in order of preference
    timezone: Mapped[str] = mapped_column(String(64))
    quiet_hours: Mapped[str | None] = mapped_column(String(16))  # "22:00-08:00", partner's zone
    active: Mapped[bool] = mapped_column(default=True)
    sms_opted_out_at: Mapped[datetime | None]
    email_opted_out_at: Mapped[datetime | None]


class OccurrenceRow(Base):
    """One time a ritual happens for a household: unique on household, ritual, local slot."""

    __tablename__ = "occurrence"
    __table_args__ = (
        UniqueConstraint("household_id", "ritual_id", "slot", "recipient"),
        Index("ix_occurrence_at", "at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    household_id: Mapped[str] = mapped_column(ForeignKey("household.id"))
    ritual_id: Mapped[str] = mapped_column(String(64))
    # The naive local wall-clock value in the household's zone: the identity (DESIGN.md).
    slot: Mapped[datetime] = mapped_column(DateTime(timezone=False))
    # "" for a ritual sent to the household; the partner's id for a `to = "each"` ritual.
    recipient: Mapped[str] = mapped_column(String(64), default="")
    kind: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime]  # the slot resolved to UTC
    status: Mapped[OccurrenceStatus] = mapped_column(String(16), default="open")
    item: Mapped[str | None] = mapped_column(Text)
    # The deck `item` was drawn from (a ritual may rotate several: its topics); None with none.
    deck: Mapped[str | None] = mapped_column(Text)
    planners: Mapped[str] = mapped_column(String(200), default="")  # "alex" or "alex,sam"
    generation: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


# Pending deliveries a failed try put back: the only pending ones whose next attempt can be
# after their grace (every other one is due by the time its grace is over), so marking the
# missed ones needs the due ones (the claim's index) and these. SQL, as STRANGER_ANSWERED.
RETRIED_PENDING = text("status = 'pending' AND attempts > 0")


class DeliveryRow(Base):
    """One message to one partner about one occurrence, on one channel; or one partner's
    TELL passed on to the other (no occurrence: the inbound message it came in)."""

    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint("occurrence_id", "partner_key", "role", "channel"),
        # A TELL is passed on once per inbound message, recipient and channel (a replayed
        # webhook, or a fallback made twice, is a no-op).
        UniqueConstraint("inbound_id", "partner_key", "channel"),
        # The dispatcher's one hot query: due pending work, oldest first.
        Index("ix_delivery_status_next_attempt_at", "status", "next_attempt_at"),
        # Led by status as the claim's is, so that SQLite (which has no statistics) takes
        # this one for `status = 'pending' AND expires_at < ?` (equality and range).
        Index(
            "ix_delivery_retried_expires_at",
            "status",
            "expires_at",
            sqlite_where=RETRIED_PENDING,
            postgresql_where=RETRIED_PENDING,
        ),
        # Status callbacks find their delivery by the provider's message id.
        Index("ix_delivery_provider_id", "provider_id"),
        # A reply finds what was last sent to its partner.
        Index("ix_delivery_partner_sent_at", "household_id", "partner_key", "sent_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    # None for a TELL, which is about no occurrence.
    occurrence_id: Mapped[int | None] = mapped_column(ForeignKey("occurrence.id"))
    # A TELL's inbound message (its provider id, Twilio's MessageSid); None otherwise.
    inbound_id: Mapped[str | None] = mapped_column(String(128))
    household_id: Mapped[str] = mapped_column(String(64))
    partner_key: Mapped[str] = mapped_column(String(64))
    # plan_ahead | day_of | reminder | nudge | snooze-N | tell
    role: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16))
    status: Mapped[DeliveryStatus] = mapped_column(String(16), default="pending")
    due_at: Mapped[datetime]  # when the plan wants it sent (after quiet hours)
    next_attempt_at: Mapped[datetime]  # due_at, or later after a transient failure
    expires_at: Mapped[datetime]  # due_at + the ritual's grace: later than this is missed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    body: Mapped[str] = mapped_column(Text)  # worded for `channel`
    # {channel: body} for the partner's later channels whose wording differs (an e-mail asks
    # for no reply): what a fallback to one of them sends. None: the same body everywhere.
    fallback_bodies: Mapped[dict[str, str] | None] = mapped_column(JSON)
    # A pulse check-in's main message: {"conversation": {channel: body}, "support": text},
    # what the dispatcher sends instead when the household's ratings slip (see PulseTurnRow).
    pulse: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    subject: Mapped[str | None] = mapped_column(String(200))
    provider_id: Mapped[str | None] = mapped_column(String(128))
    # What the provider said afterwards (Twilio's status callback): delivered | undelivered |
    # failed; None until it says.
    provider_status: Mapped[str | None] = mapped_column(String(16))
    last_error: Mapped[str | None] = mapped_column(Text)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    generation: Mapped[int] = mapped_column(Integer, default=0)
    # The delivery this one replaces on the partner's next channel (opt-out, permanent error).
    fallback_of: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


#: A delivery's status compared as no index answers it, for a query whose rows another
#: index finds (their ids, their occurrence, a few households): compared as written,
#: ``status = 'pending'`` leads SQLite, which plans without statistics, to the status index
#: instead, and through every pending delivery of every household (2.8 million, seconds, at
#: 100,000 households) to check each against the others.
UNINDEXED_STATUS = func.coalesce(DeliveryRow.status, "")


class ProviderReceiptRow(Base):
    """A provider's final word on a message Tend has not recorded the id of yet: Twilio can
    call back before the worker has written the id its create call returned (a slow
    database, a send that timed out, a crash). Applied when the id is recorded."""

    __tablename__ = "provider_receipt"

    provider_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(16))
    received_at: Mapped[datetime]


class CompletionRow(Base):
    """A partner did the ritual (or skipped it): from a reply, a link or the CLI."""

    __tablename__ = "completion"
    __table_args__ = (Index("ix_completion_occurrence_id", "occurrence_id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    occurrence_id: Mapped[int] = mapped_column(ForeignKey("occurrence.id"))
    partner_key: Mapped[str] = mapped_column(String(64))
    action: Mapped[CompletionAction] = mapped_column(String(16), default="confirm")
    # A skip that used one of the month's freezes: decided when made, as the partner was told.
    froze: Mapped[bool] = mapped_column(default=False, server_default=false())
    at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(16))  # sms | email | web | cli
    raw_text: Mapped[str | None] = mapped_column(Text)


# Which inbound messages came from a number Tend did not know and got an answer: literal
# SQL, since a partial index is used only by a query that repeats its condition (a bound
# parameter in its place would not match it).
STRANGER_ANSWERED = text("household_id IS NULL AND answer <> ''")


class InboundMessageRow(Base):
    """A reply as received; unique on the provider's id (and on Twilio's idempotency token
    when it sent one), so a retried webhook is one row, answered the same way again."""

    __tablename__ = "inbound_message"
    # The rate limit counts a sender's recent messages. A stranger is answered once a day:
    # the partial index holds only the messages from unknown numbers that were answered,
    # so finding the last one is one seek however many unanswered ones a flood left.
    __table_args__ = (
        Index("ix_inbound_message_sender_received_at", "sender", "received_at"),
        # A partner's own recent messages (how many TELLs they passed on today).
        Index(
            "ix_inbound_message_partner_received_at",
            "household_id",
            "partner_key",
            "received_at",
        ),
        Index(
            "ix_inbound_message_stranger_answered",
            "sender",
            "received_at",
            sqlite_where=STRANGER_ANSWERED,
            postgresql_where=STRANGER_ANSWERED,
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    provider_id: Mapped[str] = mapped_column(String(128), unique=True)
    idempotency_token: Mapped[str | None] = mapped_column(String(128), unique=True)
    # What it asked for (confirm, skip, ..., unknown), "stranger" from an unknown number,
    # "limited" when the rate limit answered instead.
    command: Mapped[str | None] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16))
    sender: Mapped[str] = mapped_column(String(320))
    household_id: Mapped[str | None] = mapped_column(String(64))
    partner_key: Mapped[str | None] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    answer: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime]


class RatingRow(Base):
    """A partner's pulse rating (1-5) of a check-in: theirs alone, never logged. One per
    partner and occurrence; a second rating replaces the first."""

    __tablename__ = "rating"
    __table_args__ = (
        UniqueConstraint("occurrence_id", "partner_key"),
        Index("ix_rating_household_id_rated_at", "household_id", "rated_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    household_id: Mapped[str] = mapped_column(String(64))
    partner_key: Mapped[str] = mapped_column(String(64))
    occurrence_id: Mapped[int] = mapped_column(ForeignKey("occurrence.id"))
    rating: Mapped[int] = mapped_column(Integer)
    rated_at: Mapped[datetime]
    # The inbound message that gave it (its provider id): a replayed one is not applied again.
    inbound_id: Mapped[str | None] = mapped_column(String(128))


class PulseTurnRow(Base):
    """How a pulse check-in went out, decided once when its first message was sent: with
    the "longer conversation" question (the household's ratings slipped), and with the
    support message. Both partners' messages follow it; the support message's 8 weeks are
    counted from these rows."""

    __tablename__ = "pulse_turn"
    __table_args__ = (Index("ix_pulse_turn_household_id_at", "household_id", "ritual_id", "at"),)

    occurrence_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("occurrence.id"),
        primary_key=True,
    )
    household_id: Mapped[str] = mapped_column(String(64))
    ritual_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]  # when it was decided (its first message's send)
    conversation: Mapped[bool] = mapped_column(default=False)
    support: Mapped[bool] = mapped_column(default=False)


class PauseRow(Base):
    """A household's vacation (PAUSE 2w): no nudges, and streaks frozen, from start to end.
    RESUME ends it early; ``Household.paused_until`` is the end of the pause in force."""

    __tablename__ = "pause"
    __table_args__ = (Index("ix_pause_household_id", "household_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    household_id: Mapped[str] = mapped_column(ForeignKey("household.id"))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    partner_key: Mapped[str | None] = mapped_column(String(64))  # who asked
    created_at: Mapped[datetime]


class StreakCheckpointRow(Base):
    """A streak's state folded over its settled history (rituals.streaks.State as JSON), so
    computing a streak reads only the recent occurrences: the cost stays flat as years go
    by. Thrown away when the ritual's streak rules change or an old occurrence changes."""

    __tablename__ = "streak_checkpoint"

    household_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    ritual_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    recipient: Mapped[str] = mapped_column(String(64), primary_key=True)
    rules: Mapped[str] = mapped_column(String(200))
    through: Mapped[datetime]
    state: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime]


class WorkerHeartbeatRow(Base):
    """One row per worker process; `tend status` and ``/healthz`` read the newest beat."""

    __tablename__ = "worker_heartbeat"

    worker_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    beat_at: Mapped[datetime]
    leader: Mapped[bool] = mapped_column(default=False)
    stopped_at: Mapped[datetime | None]


class PageTokenRow(Base):
    """The generation of a couple's page URL (``/h/{token}``): the household's own
    (``partner_key`` ""), or one partner's. The token carries it; ``tend page-url --rotate``
    raises it, and every older URL of that page stops working. No row: generation 0."""

    __tablename__ = "page_token"

    household_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    partner_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer)
    rotated_at: Mapped[datetime]
