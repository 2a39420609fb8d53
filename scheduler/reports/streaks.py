"""Streaks from the ledger: reads occurrences, completions, deliveries and pauses (through
:mod:`scheduler.ledger.streaks`), hands them to the pure maths in :mod:`rituals.streaks`,
and keeps a checkpoint per streak.

The cost stays flat as history grows. A streak's settled history (occurrences older than
the reply window plus the life of a confirm link, so nothing can change them any more) is
folded once into a checkpoint; each computation then reads only what came after it, or the
last 12 weeks for the completion rate, whichever reaches further back: an indexed, bounded
query. A completion recorded for an occurrence older than the checkpoint (a late confirm
link) throws the checkpoint away; so does a change of the ritual's streak rules.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from functools import lru_cache
from zoneinfo import ZoneInfo

from config.model import Partner, Ritual, RitualFile
from notifiers.links import CONFIRM_MAX_AGE
from rituals.clock import get_zone, resolve
from rituals.schedule import FixedSchedule, Schedule
from rituals.streaks import (
    RATE_WEEKS,
    Entry,
    Outcome,
    Pause,
    Rules,
    State,
    Streak,
    fold,
    frequency_of,
    judge,
    summarize,
)
from scheduler.ledger import Records

__all__ = ["SeriesStreak", "household_streaks", "rules_for"]

# A checkpoint moves on when at least this much more history has settled: one write a week
# per streak, not one per read.
ADVANCE_EVERY = timedelta(days=7)
EVER = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class SeriesStreak:
    """One streak: a household's ritual (one partner's, for a ``to = "each"`` ritual)."""

    household: str
    ritual: Ritual
    recipient: str | None
    streak: Streak
    judged: tuple[tuple[int, Outcome], ...]  # recent (occurrence id, outcome), oldest first

    def outcome_of(self, occurrence: int) -> Outcome | None:
        return next((o for i, o in self.judged if i == occurrence), None)


_PARTNERS: dict[int, tuple[RitualFile, dict[str, list[Partner]]]] = {}


def _partners(file: RitualFile, household: str) -> list[Partner]:
    """The partners of `household`, by a lookup kept for the few latest files rather than
    a scan of every household (a web process answers many replies by one file)."""
    found = _PARTNERS.get(id(file))
    if found is None or found[0] is not file:
        found = (file, {h.id: h.partners for h in file.households})
        if len(_PARTNERS) >= 4:
            _PARTNERS.clear()
        _PARTNERS[id(file)] = found
    partners = found[1].get(household)
    if partners is None:  # not in the file: fails as a scan would
        return next(h.partners for h in file.households if h.id == household)
    return partners


@lru_cache(maxsize=1024)
def _fixed_frequency(schedule: FixedSchedule) -> Fraction:
    return frequency_of(schedule)


def _frequency(schedule: Schedule) -> Fraction:
    """`frequency_of`, kept for fixed schedules: it counts a year of slots."""
    if isinstance(schedule, FixedSchedule):
        return _fixed_frequency(schedule)
    return frequency_of(schedule)


def rules_for(file: RitualFile, household: str, ritual: Ritual, recipient: str | None) -> Rules:
    """The streak rules of a ritual for one household (and recipient)."""
    partners = _partners(file, household)
    if recipient:
        audience = frozenset({recipient})
    elif ritual.to in ("both", "each"):
        audience = frozenset(p.id for p in partners)
    else:
        audience = frozenset({ritual.to})
    return Rules(
        mode=ritual.streak,
        audience=audience,
        freezes_per_month=ritual.freezes_per_month,
        reply_window=ritual.reply_window,
        frequency=_frequency(ritual.schedule),
    )


def _series(file: RitualFile, household: str) -> list[tuple[Ritual, str | None]]:
    partners = _partners(file, household)
    found: list[tuple[Ritual, str | None]] = []
    for ritual in file.rituals:
        if ritual.households is not None and household not in ritual.households:
            continue
        if ritual.to == "each":
            found.extend((ritual, p.id) for p in partners)
        else:
            found.append((ritual, None))
    return found


def _settled_before(
    now: datetime, rules: Rules, zone: ZoneInfo, entries: Sequence[Entry], pauses: Sequence[Pause]
) -> datetime:
    """The local midnight before which nothing can change any more: older than the reply
    window and a confirm link's life, and before any occurrence still open (one snoozed
    again and again is told late, so its reply window closes late)."""
    line = now - rules.reply_window - CONFIRM_MAX_AGE - timedelta(days=1)
    for entry in entries:
        if entry.at >= line:
            break
        if judge(entry, rules, pauses, now) is Outcome.OPEN:
            line = entry.at
            break
    return resolve(datetime.combine(line.astimezone(zone).date(), datetime.min.time()), zone)


def household_streaks(
    ledger: Records,
    file: RitualFile,
    household: str,
    now: datetime,
    *,
    include: Collection[int] = (),
    save: bool = True,
    only: tuple[str, str] | None = None,
) -> list[SeriesStreak]:
    """Every streak of `household` at `now`, in the file's order of rituals.

    `include`: occurrences to judge although they are still to come (a skip of next
    Friday's date night uses a freeze now). `save`: write checkpoints that moved on.
    `only`: just the streak of this (ritual, recipient; "" for the couple), as an answer
    about one occurrence needs: the others are not folded.
    """
    series = _series(file, household)
    if only is not None:
        series = [(r, who) for r, who in series if (r.id, who or "") == only]
    if not series:
        return []
    zone_name = ledger.streaks.zone(household)
    if zone_name is None:
        return []
    zone = get_zone(zone_name)
    today = now.astimezone(zone).date()
    rules = {(r.id, who): rules_for(file, household, r, who) for r, who in series}
    checkpoints = _checkpoints(ledger, household, rules, zone_name)
    # One query reaches back to the oldest point any streak needs: its checkpoint, or the
    # start of the month 12 weeks ago (the rate, and freezes counted from the month's start).
    rate_from = (today - timedelta(weeks=RATE_WEEKS)).replace(day=1)
    needed = resolve(datetime.combine(rate_from, datetime.min.time()), zone)
    for key in rules:
        found = checkpoints.get(key)
        if found is None:
            needed = EVER
            break
        needed = min(needed, found.through or needed)
    entries = ledger.streaks.entries(household, needed, now, include)
    pauses = ledger.streaks.pauses(household)
    result = []
    for ritual, who in series:
        key = (ritual.id, who)
        mine = entries.get((ritual.id, who or ""), [])
        state = checkpoints.get(key) or State()
        through = state.through
        after = [e for _, e in mine if through is None or e.at >= through]
        state, after = _advance(
            ledger,
            (household, ritual.id, who or ""),
            state,
            after,
            rules[key],
            (zone, zone_name),
            pauses,
            now,
            save=save,
        )
        state, _ = fold(state, after, rules[key], pauses, now, through=now, today=today)
        # Outcomes of the recent weeks, for the rate and for an answer about one occurrence:
        # folded from the start of a month, so freezes count as they did.
        recent = [(i, e) for i, e in mine if e.slot.date() >= rate_from]
        _, judged = fold(
            State(), [e for _, e in recent], rules[key], pauses, now, through=now, today=today
        )
        result.append(
            SeriesStreak(
                household=household,
                ritual=ritual,
                recipient=who,
                streak=summarize(state, judged, rules[key], today=today),
                judged=tuple((i, o) for (i, _), (_, o) in zip(recent, judged, strict=True)),
            )
        )
    return result


def _advance(
    ledger: Records,
    key: tuple[str, str, str],
    state: State,
    after: list[Entry],
    rules: Rules,
    zone: tuple[ZoneInfo, str],
    pauses: Sequence[Pause],
    now: datetime,
    *,
    save: bool,
) -> tuple[State, list[Entry]]:
    """The checkpoint moved on over what has settled since it (and saved, with `save`), and
    the entries still to fold after it. `key`: household, ritual, recipient ("" for the
    couple); `zone`: the household's, and its name."""
    through = state.through
    settle = _settled_before(now, rules, zone[0], after, pauses)
    if through is not None and settle - through < ADVANCE_EVERY:
        return state, after
    older = [e for e in after if e.at < settle]
    if not older and through is not None:
        return state, after
    day_before = settle.astimezone(zone[0]).date() - timedelta(days=1)
    state, _ = fold(state, older, rules, pauses, now, through=settle, today=day_before)
    if save:
        assert state.through is not None
        household, ritual, recipient = key
        ledger.streaks.save_checkpoint(
            household,
            ritual,
            recipient,
            rules.fingerprint(zone[1]),
            through=state.through,
            state=json.dumps(state.to_json()),
            now=now,
        )
    return state, [e for e in after if e.at >= settle]


def _checkpoints(
    ledger: Records, household: str, rules: dict[tuple[str, str | None], Rules], zone: str
) -> dict[tuple[str, str | None], State]:
    found: dict[tuple[str, str | None], State] = {}
    for row in ledger.streaks.checkpoints(household):
        key = (row.ritual, row.recipient or None)
        if key in rules and rules[key].fingerprint(zone) == row.rules:
            found[key] = State.from_json(json.loads(row.state))
    return found
