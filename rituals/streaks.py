"""Streak maths: what a ritual's history says about the couple. Pure: the ledger
(:mod:`scheduler.reports.streaks`) reads the rows and the clock and hands them in.

A streak belongs to a household and a ritual (to one partner for a ``to = "each"`` ritual).
Each occurrence is judged once it is due:

- **kept**: confirmed by either partner, or by every partner it is for (``streak = "both"``);
- **neutral** (neither breaks nor counts): skipped with a freeze (``freezes_per_month``,
  default 1 per calendar month of the occurrence; whether a skip got one is decided when
  the partner skips, and told to them, see :func:`freeze_left`), inside a pause (PAUSE 2w),
  or never told to anyone (Tend could not send it: not the couple's fault);
- **open**: still inside its reply window; it breaks nothing yet;
- **broken**: missed (the reply window closed with no confirmation), or skipped with no
  freeze left.

``current`` counts kept occurrences since the last break, ``longest`` the best run ever;
``rate`` is kept / judged over the last 12 weeks; ``score`` is habit strength as Loop Habit
Tracker computes it (see :func:`loop_score_step`).

Cost does not grow with history: a fold's :class:`State` is a checkpoint. The ledger keeps
the state of everything settled (older than any late confirmation can reach) and folds only
the recent occurrences on top of it.
"""

from __future__ import annotations

import hashlib
import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import Enum
from fractions import Fraction
from typing import Literal

from rituals.schedule import FixedSchedule, RandomWindow, Schedule

__all__ = [
    "Entry",
    "Outcome",
    "Pause",
    "Rules",
    "State",
    "Streak",
    "fold",
    "freeze_left",
    "frequency_of",
    "judge",
    "loop_score_step",
    "summarize",
    "weeks_text",
]

Mode = Literal["either", "both"]
RATE_WEEKS = 12


class Outcome(Enum):
    KEPT = "kept"
    FROZEN = "frozen"  # skipped, a freeze used: neutral
    PAUSED = "paused"  # inside a pause: neutral
    UNSENT = "unsent"  # no message about it reached anyone: neutral
    OPEN = "open"  # the reply window is still open
    SKIPPED = "skipped"  # skipped with no freeze left: breaks
    MISSED = "missed"  # breaks

    @property
    def neutral(self) -> bool:
        return self in (Outcome.FROZEN, Outcome.PAUSED, Outcome.UNSENT, Outcome.OPEN)

    @property
    def breaks(self) -> bool:
        return self in (Outcome.SKIPPED, Outcome.MISSED)


@dataclass(frozen=True, slots=True)
class Entry:
    """One due occurrence as the ledger has it."""

    slot: datetime  # naive, the household's local wall clock: its identity and its month
    at: datetime  # aware UTC
    confirmed_by: frozenset[str] = frozenset()
    skipped: bool = False
    froze: bool = False  # the skip used one of the month's freezes
    # When the last message about it reached a partner (aware UTC); None: none did.
    reached_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Pause:
    start: datetime  # aware UTC
    end: datetime  # aware UTC, exclusive

    def covers(self, moment: datetime) -> bool:
        return self.start <= moment < self.end


@dataclass(frozen=True, slots=True)
class Rules:
    """What the ritual file says about one streak."""

    mode: Mode = "either"
    audience: frozenset[str] = frozenset()  # who must confirm with mode "both"
    freezes_per_month: int = 1
    reply_window: timedelta = timedelta(days=3)
    frequency: Fraction = Fraction(1, 7)  # repetitions per day, as Loop writes it

    @property
    def weekly(self) -> bool:
        return self.frequency == Fraction(1, 7)

    @property
    def unit(self) -> str:
        return "weeks" if self.weekly else "occurrences"

    def fingerprint(self, zone: str = "") -> str:
        """Everything a settled judgement depends on (and the zone its days are counted
        in), hashed: a checkpoint made under other rules is thrown away."""
        text = "|".join(
            (
                self.mode,
                ",".join(sorted(self.audience)),
                str(self.freezes_per_month),
                str(int(self.reply_window.total_seconds())),
                str(self.frequency),
                zone,
            )
        )
        return hashlib.sha256(text.encode()).hexdigest()


def weeks_text(count: int) -> str:
    """A streak counted in weeks, as people write it: ``1 week``, ``0 weeks``, ``3 weeks``."""
    return f"{count} week" if count == 1 else f"{count} weeks"


def frequency_of(schedule: Schedule) -> Fraction:
    """Repetitions per day, the way Loop Habit Tracker writes a habit's frequency
    (numerator / denominator): weekly is 1/7, every two weeks 1/14, three a week 3/7."""
    if isinstance(schedule, RandomWindow):
        days = {"day": 1, "week": 7, "month": 30}[schedule.per]
        return Fraction(schedule.times, days)
    if isinstance(schedule, FixedSchedule):
        # A year of 52 whole weeks from a fixed Monday: the same answer on every day.
        start = datetime(2030, 1, 7)
        count = len(schedule.slots(start, start + timedelta(days=364)))
        if count:
            return Fraction(count, 364).limit_denominator(31)
    return Fraction(1, 7)


def freeze_left(used_in_month: int, rules: Rules) -> bool:
    """Whether a skip now gets a freeze, with `used_in_month` already used in the
    occurrence's month. Decided once, when the partner skips, so what they are told holds
    whatever is skipped later (or earlier in the month) afterwards."""
    return used_in_month < rules.freezes_per_month


def judge(entry: Entry, rules: Rules, pauses: Sequence[Pause], now: datetime) -> Outcome:
    """The outcome of one due occurrence at `now`."""
    if _kept(entry, rules):
        return Outcome.KEPT
    if any(p.covers(entry.at) for p in pauses):
        return Outcome.PAUSED
    if entry.skipped:
        return Outcome.FROZEN if entry.froze else Outcome.SKIPPED
    if entry.reached_at is None and not entry.confirmed_by:
        return Outcome.UNSENT
    told = max(entry.at, entry.reached_at) if entry.reached_at else entry.at
    if now <= told + rules.reply_window:
        return Outcome.OPEN
    return Outcome.MISSED


def _kept(entry: Entry, rules: Rules) -> bool:
    if rules.mode == "both" and rules.audience:
        return rules.audience <= entry.confirmed_by
    return bool(entry.confirmed_by)


def loop_score_step(frequency: Fraction, previous: float, value: float) -> float:
    """One day of habit strength, exactly as Loop Habit Tracker computes it
    (iSoron/uhabits, ``uhabits-core/.../models/Score.kt``, ``Score.compute``): exponential
    smoothing whose half-life grows as the habit is rarer,
    ``multiplier = 0.5 ** (sqrt(frequency) / 13)``,
    ``score = previous * multiplier + value * (1 - multiplier)``."""
    multiplier: float = math.pow(0.5, math.sqrt(frequency) / 13.0)
    return previous * multiplier + value * (1 - multiplier)


def _loop_window(frequency: Fraction) -> tuple[int, int]:
    """Numerator and denominator of Loop's rolling sum (``ScoreList.recompute``): doubled
    for habits rarer than daily, "to smooth out irregular repetition schedules"."""
    numerator, denominator = frequency.numerator, frequency.denominator
    if frequency < 1:
        numerator, denominator = numerator * 2, denominator * 2
    return numerator, denominator


@dataclass(frozen=True, slots=True)
class State:
    """Everything a fold has seen, small and fixed in size: the ledger's checkpoint."""

    through: datetime | None = None  # entries due before this instant are folded in (UTC)
    current: int = 0
    longest: int = 0
    kept: int = 0
    month: str | None = None  # "2027-03": the month the freeze count belongs to
    frozen_in_month: int = 0
    score: float = 0.0
    score_day: date | None = None  # the last local day folded into the score
    kept_days: tuple[date, ...] = ()  # kept days still inside Loop's rolling window

    def to_json(self) -> dict[str, object]:
        return {
            "through": self.through.isoformat() if self.through else None,
            "current": self.current,
            "longest": self.longest,
            "kept": self.kept,
            "month": self.month,
            "frozen_in_month": self.frozen_in_month,
            "score": self.score,
            "score_day": self.score_day.isoformat() if self.score_day else None,
            "kept_days": [d.isoformat() for d in self.kept_days],
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> State:
        def day(value: object) -> date:
            return date.fromisoformat(str(value))

        through, score_day = data.get("through"), data.get("score_day")
        kept_days = data.get("kept_days") or []
        assert isinstance(kept_days, list)
        return cls(
            through=datetime.fromisoformat(str(through)) if through else None,
            current=int(str(data["current"])),
            longest=int(str(data["longest"])),
            kept=int(str(data["kept"])),
            month=str(data["month"]) if data.get("month") else None,
            frozen_in_month=int(str(data["frozen_in_month"])),
            score=float(str(data["score"])),
            score_day=day(score_day) if score_day else None,
            kept_days=tuple(day(d) for d in kept_days),
        )


def fold(
    state: State,
    entries: Iterable[Entry],
    rules: Rules,
    pauses: Sequence[Pause],
    now: datetime,
    *,
    through: datetime,
    today: date,
) -> tuple[State, list[tuple[Entry, Outcome]]]:
    """Fold `entries` (due, ascending by ``at``, none already in `state`) into `state`.

    The score is advanced day by day up to `today` (local), the day `through` falls on for a
    checkpoint. Returns the new state and each entry's outcome.
    """
    current, longest, kept = state.current, state.longest, state.kept
    month, frozen = state.month, state.frozen_in_month
    judged: list[tuple[Entry, Outcome]] = []
    days: dict[date, Outcome] = {}
    for entry in entries:
        entry_month = f"{entry.slot:%Y-%m}"
        if entry_month != month:
            month, frozen = entry_month, 0
        outcome = judge(entry, rules, pauses, now)
        judged.append((entry, outcome))
        if outcome is Outcome.FROZEN:
            frozen += 1
        if outcome is Outcome.KEPT:
            current += 1
            kept += 1
            longest = max(longest, current)
        elif outcome.breaks:
            current = 0
        day = entry.slot.date()
        if outcome is Outcome.KEPT or day not in days:
            days[day] = outcome
    score, score_day, kept_days = _advance_score(state, days, rules, today)
    return (
        State(
            through=through,
            current=current,
            longest=longest,
            kept=kept,
            month=month,
            frozen_in_month=frozen,
            score=score,
            score_day=score_day,
            kept_days=kept_days,
        ),
        judged,
    )


def _advance_score(
    state: State,
    days: dict[date, Outcome],
    rules: Rules,
    today: date,
) -> tuple[float, date | None, tuple[date, ...]]:
    """Loop's ``ScoreList.recompute`` for a boolean habit, one local day at a time: a kept
    day adds to a rolling sum over the window, a neutral day (a freeze, a pause, a message
    never sent, one still open) is Loop's SKIP and leaves the score as it was."""
    numerator, denominator = _loop_window(rules.frequency)
    first = min(days) if days else None
    if state.score_day is not None:
        day = state.score_day + timedelta(days=1)
    elif first is not None:
        day = first
    else:
        return state.score, state.score_day, state.kept_days
    window: deque[date] = deque(d for d in state.kept_days if d > day - timedelta(days=denominator))
    score = state.score
    last = state.score_day
    while day <= today:
        while window and window[0] <= day - timedelta(days=denominator):
            window.popleft()
        outcome = days.get(day)
        if outcome is Outcome.KEPT:
            window.append(day)
        if outcome is None or not outcome.neutral:
            score = loop_score_step(rules.frequency, score, min(1.0, len(window) / numerator))
        last = day
        day += timedelta(days=1)
    cutoff = today - timedelta(days=denominator)
    return score, last, tuple(d for d in window if d > cutoff)


@dataclass(frozen=True, slots=True)
class Streak:
    current: int
    longest: int
    unit: str  # "weeks" for weekly rituals, else "occurrences"
    kept: int  # kept occurrences ever
    rate: float | None  # kept / judged over the last 12 weeks; None when nothing was judged
    score: float  # habit strength, 0..1 (Loop Habit Tracker)
    freezes_left: int  # this month


def summarize(
    state: State,
    recent: Sequence[tuple[Entry, Outcome]],
    rules: Rules,
    *,
    today: date,
) -> Streak:
    """The streak from a folded state and the recent judged entries (the last 12 weeks at
    least, for the rate, and all of this month, for the freezes left)."""
    since = today - timedelta(weeks=RATE_WEEKS)
    window = [o for e, o in recent if e.slot.date() > since]
    kept = sum(1 for o in window if o is Outcome.KEPT)
    judged = kept + sum(1 for o in window if o.breaks)
    # This month's freezes, from the judged entries (the state's count is of the month of
    # its last entry, which may be next month's, skipped ahead).
    month = f"{today:%Y-%m}"
    used = sum(1 for e, o in recent if o is Outcome.FROZEN and f"{e.slot:%Y-%m}" == month)
    return Streak(
        current=state.current,
        longest=state.longest,
        unit=rules.unit,
        kept=state.kept,
        rate=kept / judged if judged else None,
        score=state.score,
        freezes_left=max(0, rules.freezes_per_month - used),
    )
