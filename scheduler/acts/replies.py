"""A partner's reply by SMS (or ``tend reply``): the one code path behind
``POST /twilio/sms``.

Each inbound message is recorded once, by the provider's id (and Twilio's idempotency token
when it sent one): a retried webhook finds the first answer and gets it again, with nothing
applied twice. The sender's number finds the partner; an unknown number gets a short answer
that says nothing about any household, once a day (every answer is an SMS someone pays for;
its messages after it are recorded, unanswered). A sender over :data:`RATE_LIMIT` messages
a minute is answered once, politely, and then not at all until the minute has passed; those
messages are recorded but not applied.

What the reply is about is :mod:`scheduler.acts.targets`'; what it records,
:mod:`scheduler.acts.acts`'; what the partner is told, :mod:`scheduler.acts.wording`'s.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import phonenumbers

from config.model import Household, Ritual, RitualFile, mask_address
from rituals.pulse import TREND_WEEKS, trend
from rituals.replies import HELP, Reply, parse, snooze_until
from scheduler.acts import acts, targets, wording
from scheduler.acts.targets import Open
from scheduler.ledger import Conflict, Ledger, Records
from scheduler.reports.streaks import SeriesStreak, household_streaks

if TYPE_CHECKING:
    from notifiers.links import Links

__all__ = [
    "RATE_LIMIT",
    "RATE_WINDOW",
    "STRANGER_WINDOW",
    "Answer",
    "handle_reply",
    "normalize_number",
    "press",
    "told_to",
]

log = logging.getLogger("scheduler.replies")

RATE_LIMIT = 20  # messages a sender may send in RATE_WINDOW before they are not applied
RATE_WINDOW = timedelta(minutes=1)
STRANGER_WINDOW = timedelta(days=1)  # an unknown number is answered once in this long
MAX_BODY = 1600  # Twilio's longest SMS; anything longer is kept cut to this


@dataclass(frozen=True, slots=True)
class Answer:
    text: str  # "" answers nothing (STOP: Twilio answers it)
    command: str  # what was asked (see InboundMessageRow.command)
    duplicate: bool = False  # a retry of a message already answered
    household: str | None = None
    partner: str | None = None


def handle_reply(
    ledger: Ledger,
    file: RitualFile,
    *,
    sender: str,
    body: str,
    provider_id: str,
    now: datetime,
    idempotency_token: str | None = None,
    channel: str = "sms",
    source: str = "sms",
    links: Links | None = None,
) -> Answer:
    """Apply one inbound message and return the answer to send back, exactly once.

    `links`: the deployment's signed links (a public URL and a secret key are set), for
    the page link a ``streak_link`` household's STREAK answer carries."""
    sender = normalize_number(sender)
    body = body.replace("\x00", "")[:MAX_BODY]  # PostgreSQL text cannot hold NUL
    for attempt in (1, 2):
        try:
            with ledger.transaction() as tx:
                earlier = _earlier(tx, provider_id, idempotency_token)
                if earlier is not None:
                    return earlier
                answer = _handle(tx, file, sender, body, now, source, provider_id, links)
                tx.inbound.record(
                    provider_id=provider_id,
                    idempotency_token=idempotency_token,
                    channel=channel,
                    sender=sender,
                    household=answer.household,
                    partner=answer.partner,
                    body=body,
                    answer=answer.text,
                    command=answer.command,
                    received_at=now,
                )
            break
        except Conflict:
            # The same message, handled at the same moment by another request: its answer.
            # Or another message of the partner's won a race for a row (two SNOOZEs at
            # once): everything here was rolled back, so it is applied again, once.
            earlier = _earlier(ledger, provider_id, idempotency_token)
            if earlier is not None:
                return earlier
            if attempt == 2:
                raise
    who = f"{answer.household}/{answer.partner}" if answer.partner else mask_address(sender)
    log.info("reply from %s: %s", who, answer.command)
    return answer


def told_to(
    tx: Records, file: RitualFile, *, household: str, partner: str, now: datetime
) -> list[Open]:
    """What a reply from `partner` could be about now (see :mod:`scheduler.acts.targets`):
    the couple's page lists these with their buttons. Empty for a partner the file lacks."""
    if (household, partner) not in _index(file).known:
        return []
    return _Replier(tx, file, _Partner(household, partner), "", "", now)._told()


def press(
    ledger: Ledger,
    file: RitualFile,
    *,
    household: str,
    partner: str,
    occurrence: int,
    action: str,
    now: datetime,
) -> str:
    """A DONE or SKIP button of the couple's page (`action` "done" or "skip"), applied as
    the same reply by SMS would be, to that occurrence: the command it recorded, or
    "nothing" (not open for this partner; a second press of the same button finds it done
    and records nothing again)."""
    if (household, partner) not in _index(file).known:
        return "nothing"
    for attempt in (1, 2):
        try:
            with ledger.transaction() as tx:
                replier = _Replier(tx, file, _Partner(household, partner), "", "", now, "web")
                return replier.press(occurrence, action)
        except Conflict:
            if attempt == 2:
                raise
    return "nothing"  # pragma: no cover: the loop returns or raises


@lru_cache(maxsize=4096)  # phonenumbers parses in pure Python: a partner's number, once
def normalize_number(sender: str) -> str:
    """E.164 when it is a phone number (``+1 555-123-0001`` -> ``+15551230001``)."""
    text = sender.strip()
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return text[:320]
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def _earlier(ledger: Records, provider_id: str, token: str | None) -> Answer | None:
    found = ledger.inbound.earlier(provider_id, token)
    if found is None:
        return None
    return Answer(found.answer, found.command, True, found.household, found.partner)


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

    def zones(self, household: Household) -> dict[str, ZoneInfo]:
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
    tx: Records,
    file: RitualFile,
    sender: str,
    body: str,
    now: datetime,
    source: str = "sms",
    provider_id: str = "",
    links: Links | None = None,
) -> Answer:
    found = _partner(tx, file, sender)
    reply = parse(body)
    recent = tx.inbound.recent(sender, now - RATE_WINDOW)
    # An opt-out or opt-in always counts, however many messages came before it.
    if recent >= RATE_LIMIT and reply.command not in ("stop", "start"):
        # Said once; the messages after it in the same minute get no answer at all (every
        # answer is an SMS someone pays for, a stranger's too).
        said = wording.LIMITED if recent == RATE_LIMIT else ""
        if found is None:
            return Answer(said if _may_answer(tx, sender, now) else "", "limited")
        return Answer(said, "limited", household=found.household, partner=found.key)
    if found is None:
        return Answer(wording.STRANGER if _may_answer(tx, sender, now) else "", "stranger")
    replier = _Replier(tx, file, found, sender, body, now, source, provider_id, links)
    text = replier.answer(reply)
    return Answer(text, reply.command, household=found.household, partner=found.key)


def _may_answer(tx: Records, sender: str, now: datetime) -> bool:
    """Whether an unknown number may be answered: not when it was in the last day."""
    return not tx.inbound.stranger_answered_since(sender, now - STRANGER_WINDOW)


def _partner(tx: Records, file: RitualFile, sender: str) -> _Partner | None:
    """The partner with this number; with several (one person in two households), the one
    Tend texted last."""
    known = _index(file).known
    candidates = [_Partner(h, k) for h, k in tx.partners.with_phone(sender) if (h, k) in known]
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    last = tx.partners.last_texted([(c.household, c.key) for c in candidates])
    return max(candidates, key=lambda c: str(last.get((c.household, c.key)) or ""))


class _Replier:
    """One reply from a known partner: what it is about, what it records, what it says."""

    def __init__(
        self,
        tx: Records,
        file: RitualFile,
        partner: _Partner,
        sender: str,
        body: str,
        now: datetime,
        source: str = "sms",
        provider_id: str = "",
        links: Links | None = None,
    ) -> None:
        self.tx = tx
        self.links = links
        self.provider_id = provider_id  # the inbound message's id: a TELL is made once by it
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
            acts.opt_in(self.tx, phone=self.sender)
            return wording.BACK_ON
        if reply.opts_in and acts.opt_in(self.tx, phone=self.sender):
            return wording.BACK_ON
        match reply.command:
            case "confirm":
                return self._confirm(reply.pick)
            case "skip":
                return self._skip(reply.pick, reply.reason)
            case "snooze":
                return self._snooze(reply)
            case "streak":
                return self._streaks()
            case "tell":
                assert reply.text is not None
                return self._tell(reply.text)
            case "rate":
                assert reply.rating is not None
                return self._rate(reply.rating)
            case "pulse":
                return self._pulse()
            case "help":
                return HELP
            case "stop":
                acts.opt_out(self.tx, phone=self.sender, now=self.now)
                return ""  # Twilio answers STOP itself, and blocks anything after it
            case "pause":
                assert reply.pause is not None
                end = acts.pause(
                    self.tx,
                    self.file,
                    household=self.household.id,
                    partner=self.partner.id,
                    now=self.now,
                    length=reply.pause,
                )
                return wording.paused(end, self.zone)
            case "resume":
                if acts.resume(self.tx, self.file, household=self.household.id, now=self.now):
                    return wording.WELCOME_BACK
                return wording.NOT_PAUSED
        return wording.NOT_UNDERSTOOD

    def _told(self) -> list[Open]:
        """Occurrences messaged to this partner within their reply windows, the one the
        last message was about first, then the most recent."""
        if not self.rituals:
            return []
        longest = max(r.reply_window for r in self.rituals.values())
        rows = self.tx.occurrences.told(self.household.id, self.partner.id, self.now - longest)
        latest = targets.latest_per_occurrence(rows, self.rituals, self.now)
        if not latest:
            return []
        confirmed, skipped = self.tx.occurrences.done_by(list(latest))
        return targets.open_for(latest, self.rituals, confirmed, skipped)

    def press(self, occurrence: int, action: str) -> str:
        """A page's button about `occurrence`: recorded as DONE or SKIP by SMS would."""
        told = self._told()
        target = targets.button_target(told, self.partner.id, self.now, occurrence, action)
        if target is None:
            return "nothing"
        if action == "skip":
            acts.skip(
                self.tx,
                household=self.household.id,
                partner=self.partner.id,
                target=target,
                at=self.now,
                source=self.source,
                reason=None,
            )
            return "skip"
        acts.confirm(
            self.tx,
            household=self.household.id,
            partner=self.partner.id,
            occurrence=target.occurrence,
            at=self.now,
            source=self.source,
            needs=acts.needs_for(self.file, self.household.id, target.ritual.id, target.recipient),
            raw_text="page",
        )
        return "confirm"

    def _confirm(self, pick: int | None) -> str:
        told = self._told()
        target = targets.confirm_target(told, self.partner.id, self.now, pick)
        if target is None:
            return wording.nothing_to_confirm(told, self.partner.id, self.now, self.zone)
        if isinstance(target, targets.Pick):
            return wording.no_such_pick(target, "DONE")
        needs = acts.needs_for(self.file, self.household.id, target.ritual.id, target.recipient)
        done = acts.confirm(
            self.tx,
            household=self.household.id,
            partner=self.partner.id,
            occurrence=target.occurrence,
            at=self.now,
            source=self.source,
            needs=needs,
            raw_text=self.body[:500],
        )
        names = {p.id: p.name for p in self.household.partners}
        streak = None
        if done.confirmed.outcome not in ("cancelled", "already") and not done.waiting:
            # Judged although it may still be a few minutes away (EARLY): it is kept now.
            series = self._series(target, include=[target.occurrence])
            streak = series.streak if series else None
        open_ = targets.to_confirm(told, self.partner.id, self.now)
        return wording.confirmed(
            target,
            done,
            waiting=[names[p] for p in names if p in done.waiting],
            others=[names[p] for p in names if p in target.confirmed_by],
            weekly=bool(streak and streak.unit == "weeks"),
            current=streak.current if streak else 1,
            # Only the target changed: still open is what was open, less it.
            still=[t for t in open_ if t.occurrence != target.occurrence],
        )

    def _series(self, told: Open, include: list[int]) -> SeriesStreak | None:
        for series in household_streaks(
            self.tx,
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
        target = targets.skip_target(told, self.partner.id, self.now, pick)
        if target is None:
            return wording.NOTHING_OPEN
        if isinstance(target, targets.Pick):
            return wording.no_such_pick(target, "SKIP")
        if target not in targets.skippable(told, self.partner.id):
            return wording.already_done(target)
        done = acts.skip(
            self.tx,
            household=self.household.id,
            partner=self.partner.id,
            target=target,
            at=self.now,
            source=self.source,
            reason=reason,
        )
        current = 0
        if done.outcome == "skipped" and not done.paused:
            series = self._series(target, include=[target.occurrence])
            current = series.streak.current if series else 0
        this_month = target.slot.strftime("%Y-%m") == self.now.astimezone(self.zone).strftime(
            "%Y-%m"
        )
        return wording.skipped(target, done, current=current, this_month=this_month)

    def _snooze(self, reply: Reply) -> str:
        assert reply.snooze is not None
        target = targets.snooze_target(self._told(), self.partner.id)
        if target is None:
            return wording.NOTHING_OPEN
        at_time = target.last_due.astimezone(self.zone).time()
        plain = snooze_until(reply.snooze, self.now, self.zone, at_time=at_time, quiet=None)
        due = snooze_until(
            reply.snooze, self.now, self.zone, at_time=at_time, quiet=self.partner.quiet_hours
        )
        if self.now < target.at <= due:
            # A plan-ahead nudge snoozed past the occurrence itself would come too late.
            return wording.snooze_too_late(target, self.zone)
        done = acts.snooze(
            self.tx,
            household=self.household.id,
            partner=self.partner.id,
            target=target,
            due=due,
            now=self.now,
        )
        return wording.snoozed(
            target, done, due=due, now=self.now, zone=self.zone, quiet=due > plain
        )

    def _tell(self, text: str) -> str:
        zones = _index(self.file).zones(self.household)
        passed = acts.tell(
            self.tx,
            household=self.household,
            sender=self.partner,
            text=text,
            inbound_id=self.provider_id,
            now=self.now,
            zones=zones,
        )
        counted = False
        if passed.outcome == "queued":
            # Passing an appreciation on is doing the appreciation nudge, if one is open.
            target = targets.tell_target(self._told(), self.partner.id, self.now)
            if target is not None:
                acts.confirm(
                    self.tx,
                    household=self.household.id,
                    partner=self.partner.id,
                    occurrence=target.occurrence,
                    at=self.now,
                    source=self.source,
                    needs=acts.needs_for(
                        self.file, self.household.id, target.ritual.id, target.recipient
                    ),
                    raw_text="TELL",  # the words are the partners': kept with the TELL only
                )
                counted = True
        return wording.passed_on(passed, now=self.now, zone=self.zone, zones=zones, counted=counted)

    def _rate(self, rating: int) -> str:
        told = self._told()
        target = targets.rate_target(told, self.partner.id, self.now)
        if target is None:
            return wording.NOTHING_TO_RATE
        zones = _index(self.file).zones(self.household)
        rated = acts.rate(
            self.tx,
            household=self.household,
            partner=self.partner,
            target=target,
            rating=rating,
            at=self.now,
            source=self.source,
            needs=acts.needs_for(self.file, self.household.id, target.ritual.id, target.recipient),
            inbound_id=self.provider_id,
            zones=zones,
        )
        done = rated.done
        names = {p.id: p.name for p in self.household.partners}
        streak = None
        if done.confirmed.outcome not in ("cancelled", "already") and not done.waiting:
            series = self._series(target, include=[target.occurrence])
            streak = series.streak if series else None
        done_text = wording.confirmed(
            target,
            done,
            waiting=[names[p] for p in names if p in done.waiting],
            others=[names[p] for p in names if p in target.confirmed_by],
            weekly=bool(streak and streak.unit == "weeks"),
            current=streak.current if streak else 1,
            still=[],
        )
        return wording.rated(rated.outcome, rating, done_text, rated.shared)

    def _pulse(self) -> str:
        since = self.now - timedelta(weeks=TREND_WEEKS)
        mine = self.tx.ratings.by_partner(self.household.id, since, self.now, self.partner.id)
        return trend(mine.get(self.partner.id, []), self.now)

    def _streaks(self) -> str:
        names = {p.id: p.name for p in self.household.partners}
        parts = []
        for series in household_streaks(self.tx, self.file, self.household.id, self.now):
            s = series.streak
            name = series.ritual.display_name
            if series.recipient:
                name = f"{name} ({names.get(series.recipient, series.recipient)})"
            if not s.longest:
                continue  # nothing kept yet: zeros say nothing
            parts.append((name, s.current, s.longest, s.unit == "weeks"))
        return wording.streaks(parts, self._page_link())

    def _page_link(self) -> str | None:
        """The partner's own page, when the household wants it in the STREAK answer
        (``streak_link``: a link costs an SMS segment) and Tend knows its public URL."""
        wanted = self.household.streak_link
        if self.links is None or not (self.file.streak_link if wanted is None else wanted):
            return None
        generation = self.tx.pages.generation(self.household.id, self.partner.id)
        return self.links.page_url(self.household.id, self.partner.id, generation)
