"""Applying a partner's reply to the ledger: the one code path behind ``POST /twilio/sms``
and ``tend reply``.

Each inbound message is recorded once, by the provider's id (and Twilio's idempotency token
when it sent one): a retried webhook finds the first answer and gets it again, with nothing
applied twice. The sender's number finds the partner; an unknown number gets a short answer
that says nothing about any household, once a day (every answer is an SMS someone pays for;
its messages after it are recorded, unanswered). A sender over :data:`RATE_LIMIT` messages
a minute is answered once, politely, and then not at all until the minute has passed; those
messages are recorded but not applied.

What a reply applies to: the occurrences a message reached this partner about within the
ritual's reply window, the one the last message was about first, then the most recent.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers
from sqlalchemy import Connection, Engine, bindparam, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from config.model import Household as HouseholdModel
from config.model import Ritual, RitualFile, mask_address
from rituals.clock import TimeWindow
from rituals.replies import HELP, Reply, day_text, in_a_row, parse, snooze_until
from scheduler.completions import confirm, skip, unpaused
from scheduler.ledger.rows import (
    SNOOZE_ROLE,
    STRANGER_ANSWERED,
    CompletionRow,
    DeliveryRow,
    HouseholdRow,
    InboundMessageRow,
    OccurrenceRow,
    PartnerRow,
    PauseRow,
)
from scheduler.optouts import clear_opt_out, opted_out_at, record_opt_out
from scheduler.streaks import REACHED, SeriesStreak, household_streaks, rules_for

__all__ = [
    "RATE_LIMIT",
    "RATE_WINDOW",
    "STRANGER",
    "STRANGER_WINDOW",
    "Answer",
    "handle_reply",
]

log = logging.getLogger(__name__)

RATE_LIMIT = 20  # messages a sender may send in RATE_WINDOW before they are not applied
RATE_WINDOW = timedelta(minutes=1)
STRANGER_WINDOW = timedelta(days=1)  # an unknown number is answered once in this long
MAX_SNOOZES = 3  # per partner and occurrence
MAX_BODY = 1600  # Twilio's longest SMS; anything longer is kept cut to this
# A reply to a message about an occurrence that has not happened yet (a plan-ahead nudge)
# does not confirm it; a few minutes early is close enough.
EARLY = timedelta(minutes=30)

STRANGER = "Tend does not know this number, so it cannot do anything with this message."
LIMITED = "Too many messages at once. Please wait a minute, then send your reply again."
BACK_ON = "You are back on Tend's texts. Reply HELP for the commands."
NOTHING_OPEN = (
    "Nothing is waiting for a reply from you right now. Reply STREAK for your streaks or "
    "HELP for the commands."
)


@dataclass(frozen=True, slots=True)
class Answer:
    text: str  # "" answers nothing (STOP: Twilio answers it)
    command: str  # what was asked (see InboundMessage.command)
    duplicate: bool = False  # a retry of a message already answered
    household: str | None = None
    partner: str | None = None


def handle_reply(
    engine: Engine,
    file: RitualFile,
    *,
    sender: str,
    body: str,
    provider_id: str,
    now: datetime,
    idempotency_token: str | None = None,
    channel: str = "sms",
    source: str = "sms",
) -> Answer:
    """Apply one inbound message and return the answer to send back, exactly once."""
    sender = normalize_number(sender)
    body = body.replace("\x00", "")[:MAX_BODY]  # PostgreSQL text cannot hold NUL
    for attempt in (1, 2):
        try:
            with engine.begin() as connection:
                earlier = _earlier(connection, provider_id, idempotency_token)
                if earlier is not None:
                    return earlier
                answer = _handle(connection, file, sender, body, now, source)
                connection.execute(
                    _RECORD,
                    {
                        "provider_id": provider_id,
                        "idempotency_token": idempotency_token,
                        "channel": channel,
                        "sender": sender,
                        "household_id": answer.household,
                        "partner_key": answer.partner,
                        "body": body,
                        "answer": answer.text,
                        "command": answer.command,
                        "received_at": now,
                    },
                )
            break
        except IntegrityError:
            # The same message, handled at the same moment by another request: its answer.
            # Or another message of the partner's won a race for a row (two SNOOZEs at
            # once): everything here was rolled back, so it is applied again, once.
            with engine.connect() as connection:
                earlier = _earlier(connection, provider_id, idempotency_token)
            if earlier is not None:
                return earlier
            if attempt == 2:
                raise
    who = f"{answer.household}/{answer.partner}" if answer.partner else mask_address(sender)
    log.info("reply from %s: %s", who, answer.command)
    return answer


@lru_cache(maxsize=4096)  # phonenumbers parses in pure Python: a partner's number, once
def normalize_number(sender: str) -> str:
    """E.164 when it is a phone number (``+1 555-123-0001`` -> ``+15551230001``)."""
    text = sender.strip()
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return text[:320]
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


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
_PARTNERS = select(PartnerRow.household_id, PartnerRow.key).where(
    PartnerRow.phone == bindparam("phone"), PartnerRow.active.is_(True)
)
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
_TOLD = (
    select(
        DeliveryRow.occurrence_id,
        DeliveryRow.sent_at,
        DeliveryRow.due_at,
        DeliveryRow.body,
        DeliveryRow.channel,
        DeliveryRow.subject,
        OccurrenceRow.ritual_id,
        OccurrenceRow.recipient,
        OccurrenceRow.slot,
        OccurrenceRow.at,
        OccurrenceRow.status,
    )
    .join(OccurrenceRow, OccurrenceRow.id == DeliveryRow.occurrence_id)
    .where(
        DeliveryRow.household_id == bindparam("household"),
        DeliveryRow.partner_key == bindparam("partner"),
        DeliveryRow.sent_at >= bindparam("since"),
        DeliveryRow.status.in_(REACHED),
    )
    .order_by(DeliveryRow.sent_at.desc(), DeliveryRow.id.desc())
    .limit(500)
)
_DONE_BY = select(
    CompletionRow.occurrence_id, CompletionRow.partner_key, CompletionRow.action
).where(CompletionRow.occurrence_id.in_(bindparam("occurrences", expanding=True)))


def _earlier(connection: Connection, provider_id: str, token: str | None) -> Answer | None:
    if token:
        found = connection.execute(_EARLIER_OR_TOKEN, {"provider_id": provider_id, "token": token})
    else:
        found = connection.execute(_EARLIER, {"provider_id": provider_id})
    row = found.first()
    if row is None:
        return None
    return Answer(
        row.answer or "", row.command or "unknown", True, row.household_id, row.partner_key
    )


@dataclass(frozen=True, slots=True)
class _Partner:
    household: str
    key: str


class _Index:
    """What replies look up in a ritual file, by key instead of by a scan of every
    household: built once per file (see :func:`_index`), each household's part when first
    asked for."""

    def __init__(self, file: RitualFile) -> None:
        self.file = file
        self.households = {h.id: h for h in file.households}
        self.known = {(h.id, p.id) for h in file.households for p in h.partners}
        self._zones: dict[str, dict[str, ZoneInfo]] = {}
        self._rituals: dict[str, dict[str, Ritual]] = {}

    def zones(self, household: HouseholdModel) -> dict[str, ZoneInfo]:
        """Each partner's zone."""
        found = self._zones.get(household.id)
        if found is None:
            found = self._zones[household.id] = household.zones(self.file.timezone)[1]
        return found

    def rituals(self, household: str) -> dict[str, Ritual]:
        """The rituals that apply to `household`, by id, in the file's order."""
        found = self._rituals.get(household)
        if found is None:
            found = self._rituals[household] = {
                r.id: r
                for r in self.file.rituals
                if r.households is None or household in r.households
            }
        return found


_INDEXES: dict[int, _Index] = {}


def _index(file: RitualFile) -> _Index:
    """The file's index; the few latest files' are kept (the web judges replies by one
    file at a time, changed only when the worker syncs a new one)."""
    found = _INDEXES.get(id(file))
    if found is not None and found.file is file:
        return found
    found = _Index(file)
    if len(_INDEXES) >= 4:
        _INDEXES.clear()
    _INDEXES[id(file)] = found
    return found


def _handle(
    connection: Connection,
    file: RitualFile,
    sender: str,
    body: str,
    now: datetime,
    source: str = "sms",
) -> Answer:
    found = _partner(connection, file, sender)
    reply = parse(body)
    recent = connection.execute(
        _RECENT, {"sender": sender, "since": now - RATE_WINDOW}
    ).scalar_one()
    # An opt-out or opt-in always counts, however many messages came before it.
    if recent >= RATE_LIMIT and reply.command not in ("stop", "start"):
        # Said once; the messages after it in the same minute get no answer at all (every
        # answer is an SMS someone pays for, a stranger's too).
        said = LIMITED if recent == RATE_LIMIT else ""
        if found is None:
            return Answer(said if _may_answer(connection, sender, now) else "", "limited")
        return Answer(said, "limited", household=found.household, partner=found.key)
    if found is None:
        return Answer(STRANGER if _may_answer(connection, sender, now) else "", "stranger")
    text = _Replier(connection, file, found, sender, body, now, source).answer(reply)
    return Answer(text, reply.command, household=found.household, partner=found.key)


def _may_answer(connection: Connection, sender: str, now: datetime) -> bool:
    """Whether an unknown number may be answered: not when it was in the last day."""
    since = now - STRANGER_WINDOW
    answered = connection.execute(_STRANGER_ANSWERED, {"sender": sender, "since": since})
    return answered.first() is None


def _partner(connection: Connection, file: RitualFile, sender: str) -> _Partner | None:
    """The partner with this number; with several (one person in two households), the one
    Tend texted last."""
    known = _index(file).known
    rows = connection.execute(_PARTNERS, {"phone": sender}).all()
    candidates = [_Partner(r.household_id, r.key) for r in rows if (r.household_id, r.key) in known]
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    last = {
        (r.household_id, r.partner_key): r.last
        for r in connection.execute(
            select(
                DeliveryRow.household_id,
                DeliveryRow.partner_key,
                func.max(DeliveryRow.sent_at).label("last"),
            )
            .where(
                or_(
                    *(
                        (DeliveryRow.household_id == c.household)
                        & (DeliveryRow.partner_key == c.key)
                        for c in candidates
                    )
                ),
                DeliveryRow.channel == "sms",
            )
            .group_by(DeliveryRow.household_id, DeliveryRow.partner_key)
        )
    }
    return max(candidates, key=lambda c: str(last.get((c.household, c.key)) or ""))


@dataclass(frozen=True, slots=True)
class _Told:
    """An occurrence a message reached this partner about, inside its reply window."""

    occurrence: int
    ritual: Ritual
    recipient: str
    slot: datetime
    at: datetime
    status: str
    last_sent: datetime
    last_due: datetime
    last_body: str
    last_channel: str
    last_subject: str | None
    confirmed_by: frozenset[str]
    skipped_by: frozenset[str]

    @property
    def label(self) -> str:
        return f"{self.ritual.display_name} ({day_text(self.slot)})"


class _Replier:
    def __init__(
        self,
        connection: Connection,
        file: RitualFile,
        partner: _Partner,
        sender: str,
        body: str,
        now: datetime,
        source: str = "sms",
    ) -> None:
        self.c = connection
        self.file = file
        index = _index(file)
        self.household = index.households[partner.household]
        self.partner = next(p for p in self.household.partners if p.id == partner.key)
        self.sender = sender
        self.body = body
        self.now = now
        self.source = source  # recorded with a completion: sms, or cli for `tend reply`
        # The partner's own zone: what they read in answers, where their quiet hours are.
        self.zone = index.zones(self.household)[self.partner.id]
        self.rituals = index.rituals(self.household.id)

    def answer(self, reply: Reply) -> str:
        if reply.problem:
            return reply.problem
        # YES is Twilio's opt-in keyword too: after a STOP it means "text me again", not
        # "done" (Twilio has let them back in; so does Tend).
        if reply.command == "start":
            self._opt_in()
            return BACK_ON
        if reply.opts_in and self._opt_in():
            return BACK_ON
        match reply.command:
            case "confirm":
                return self._confirm(reply.pick)
            case "skip":
                return self._skip(reply.pick, reply.reason)
            case "snooze":
                assert reply.snooze is not None
                return self._snooze(reply)
            case "streak":
                return self._streaks()
            case "help":
                return HELP
            case "stop":
                self._opt_out()
                return ""  # Twilio answers STOP itself, and blocks anything after it
            case "pause":
                assert reply.pause is not None
                return self._pause(reply.pause)
            case "resume":
                return self._resume()
        return f"Sorry, I didn't catch that. {HELP}"

    # ------------------------------------------------------------------ what was told

    def _told(self) -> list[_Told]:
        """Occurrences messaged to this partner within their reply windows, the one the
        last message was about first, then the most recent."""
        if not self.rituals:
            return []
        longest = max(r.reply_window for r in self.rituals.values())
        rows = self.c.execute(
            _TOLD,
            {
                "household": self.household.id,
                "partner": self.partner.id,
                "since": self.now - longest,
            },
        ).all()
        latest: dict[int, Any] = {}
        for row in rows:
            ritual = self.rituals.get(row.ritual_id)
            if ritual is None or row.occurrence_id in latest:
                continue
            if row.sent_at < self.now - ritual.reply_window:
                continue
            latest[row.occurrence_id] = row
        if not latest:
            return []
        confirmed: dict[int, set[str]] = defaultdict(set)
        skipped: dict[int, set[str]] = defaultdict(set)
        for done in self.c.execute(_DONE_BY, {"occurrences": list(latest)}):
            (confirmed if done.action == "confirm" else skipped)[done.occurrence_id].add(
                done.partner_key
            )
        told = []
        for occurrence, row in latest.items():
            told.append(
                _Told(
                    occurrence=occurrence,
                    ritual=self.rituals[row.ritual_id],
                    recipient=row.recipient,
                    slot=row.slot,
                    at=row.at,
                    status=row.status,
                    last_sent=row.sent_at,
                    last_due=row.due_at,
                    last_body=row.body,
                    last_channel=row.channel,
                    last_subject=row.subject,
                    confirmed_by=frozenset(confirmed.get(occurrence, ())),
                    skipped_by=frozenset(skipped.get(occurrence, ())),
                )
            )
        if not told:
            return []
        first = told[0]  # rows came newest message first
        rest = sorted(told[1:], key=lambda t: (t.at, t.occurrence), reverse=True)
        return [first, *rest]

    def _to_confirm(self, told: Sequence[_Told] | None = None) -> list[_Told]:
        """Still to be done: not confirmed (a "both" ritual: not by this partner), not
        skipped, not called off, and not still to come."""
        return [
            t
            for t in (self._told() if told is None else told)
            if t.status == "open"
            and self.partner.id not in t.confirmed_by
            and t.at <= self.now + EARLY
        ]

    @staticmethod
    def _listed(open_: Sequence[_Told], verb: str) -> str:
        items = ", ".join(f"{n}) {t.label}" for n, t in enumerate(open_[:9], start=1))
        if len(open_) == 1:
            return f"{items}. Reply {verb} 1 for it."
        return f"{items}. Reply {verb} 1 or {verb} 2 to pick one."

    def _pick(self, open_: list[_Told], pick: int, verb: str) -> _Told | str:
        if 1 <= pick <= len(open_):
            return open_[pick - 1]
        return f"There is no {pick} open. Open now: {self._listed(open_, verb)}"

    # ------------------------------------------------------------------ commands

    def _confirm(self, pick: int | None) -> str:
        told = self._told()
        open_ = self._to_confirm(told)
        # Done by the other partner already ("either"): this partner's DONE is recorded too.
        theirs = [
            t
            for t in told
            if t.status == "confirmed"
            and self.partner.id not in t.confirmed_by
            and t.at <= self.now + EARLY
        ]
        target: _Told | str
        if pick is not None and open_:
            target = self._pick(open_, pick, "DONE")
        elif pick is None and told and (told[0] in open_ or told[0] in theirs):
            target = told[0]  # what the latest message was about
        elif pick is None and (open_ or theirs):
            target = (open_ or theirs)[0]
        else:
            return self._nothing_to_confirm(told)
        if isinstance(target, str):
            return target
        rules = rules_for(self.file, self.household.id, target.ritual, target.recipient or None)
        done = confirm(
            self.c,
            household=self.household.id,
            occurrence=target.occurrence,
            partner=self.partner.id,
            at=self.now,
            source=self.source,
            raw_text=self.body[:500],
            needs=rules.audience if rules.mode == "both" else (),
        )
        if done.outcome == "cancelled":
            return f"The {target.label} was called off; there is nothing to confirm."
        if done.outcome == "already":
            return f"You had marked the {target.label} as done already. Thank you!"
        if rules.mode == "both" and not rules.audience <= done.confirmed_by:
            waiting = [
                p.name
                for p in self.household.partners
                if p.id in rules.audience - done.confirmed_by
            ]
            text = (
                f"Marked the {target.label} as done for you. It counts for your streak "
                f"when {' and '.join(waiting)} replies DONE too."
            )
        else:
            # Judged although it may still be a few minutes away (EARLY): it is kept now.
            series = self._series(target, include=[target.occurrence])
            streak = series.streak if series else None
            others = [p.name for p in self.household.partners if p.id in target.confirmed_by]
            text = (
                f"{' and '.join(others)} had marked the {target.label} as done; now you have too. "
                if others
                else f"Marked the {target.label} as done. "
            ) + in_a_row(
                target.ritual.kind,
                bool(streak and streak.unit == "weeks"),
                streak.current if streak else 1,
            )
        # Only the target changed: still open is what was open, less it.
        still = [t for t in open_ if t.occurrence != target.occurrence]
        if still:
            text += f" Still open: {self._listed(still, 'DONE')}"
        return text

    def _nothing_to_confirm(self, told: Sequence[_Told]) -> str:
        ahead = [t for t in told if t.at > self.now + EARLY and t.status == "open"]
        if ahead:
            t = ahead[0]
            local = t.at.astimezone(self.zone)
            return (
                f"The {t.ritual.display_name} is on {day_text(local)} at {local:%H:%M}: "
                "reply DONE after it."
            )
        mine = [t for t in told if self.partner.id in t.confirmed_by]
        if mine:
            return f"You had marked the {mine[0].label} as done already. Thank you!"
        skipped = [t for t in told if t.status == "skipped"]
        if skipped:
            return f"The {skipped[0].label} was skipped, so there is nothing to mark as done."
        return NOTHING_OPEN

    def _series(self, told: _Told, include: Sequence[int] = ()) -> SeriesStreak | None:
        for series in household_streaks(
            self.c,
            self.file,
            self.household.id,
            self.now,
            include=include,
            only=(told.ritual.id, told.recipient),
        ):
            if series.ritual.id == told.ritual.id and (series.recipient or "") == told.recipient:
                return series
        return None

    def _skip(self, pick: int | None, reason: str | None) -> str:
        told = self._told()
        # Skippable: not done by anyone, not skipped by this partner; one still to come too
        # (the plan-ahead message's date night).
        skippable = [
            t
            for t in told
            if t.status in ("open", "skipped")
            and self.partner.id not in t.skipped_by
            and not t.confirmed_by
        ]
        target: _Told | str
        if pick is not None:
            # Numbers are those the answers list: what is open now (see _to_confirm).
            listed = self._to_confirm(told)
            if not listed:
                return NOTHING_OPEN
            target = self._pick(listed, pick, "SKIP")
            if not isinstance(target, str) and target not in skippable:
                return f"The {target.label} is marked as done already, so there is nothing to skip."
        elif told and told[0] in skippable:
            target = told[0]  # what the latest message was about
        elif skippable:
            target = skippable[0]
        else:
            return NOTHING_OPEN
        if isinstance(target, str):
            return target
        done = skip(
            self.c,
            household=self.household.id,
            occurrence=target.occurrence,
            partner=self.partner.id,
            at=self.now,
            source=self.source,
            reason=reason,
            freezes_per_month=target.ritual.freezes_per_month,
        )
        if done.outcome == "done":
            return f"The {target.label} is marked as done already, so there is nothing to skip."
        if done.outcome != "skipped":
            return f"The {target.label} was called off; there is nothing to skip."
        text = f"Skipped the {target.label}."
        if done.paused:
            return f"{text} You are paused, so the streak holds."
        series = self._series(target, include=[target.occurrence])
        current = series.streak.current if series else 0
        if done.froze:
            left = done.freezes_left  # in the occurrence's month
            this = target.slot.strftime("%Y-%m") == self.now.astimezone(self.zone).strftime("%Y-%m")
            month = "this month" if this else f"{target.slot:%B}"
            more = (
                f"{left} left {'this month' if this else 'in ' + month}"
                if left
                else (f"that was {month}'s last")
            )
            if current:
                return f"{text} A freeze keeps your streak at {current} ({more})."
            return f"{text} A freeze covers it, so nothing breaks ({more})."
        return f"{text} No freeze left this month, so the streak starts again."

    def _snooze(self, reply: Reply) -> str:
        assert reply.snooze is not None
        open_ = [
            t
            for t in self._told()
            if t.status == "open"
            and self.partner.id not in t.confirmed_by
            and self.partner.id not in t.skipped_by
        ]
        if not open_:
            return NOTHING_OPEN
        target = max(open_, key=lambda t: t.last_sent)  # the message heard last comes again
        zone = self.zone
        quiet: TimeWindow | None = self.partner.quiet_hours
        plain = snooze_until(
            reply.snooze,
            self.now,
            zone,
            at_time=target.last_due.astimezone(zone).time(),
            quiet=None,
        )
        due = snooze_until(
            reply.snooze,
            self.now,
            zone,
            at_time=target.last_due.astimezone(zone).time(),
            quiet=quiet,
        )
        if self.now < target.at <= due:
            # A plan-ahead nudge snoozed past the occurrence itself would come too late.
            local = target.at.astimezone(zone)
            return (
                f"That would be after the {target.ritual.display_name} itself "
                f"({day_text(local)} at {local:%H:%M}): try a shorter snooze, like SNOOZE 2h."
            )
        roles = list(
            self.c.execute(
                select(DeliveryRow.id, DeliveryRow.role, DeliveryRow.status).where(
                    DeliveryRow.occurrence_id == target.occurrence,
                    DeliveryRow.partner_key == self.partner.id,
                    DeliveryRow.role.like(f"{SNOOZE_ROLE}%"),
                )
            )
        )
        waiting = [r for r in roles if r.status == "pending"]
        values = {
            "due_at": due,
            "next_attempt_at": due,
            "expires_at": due + target.ritual.grace,
            "updated_at": self.now,
        }
        if waiting:
            self.c.execute(
                update(DeliveryRow).where(DeliveryRow.id == waiting[0].id).values(values)
            )
        elif len(roles) >= MAX_SNOOZES:
            return (
                f"You have snoozed the {target.label} {MAX_SNOOZES} times. "
                "Reply DONE when it is done, or SKIP."
            )
        else:
            self.c.execute(
                insert(DeliveryRow).values(
                    occurrence_id=target.occurrence,
                    household_id=self.household.id,
                    partner_key=self.partner.id,
                    role=f"{SNOOZE_ROLE}-{len(roles) + 1}",
                    channel=target.last_channel,
                    status="pending",
                    attempts=0,
                    body=target.last_body,
                    subject=target.last_subject,
                    generation=0,
                    created_at=self.now,
                    **values,
                )
            )
        local = due.astimezone(zone)
        when = (
            f"at {local:%H:%M}"
            if local.date() == self.now.astimezone(zone).date()
            else f"on {day_text(local)} at {local:%H:%M}"
        )
        after = " (after your quiet hours)" if due > plain else ""
        return f"OK: Tend will remind you about the {target.label} {when}{after}."

    def _streaks(self) -> str:
        names = {p.id: p.name for p in self.household.partners}
        parts = []
        for series in household_streaks(self.c, self.file, self.household.id, self.now):
            s = series.streak
            name = series.ritual.display_name
            if series.recipient:
                name = f"{name} ({names.get(series.recipient, series.recipient)})"
            if not s.longest:
                continue  # nothing kept yet: zeros say nothing
            unit = " weeks" if s.unit == "weeks" else ""
            parts.append(f"{name} {s.current}{unit} (best {s.longest})")
        if not parts:
            return "No streaks yet: reply DONE after a ritual to start one."
        return "Streaks in a row: " + "; ".join(parts) + "."

    def _opt_out(self) -> None:
        for household, partner in self._same_number():
            record_opt_out(self.c, household, partner, "sms", self.now)

    def _opt_in(self) -> bool:
        back = False
        for household, partner in self._same_number():
            if opted_out_at(self.c, household, partner, "sms") is not None:
                back |= clear_opt_out(self.c, household, partner, "sms")
        return back

    def _same_number(self) -> list[tuple[str, str]]:
        """Every partner with the sender's number: an opt-out belongs to the number."""
        return [
            (r.household_id, r.key)
            for r in self.c.execute(
                select(PartnerRow.household_id, PartnerRow.key).where(
                    PartnerRow.phone == self.sender
                )
            )
        ]

    def _pause(self, length: timedelta) -> str:
        end = self.now + length
        paused_until = self.c.execute(
            select(HouseholdRow.paused_until)
            .where(HouseholdRow.id == self.household.id)
            .with_for_update()
        ).scalar_one_or_none()
        if paused_until is not None and paused_until > self.now:
            self.c.execute(
                update(PauseRow)
                .where(PauseRow.household_id == self.household.id, PauseRow.ends_at > self.now)
                .values(ends_at=end)
            )
            if end < paused_until:  # a shorter pause: what it no longer covers
                self._unpaused(end, paused_until)
        else:
            self.c.execute(
                insert(PauseRow).values(
                    household_id=self.household.id,
                    starts_at=self.now,
                    ends_at=end,
                    partner_key=self.partner.id,
                    created_at=self.now,
                )
            )
        self.c.execute(
            update(HouseholdRow)
            .where(HouseholdRow.id == self.household.id)
            .values(paused_until=end, updated_at=self.now)
        )
        return (
            f"Paused until {day_text(end.astimezone(self.zone))}: no nudges for either of you, and "
            "your streaks hold. Reply RESUME to start again sooner."
        )

    def _unpaused(self, start: datetime, end: datetime) -> None:
        """Skips of occurrences in ``[start, end)``, no longer paused, get a freeze if one is
        left (they needed none while the pause covered them)."""
        unpaused(
            self.c,
            self.household.id,
            start,
            end,
            lambda ritual: self.rituals[ritual].freezes_per_month if ritual in self.rituals else 0,
        )

    def _resume(self) -> str:
        paused_until = self.c.execute(
            select(HouseholdRow.paused_until)
            .where(HouseholdRow.id == self.household.id)
            .with_for_update()
        ).scalar_one_or_none()
        if paused_until is None or paused_until <= self.now:
            return "Tend is not paused. Reply PAUSE 2w for a break of two weeks."
        self.c.execute(
            update(PauseRow)
            .where(PauseRow.household_id == self.household.id, PauseRow.ends_at > self.now)
            .values(ends_at=self.now)
        )
        self.c.execute(
            update(HouseholdRow)
            .where(HouseholdRow.id == self.household.id)
            .values(paused_until=None, updated_at=self.now)
        )
        self._unpaused(self.now, paused_until)
        return "Welcome back! Nudges start again, and your streaks go on from here."
