"""The one path for "a partner did X": done, skip, snooze, pause, resume, opt-out and
opt-in, a TELL passed on, each recorded in the transaction it is given and returning what happened.

The SMS webhook and ``tend reply`` (:mod:`scheduler.acts.replies`) and the e-mail's confirm
link (``tend web``) all come here; what the partner is told is
:mod:`scheduler.acts.wording`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from config.model import Household, Partner, Ritual, RitualFile
from rituals.clock import resolve
from rituals.pulse import shared_line
from scheduler.acts.targets import EARLY, Open
from scheduler.ledger import Records
from scheduler.ledger.completions import Confirmed, Skipped
from scheduler.ledger.ratings import PULSE_SHARE_ROLE
from scheduler.reports.streaks import rules_for

__all__ = [
    "MAX_SNOOZES",
    "MAX_TELLS_PER_DAY",
    "TELL_GRACE",
    "Done",
    "Look",
    "Passed",
    "PassedTo",
    "Rating",
    "Snoozed",
    "confirm",
    "look",
    "needs_for",
    "opt_in",
    "opt_out",
    "pause",
    "rate",
    "resume",
    "skip",
    "snooze",
    "tell",
    "too_early",
    "unsubscribe",
]

MAX_SNOOZES = 3  # per partner and occurrence
MAX_TELLS_PER_DAY = 5  # TELLs a partner may pass on in one of their local days
# A TELL not sent this long after it was due (the worker was down) is missed, as a nudge
# past its ritual's grace is: a thank-you two days late reads oddly.
TELL_GRACE = timedelta(hours=12)


def too_early(at: datetime, now: datetime) -> bool:
    """Whether an occurrence at `at` is still too far ahead to be confirmed at `now`."""
    return at > now + EARLY


def needs_for(
    file: RitualFile | None, household: str, ritual: str, recipient: str
) -> frozenset[str]:
    """Who must confirm an occurrence of `ritual` before it counts: everyone it is for, for
    a ``streak = "both"`` ritual; nobody's confirmation is waited for otherwise (nor for a
    ritual or household the file no longer has)."""
    if file is None:
        return frozenset()
    households, rituals = _lookups(file)
    found = rituals.get(ritual)
    if household not in households or found is None or found.streak != "both":
        return frozenset()
    return rules_for(file, household, found, recipient or None).audience


_LOOKUPS: dict[int, tuple[RitualFile, frozenset[str], dict[str, Ritual]]] = {}


def _lookups(file: RitualFile) -> tuple[frozenset[str], dict[str, Ritual]]:
    """The file's household ids and rituals by id, kept for the few latest files: a web
    process answers every reply by one file, which can hold 100,000 households."""
    found = _LOOKUPS.get(id(file))
    if found is None or found[0] is not file:
        rituals: dict[str, Ritual] = {}
        for r in file.rituals:
            rituals.setdefault(r.id, r)
        found = (file, frozenset(h.id for h in file.households), rituals)
        if len(_LOOKUPS) >= 4:
            _LOOKUPS.clear()
        _LOOKUPS[id(file)] = found
    return found[1], found[2]


@dataclass(frozen=True, slots=True)
class Done:
    """A confirmation, as recorded (or, from :func:`look`, as it would be)."""

    confirmed: Confirmed
    needs: frozenset[str] = frozenset()

    @property
    def counts(self) -> bool:
        """Everyone who must confirm has."""
        return self.needs <= self.confirmed.confirmed_by

    @property
    def waiting(self) -> frozenset[str]:
        return self.needs - self.confirmed.confirmed_by


def confirm(
    tx: Records,
    *,
    household: str,
    partner: str,
    occurrence: int,
    at: datetime,
    source: str,
    needs: frozenset[str],
    raw_text: str | None = None,
) -> Done:
    """`partner` did `occurrence`: recorded once (``already`` after that). It is
    ``confirmed`` for the household once everyone in `needs` (see :func:`needs_for`) has."""
    done = tx.completions.confirm(
        household=household,
        occurrence=occurrence,
        partner=partner,
        at=at,
        source=source,
        raw_text=raw_text,
        needs=needs,
    )
    return Done(done, needs)


@dataclass(frozen=True, slots=True)
class Look:
    """What a confirm link would do now: ``unknown`` (no such occurrence or partner),
    ``not_yet`` (it happens at `at`; nothing to confirm before), or ``ready`` (`done` says
    what a confirmation would record, or that there is none to make)."""

    state: Literal["unknown", "not_yet", "ready"]
    done: Done | None = None
    at: datetime | None = None


def look(
    tx: Records,
    file: RitualFile | None,
    *,
    household: str,
    partner: str,
    occurrence: int,
    now: datetime,
) -> Look:
    """What confirming `occurrence` for `partner` would do at `now`; reads only."""
    seen = tx.completions.look_before_confirming(
        household=household, occurrence=occurrence, partner=partner
    )
    if seen.outcome == "unknown":
        return Look("unknown")
    found = tx.occurrences.find(occurrence)
    if found is None:
        return Look("ready", Done(seen))
    needs = needs_for(file, household, found.ritual, found.recipient)
    if found.status != "cancelled" and too_early(found.at, now):
        # A plan-ahead message's link: nothing to confirm before it happens.
        return Look("not_yet", at=found.at)
    return Look("ready", Done(seen, needs))


def skip(
    tx: Records,
    *,
    household: str,
    partner: str,
    target: Open,
    at: datetime,
    source: str,
    reason: str | None,
) -> Skipped:
    """`partner` skips `target`: it is marked skipped, its messages still to come are
    cancelled, and a freeze is used when one is left."""
    return tx.completions.skip(
        household=household,
        occurrence=target.occurrence,
        partner=partner,
        at=at,
        source=source,
        reason=reason,
        freezes_per_month=target.ritual.freezes_per_month,
    )


@dataclass(frozen=True, slots=True)
class Snoozed:
    """``moved``: a snoozed copy still waiting comes at the new time; ``added``: a new one;
    ``limit``: the partner has snoozed it :data:`MAX_SNOOZES` times."""

    outcome: Literal["moved", "added", "limit"]


def snooze(
    tx: Records, *, household: str, partner: str, target: Open, due: datetime, now: datetime
) -> Snoozed:
    """The message `target` is about comes again at `due` (at most :data:`MAX_SNOOZES`)."""
    roles = tx.occurrences.snoozes(target.occurrence, partner)
    waiting = [r for r in roles if r.status == "pending"]
    values = {
        "due_at": due,
        "next_attempt_at": due,
        "expires_at": due + target.ritual.grace,
        "updated_at": now,
    }
    if waiting:
        tx.occurrences.move_snooze(waiting[0].id, values)
        return Snoozed("moved")
    if len(roles) >= MAX_SNOOZES:
        return Snoozed("limit")
    tx.occurrences.add_snooze(
        occurrence=target.occurrence,
        channel=target.last_channel,
        body=target.last_body,
        subject=target.last_subject,
        household=household,
        partner=partner,
        number=len(roles) + 1,
        now=now,
        values=values,
    )
    return Snoozed("added")


def _freezes(file: RitualFile, household: str) -> dict[str, int]:
    return {
        r.id: r.freezes_per_month
        for r in file.rituals
        if r.households is None or household in r.households
    }


def pause(
    tx: Records,
    file: RitualFile,
    *,
    household: str,
    partner: str,
    now: datetime,
    length: timedelta,
) -> datetime:
    """A vacation for the household until ``now + length`` (one in force is made longer or
    shorter); returns its end."""
    end = now + length
    paused_until = tx.completions.paused_until(household)
    if paused_until is not None and paused_until > now:
        tx.completions.extend_pause(household, now, end)
        if end < paused_until:  # a shorter pause: what it no longer covers
            _unpaused(tx, file, household, end, paused_until)
    else:
        tx.completions.start_pause(household, partner, now, end)
    tx.completions.set_paused_until(household, end, now)
    return end


def resume(tx: Records, file: RitualFile, *, household: str, now: datetime) -> bool:
    """End the household's pause now; False when it was not paused."""
    paused_until = tx.completions.paused_until(household)
    if paused_until is None or paused_until <= now:
        return False
    tx.completions.extend_pause(household, now, now)
    tx.completions.set_paused_until(household, None, now)
    _unpaused(tx, file, household, now, paused_until)
    return True


def _unpaused(
    tx: Records, file: RitualFile, household: str, start: datetime, end: datetime
) -> None:
    """Skips of occurrences in ``[start, end)``, no longer paused, get a freeze if one is
    left (they needed none while the pause covered them)."""
    freezes = _freezes(file, household)
    tx.completions.unpaused(household, start, end, lambda ritual: freezes.get(ritual, 0))


def opt_out(tx: Records, *, phone: str, now: datetime) -> None:
    """The number opted out of texts (STOP): every partner with it."""
    for household, partner in tx.partners.sharing_number(phone):
        tx.partners.record_opt_out(household, partner, "sms", now)


def opt_in(tx: Records, *, phone: str) -> bool:
    """The number opted back in (START); False when none of its partners had opted out."""
    back = False
    for household, partner in tx.partners.sharing_number(phone):
        if tx.partners.opted_out_at(household, partner, "sms") is not None:
            back |= tx.partners.clear_opt_out(household, partner, "sms")
    return back


def unsubscribe(tx: Records, *, household: str, partner: str, channel: str, now: datetime) -> bool:
    """The partner opted out of `channel` (an e-mail's unsubscribe link); False when the
    ledger has no such partner."""
    return tx.partners.record_opt_out(household, partner, channel, now)


@dataclass(frozen=True, slots=True)
class PassedTo:
    """A partner a TELL goes to, and when (UTC): now, or at the end of their quiet hours."""

    partner: str
    name: str
    due: datetime


@dataclass(frozen=True, slots=True)
class Passed:
    """What a TELL did. ``queued``: on its way to `to`; ``alone``: the household has no
    other partner; ``unreachable``: the other partner opted out of every channel they have
    (nothing queued; `to` names them); ``limit``: the sender passed on
    :data:`MAX_TELLS_PER_DAY` today already (nothing queued)."""

    outcome: Literal["queued", "alone", "unreachable", "limit"]
    to: tuple[PassedTo, ...] = ()


def tell(
    tx: Records,
    *,
    household: Household,
    sender: Partner,
    text: str,
    inbound_id: str,
    now: datetime,
    zones: Mapping[str, ZoneInfo],
) -> Passed:
    """`sender`'s `text` passed on to the household's other partner as ``"Alex: <text>"``,
    on their first channel, after their quiet hours: a delivery the dispatcher sends like
    any other (retries, fallback, opt-outs), made once per inbound message `inbound_id`."""
    # The planner's rule, imported late as rituals.replies does: planning imports the decks
    # and templates, which the web's start-up does not need.
    from rituals.planning import after_quiet_hours

    others = [p for p in household.partners if p.id != sender.id]
    if not others:
        return Passed("alone")
    local = now.astimezone(zones[sender.id])
    day_start = resolve(datetime.combine(local.date(), time()), zones[sender.id])
    if tx.tells.sent_since(household.id, sender.id, day_start) >= MAX_TELLS_PER_DAY:
        return Passed("limit")
    reachable = [p for p in others if _reachable(tx, household.id, p)]
    if not reachable:
        return Passed("unreachable", tuple(PassedTo(p.id, p.name, now) for p in others))
    to = []
    for partner in reachable:
        due = after_quiet_hours(now, partner.quiet_hours, zones[partner.id])
        tx.tells.pass_on(
            inbound_id=inbound_id,
            household=household.id,
            partner=partner.id,
            channel=partner.channels[0],
            body=f"{sender.name}: {text}",
            subject=f"{sender.name} passed on an appreciation",
            due=due,
            expires=due + TELL_GRACE,
            now=now,
        )
        to.append(PassedTo(partner.id, partner.name, due))
    return Passed("queued", tuple(to))


def _reachable(tx: Records, household: str, partner: Partner) -> bool:
    """Whether any of the partner's channels may take a message (not opted out of)."""
    return any(
        channel == "console" or tx.partners.opted_out_at(household, partner.id, channel) is None
        for channel in partner.channels
    )


@dataclass(frozen=True, slots=True)
class Rating:
    """What a rating did: ``new`` or ``replaced`` (the partner's earlier rating of the same
    check-in); `done` the DONE it counts as; `shared` the line with both ratings when this
    rating was the last of a ``share_pulse`` household's (queued to the others, and for the
    rater's own answer)."""

    outcome: Literal["new", "replaced"]
    done: Done
    shared: str | None = field(default=None, repr=False)


def rate(
    tx: Records,
    *,
    household: Household,
    partner: Partner,
    target: Open,
    rating: int,
    at: datetime,
    source: str,
    needs: frozenset[str],
    inbound_id: str,
    zones: Mapping[str, ZoneInfo],
) -> Rating:
    """`partner` rates `target` (a pulse check-in) `rating` (1-5), in place of an earlier
    rating of theirs, and it counts as their DONE (through :func:`confirm`). The rating is
    theirs alone; with ``share_pulse``, once every partner has rated, each gets one line
    with all ratings (the others as a message after their quiet hours)."""
    from rituals.planning import after_quiet_hours  # imported late, as in tell()

    outcome = tx.ratings.record(
        household=household.id,
        partner=partner.id,
        occurrence=target.occurrence,
        rating=rating,
        at=at,
        inbound_id=inbound_id,
    )
    done = confirm(
        tx,
        household=household.id,
        partner=partner.id,
        occurrence=target.occurrence,
        at=at,
        source=source,
        needs=needs,
        raw_text="rating",  # the rating is the partner's: kept with the rating only
    )
    shared = None
    if household.share_pulse and outcome == "new" and len(household.partners) > 1:
        ratings = tx.ratings.of(target.occurrence)
        if all(p.id in ratings for p in household.partners):
            shared = shared_line([(p.name, ratings[p.id]) for p in household.partners])
            for other in household.partners:
                if other.id == partner.id:
                    continue
                due = after_quiet_hours(at, other.quiet_hours, zones[other.id])
                tx.tells.pass_on(
                    inbound_id=inbound_id,
                    household=household.id,
                    partner=other.id,
                    channel=other.channels[0],
                    body=shared,
                    subject="Tend: your check-in pulse",
                    due=due,
                    expires=due + TELL_GRACE,
                    now=at,
                    role=PULSE_SHARE_ROLE,
                )
    return Rating(outcome, done, shared)
