"""Streak maths from histories written as strings, one mark per due occurrence:

====  ======================================================================
K     confirmed by both partners (and told to them)
a     confirmed by one partner only; the reply window has closed
A     confirmed by one partner only; the reply window is still open
x     told, never confirmed; the reply window has closed (a miss)
o     told, never confirmed; the reply window is still open
s     told and skipped
q     told and skipped inside a pause
p     told, never confirmed, inside a pause
P     confirmed by both partners inside a pause
n     never told to anyone (Tend could not send it)
====  ======================================================================

Whether a skip got a freeze is decided by the ledger when the partner skips, and the
history builder decides it the same way: skips made in occurrence order unless told
otherwise (``skipped_in``), each getting a freeze while :func:`freeze_left` says one is left
in the local month of its slot; a skip inside a pause needs none.

Outcomes are written back the same way: K kept, F frozen, P paused, U unsent, O open,
S skipped (no freeze left), M missed.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from fractions import Fraction
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rituals.clock import resolve
from rituals.schedule import parse_schedule
from rituals.streaks import (
    Entry,
    Outcome,
    Pause,
    Rules,
    State,
    Streak,
    fold,
    freeze_left,
    frequency_of,
    judge,
    loop_score_step,
    summarize,
)

ANA, BEN = "ana", "ben"
PARTNERS = frozenset({ANA, BEN})
NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")
START = datetime(2027, 1, 3, 19, 0)  # a Sunday; weekly slots: Jan 3, 10, 17, 24, 31, Feb 7, ...
WEEK = timedelta(days=7)
DAY = timedelta(days=1)

EITHER = Rules()
BOTH = Rules(mode="both", audience=PARTNERS)
DAILY = Rules(frequency=Fraction(1))

LETTERS = {
    Outcome.KEPT: "K",
    Outcome.FROZEN: "F",
    Outcome.PAUSED: "P",
    Outcome.UNSENT: "U",
    Outcome.OPEN: "O",
    Outcome.SKIPPED: "S",
    Outcome.MISSED: "M",
}


@dataclass(frozen=True)
class History:
    entries: list[Entry]
    pauses: list[Pause]
    now: datetime
    today: date
    zone: tzinfo


def history(
    marks: str,
    *,
    start: datetime = START,
    every: timedelta = WEEK,
    zone: tzinfo = UTC,
    now: datetime | None = None,
    rules: Rules = EITHER,
    skipped_in: Sequence[int] | None = None,
    froze: Sequence[bool] | None = None,
) -> History:
    """The entries `marks` describes, one every `every` on the local wall clock from `start`.

    `now` defaults to four days after the last occurrence: past the three-day reply window.
    Each skip's freeze is decided as the ledger decides it with `rules`, the skips made in
    the order of `skipped_in` (positions in `marks`; default: occurrence order), or given
    outright by `froze` (one flag a mark).
    """
    slots = [start + every * i for i in range(len(marks))]
    instants = [resolve(slot, zone) for slot in slots]
    if now is None:
        now = (instants[-1] if instants else resolve(start, zone)) + timedelta(days=4)
    if froze is None:
        froze = ledger_freezes(marks, slots, rules, skipped_in)
    open_reach = now - timedelta(hours=1)  # a late reminder keeps the window open
    entries: list[Entry] = []
    pauses: list[Pause] = []
    for mark, slot, at, frozen in zip(marks, slots, instants, froze, strict=True):
        confirmed_by = {"K": PARTNERS, "P": PARTNERS, "a": {ANA}, "A": {ANA}}.get(mark, set())
        reached_at = {"n": None, "o": open_reach, "A": open_reach}.get(mark, at)
        entries.append(
            Entry(
                slot=slot,
                at=at,
                confirmed_by=frozenset(confirmed_by),
                skipped=mark in "sq",
                froze=mark in "sq" and frozen,
                reached_at=reached_at,
            )
        )
        if mark in "pPq":
            pauses.append(Pause(start=at - timedelta(hours=1), end=at + timedelta(hours=1)))
    assert set(marks) <= set("KaAxosqpPn"), marks
    return History(entries, pauses, now, now.astimezone(zone).date(), zone)


def ledger_freezes(
    marks: str, slots: Sequence[datetime], rules: Rules, skipped_in: Sequence[int] | None
) -> list[bool]:
    """Whether each skip got a freeze, decided as the ledger decides it when the partner
    skips (``scheduler.ledger.completions``, skip): in the order the skips were made, one of the
    local month's while :func:`freeze_left` says so; a skip inside a pause needs none."""
    skips = [i for i, mark in enumerate(marks) if mark == "s"]
    order = list(skipped_in) if skipped_in is not None else skips
    assert sorted(order) == skips, (order, marks)
    used: Counter[str] = Counter()
    froze = [False] * len(marks)
    for i in order:
        month = f"{slots[i]:%Y-%m}"
        if freeze_left(used[month], rules):
            froze[i] = True
            used[month] += 1
    return froze


def streak_of(past: History, rules: Rules = EITHER) -> tuple[Streak, str]:
    """The streak at `past.now`, and each occurrence's outcome as a letter."""
    state, judged = fold(
        State(), past.entries, rules, past.pauses, past.now, through=past.now, today=past.today
    )
    streak = summarize(state, judged, rules, today=past.today)
    return streak, "".join(LETTERS[outcome] for _, outcome in judged)


# ----------------------------------------------------------------------------- the table


@pytest.mark.parametrize(
    ("marks", "rules", "outcomes", "current", "longest", "kept"),
    [
        pytest.param("", EITHER, "", 0, 0, 0, id="no-history-no-streak"),
        pytest.param("KKKK", EITHER, "KKKK", 4, 4, 4, id="kept-every-week"),
        pytest.param("KKKxK", EITHER, "KKKMK", 1, 3, 4, id="a-miss-breaks-the-streak"),
        pytest.param("xxx", EITHER, "MMM", 0, 0, 0, id="only-misses"),
        pytest.param("KKKKKxKK", EITHER, "KKKKKMKK", 2, 5, 7, id="longest-keeps-the-best-run"),
        pytest.param("KxKKKxK", EITHER, "KMKKKMK", 1, 3, 5, id="longest-from-the-middle"),
        # Either partner, or both.
        pytest.param("KKaKK", EITHER, "KKKKK", 5, 5, 5, id="either-one-partner-keeps-it"),
        pytest.param("KKaKK", BOTH, "KKMKK", 2, 2, 4, id="both-one-partner-alone-is-a-miss"),
        pytest.param("KKA", BOTH, "KKO", 2, 2, 2, id="both-one-partner-alone-is-open-for-now"),
        pytest.param("KKK", BOTH, "KKK", 3, 3, 3, id="both-partners-keep-it"),
        # Freezes: one a calendar month of the occurrence (Jan 3..31 are weeks 0-4).
        pytest.param("KKsKK", EITHER, "KKFKK", 4, 4, 4, id="the-first-skip-in-a-month-is-frozen"),
        pytest.param(
            "KsKsK", EITHER, "KFKSK", 1, 2, 3, id="a-second-skip-in-a-month-breaks-the-streak"
        ),
        pytest.param("KKKKssKK", EITHER, "KKKKFFKK", 6, 6, 6, id="each-month-has-its-own-freeze"),
        pytest.param("KKKKKsKs", EITHER, "KKKKKFKS", 0, 6, 6, id="february-has-only-one-freeze"),
        pytest.param(
            "KKsKK",
            Rules(freezes_per_month=0),
            "KKSKK",
            2,
            2,
            4,
            id="no-freezes-every-skip-breaks",
        ),
        pytest.param(
            "KsKsK", Rules(freezes_per_month=2), "KFKFK", 3, 3, 3, id="two-freezes-a-month"
        ),
        # Neutral: pauses, messages never sent, replies still open.
        pytest.param("KKpKK", EITHER, "KKPKK", 4, 4, 4, id="a-pause-is-neutral"),
        pytest.param("KKPKK", EITHER, "KKKKK", 5, 5, 5, id="a-confirmation-in-a-pause-counts"),
        pytest.param(
            "KqsK", EITHER, "KPFK", 2, 2, 2, id="a-skip-in-a-pause-does-not-use-the-freeze"
        ),
        pytest.param("KKnKK", EITHER, "KKUKK", 4, 4, 4, id="a-message-never-sent-is-neutral"),
        pytest.param("nnn", EITHER, "UUU", 0, 0, 0, id="nothing-ever-sent"),
        pytest.param("KKKo", EITHER, "KKKO", 3, 3, 3, id="an-open-occurrence-breaks-nothing"),
        pytest.param("KKoKK", EITHER, "KKOKK", 4, 4, 4, id="a-late-reminder-keeps-it-open"),
    ],
)
def test_a_history_folds_into_its_streak(
    marks: str,
    rules: Rules,
    outcomes: str,
    current: int,
    longest: int,
    kept: int,
) -> None:
    streak, judged = streak_of(history(marks, rules=rules), rules)
    assert judged == outcomes
    assert (streak.current, streak.longest, streak.kept) == (current, longest, kept)


@pytest.mark.parametrize(
    ("marks", "skipped_in", "rules", "outcomes", "current", "longest"),
    [
        pytest.param(
            "KsKsK",
            [3, 1],
            EITHER,
            "KSKFK",
            2,
            2,
            id="a-later-skip-made-first-keeps-its-freeze-the-earlier-one-breaks",
        ),
        pytest.param("KsKsK", [1, 3], EITHER, "KFKSK", 1, 2, id="skips-made-in-order-as-before"),
        pytest.param(
            "KKKKssKs",
            [7, 5, 4],
            EITHER,
            "KKKKFSKF",
            1,
            4,
            id="each-month-decides-its-own-in-the-order-its-skips-came",
        ),
        pytest.param(
            "sKsKs",
            [4, 2, 0],
            Rules(freezes_per_month=2),
            "SKFKF",
            2,
            2,
            id="two-freezes-go-to-the-two-skips-made-first",
        ),
    ],
)
def test_a_freeze_belongs_to_the_skip_that_was_told_it_whatever_is_skipped_after(
    marks: str,
    skipped_in: list[int],
    rules: Rules,
    outcomes: str,
    current: int,
    longest: int,
) -> None:
    past = history(marks, rules=rules, skipped_in=skipped_in)
    streak, judged = streak_of(past, rules)
    assert judged == outcomes
    assert (streak.current, streak.longest) == (current, longest)


@pytest.mark.parametrize(
    ("froze", "outcomes"),
    [
        pytest.param((True, True), "FF", id="both-told-a-freeze-both-frozen"),
        pytest.param((False, True), "SF", id="a-freeze-on-the-later-occurrence-only"),
        pytest.param((True, False), "FS", id="a-freeze-on-the-earlier-occurrence-only"),
        pytest.param((False, False), "SS", id="no-freeze-told-none-used"),
    ],
)
def test_a_skip_is_frozen_exactly_when_the_entry_says_so(
    froze: tuple[bool, bool], outcomes: str
) -> None:
    # The fold no longer allocates freezes: even past the month's allowance, or out of order.
    past = history("Kss", froze=(False, *froze))
    _, judged = streak_of(past, EITHER)
    assert judged == "K" + outcomes


def test_freeze_left_is_whether_the_month_has_one_not_used() -> None:
    assert freeze_left(0, EITHER)
    assert not freeze_left(1, EITHER)
    assert freeze_left(1, Rules(freezes_per_month=2))
    assert not freeze_left(2, Rules(freezes_per_month=2))
    assert not freeze_left(0, Rules(freezes_per_month=0))


def test_a_second_skip_in_a_month_breaks_the_streak() -> None:
    streak, judged = streak_of(history("KKsKsKK"))
    assert judged == "KKFKSKK"
    assert (streak.current, streak.longest) == (2, 3)


def test_freezes_are_counted_in_the_month_of_the_local_slot_not_of_utc() -> None:
    # 20:00 on 31 March in Los Angeles is already 1 April in UTC: two months, two freezes.
    past = history(
        "Kss",
        start=datetime(2027, 3, 30, 20, 0),
        every=DAY,
        zone=LOS_ANGELES,
    )
    assert past.entries[1].at.month == past.entries[2].at.month == 4
    streak, judged = streak_of(past, DAILY)
    assert judged == "KFF"
    assert streak.current == 1


# ----------------------------------------------------------------------------- summaries


@pytest.mark.parametrize(
    ("marks", "rules", "freezes_left"),
    [
        pytest.param("KK", EITHER, 1, id="none-used"),
        pytest.param("KKs", EITHER, 0, id="the-one-freeze-is-used"),
        pytest.param("KKss", EITHER, 0, id="never-below-zero"),
        pytest.param("KKsKKK", EITHER, 1, id="a-new-month-gives-it-back"),
        pytest.param("sK", Rules(freezes_per_month=2), 1, id="two-a-month-one-used"),
        pytest.param("KK", Rules(freezes_per_month=0), 0, id="none-at-all"),
        pytest.param("KKp", EITHER, 1, id="a-pause-uses-no-freeze"),
    ],
)
def test_freezes_left_are_this_months(marks: str, rules: Rules, freezes_left: int) -> None:
    streak, _ = streak_of(history(marks, rules=rules), rules)
    assert streak.freezes_left == freezes_left


@pytest.mark.parametrize(
    ("marks", "rate"),
    [
        pytest.param("KKKx", 0.75, id="three-of-four"),
        pytest.param("KsKnKpKo", 1.0, id="neutral-occurrences-are-not-judged"),
        pytest.param("KsKs", 2 / 3, id="a-skip-with-no-freeze-left-is-judged"),
        pytest.param("snpo", None, id="nothing-judged-no-rate"),
        pytest.param("", None, id="no-history-no-rate"),
        pytest.param("x" * 10 + "K" * 12, 1.0, id="only-the-last-twelve-weeks-count"),
        pytest.param("x" * 10 + "K" * 11, 11 / 12, id="the-thirteenth-week-back-is-out"),
    ],
)
def test_the_rate_is_kept_over_judged_in_the_last_twelve_weeks(
    marks: str, rate: float | None
) -> None:
    streak, _ = streak_of(history(marks))
    assert streak.rate == (pytest.approx(rate) if rate is not None else None)


@pytest.mark.parametrize(
    ("frequency", "weekly", "unit"),
    [
        (Fraction(1, 7), True, "weeks"),
        (Fraction(1), False, "occurrences"),
        (Fraction(1, 14), False, "occurrences"),
        (Fraction(3, 7), False, "occurrences"),
    ],
    ids=["weekly", "daily", "fortnightly", "three-a-week"],
)
def test_weekly_rituals_count_weeks_and_others_occurrences(
    frequency: Fraction, weekly: bool, unit: str
) -> None:
    rules = Rules(frequency=frequency)
    assert rules.weekly is weekly
    streak, _ = streak_of(history("KK"), rules)
    assert streak.unit == unit


@pytest.mark.parametrize(
    ("schedule", "frequency"),
    [
        ("weekly on sun at 19:30", Fraction(1, 7)),
        ("every 2 weeks on fri at 19:00", Fraction(1, 14)),
        ("daily at 08:00", Fraction(1)),
        ("cron: 30 19 * * mon,wed,fri", Fraction(3, 7)),
        ("weekly on sat,sun at 10:00", Fraction(2, 7)),
        ("monthly on day 1 at 09:00", Fraction(1, 30)),
        ({"times": 3, "per": "week", "between": "10:00-20:00"}, Fraction(3, 7)),
        ({"times": 2, "per": "day", "between": "10:00-20:00"}, Fraction(2)),
    ],
    ids=[
        "weekly",
        "every-two-weeks",
        "daily",
        "cron-three-days",
        "two-days-a-week",
        "monthly",
        "random-three-a-week",
        "random-twice-a-day",
    ],
)
def test_frequency_is_repetitions_per_day_as_loop_writes_it(
    schedule: str | dict[str, object], frequency: Fraction
) -> None:
    assert frequency_of(parse_schedule(schedule)) == frequency


# ----------------------------------------------------------------------------- judging


@pytest.mark.parametrize(
    ("reached", "now", "outcome"),
    [
        pytest.param(timedelta(0), timedelta(days=3), Outcome.OPEN, id="the-last-instant-is-open"),
        pytest.param(
            timedelta(0),
            timedelta(days=3, seconds=1),
            Outcome.MISSED,
            id="a-second-later-it-is-missed",
        ),
        pytest.param(
            timedelta(days=2),
            timedelta(days=4),
            Outcome.OPEN,
            id="counted-from-a-late-reminder",
        ),
        pytest.param(
            timedelta(days=2),
            timedelta(days=5, seconds=1),
            Outcome.MISSED,
            id="a-late-reminder-window-closes-too",
        ),
        pytest.param(
            -timedelta(days=1),
            timedelta(days=2, hours=12),
            Outcome.OPEN,
            id="a-heads-up-before-the-slot-counts-from-the-slot",
        ),
        pytest.param(
            -timedelta(days=1),
            timedelta(days=3, seconds=1),
            Outcome.MISSED,
            id="a-heads-up-does-not-move-the-window-earlier-or-later",
        ),
    ],
)
def test_the_reply_window_counts_from_the_later_of_the_slot_and_the_last_message(
    reached: timedelta, now: timedelta, outcome: Outcome
) -> None:
    at = datetime(2027, 6, 6, 17, 0, tzinfo=UTC)
    entry = Entry(slot=datetime(2027, 6, 6, 19, 0), at=at, reached_at=at + reached)
    assert (
        judge(
            entry,
            EITHER,
            [],
            at + now,
        )
        is outcome
    )


def test_a_pause_covers_its_start_but_not_its_end() -> None:
    at = datetime(2027, 6, 6, 17, 0, tzinfo=UTC)
    entry = Entry(slot=datetime(2027, 6, 6, 19, 0), at=at, reached_at=at)
    later = at + timedelta(days=10)
    starts = [Pause(start=at, end=at + WEEK)]
    ends = [Pause(start=at - WEEK, end=at)]
    assert (
        judge(
            entry,
            EITHER,
            starts,
            later,
        )
        is Outcome.PAUSED
    )
    assert (
        judge(
            entry,
            EITHER,
            ends,
            later,
        )
        is Outcome.MISSED
    )


def test_in_both_mode_every_partner_of_the_audience_must_confirm() -> None:
    at = datetime(2027, 6, 6, 17, 0, tzinfo=UTC)
    later = at + timedelta(days=10)

    def outcome(*who: str) -> Outcome:
        entry = Entry(datetime(2027, 6, 6, 19), at, confirmed_by=frozenset(who), reached_at=at)
        return judge(
            entry,
            BOTH,
            [],
            later,
        )

    assert outcome(ANA, BEN) is Outcome.KEPT
    assert outcome(ANA, BEN, "guest") is Outcome.KEPT
    assert outcome(BEN) is Outcome.MISSED
    assert outcome(ANA, "guest") is Outcome.MISSED


# ----------------------------------------------------------------------------- DST


@pytest.mark.parametrize(
    ("zone", "start", "weeks"),
    [
        # New York springs forward 2027-03-14 02:00 and falls back 2027-11-07 02:00.
        pytest.param(NEW_YORK, datetime(2027, 2, 28, 1, 30), 5, id="new-york-spring-forward"),
        pytest.param(NEW_YORK, datetime(2027, 10, 24, 1, 30), 5, id="new-york-fall-back"),
        # Berlin: 02:30 does not exist on 2027-03-28 and happens twice on 2027-10-31.
        pytest.param(BERLIN, datetime(2027, 3, 14, 2, 30), 5, id="berlin-spring-forward"),
        pytest.param(BERLIN, datetime(2027, 10, 17, 2, 30), 5, id="berlin-fall-back"),
    ],
)
def test_a_weekly_ritual_keeps_its_streak_across_a_dst_change(
    zone: ZoneInfo, start: datetime, weeks: int
) -> None:
    past = history("K" * weeks, start=start, zone=zone)
    gaps = {b.at - a.at for a, b in pairwise(past.entries)}
    assert gaps != {WEEK}, "the history should cross a DST change"
    streak, judged = streak_of(past)
    assert judged == "K" * weeks
    assert (streak.current, streak.longest, streak.kept) == (weeks, weeks, weeks)
    assert streak.rate == 1.0
    assert streak.unit == "weeks"


def test_a_weekly_ritual_across_dst_keeps_its_freeze_and_its_miss_in_their_weeks() -> None:
    # New York, Sundays at 01:30 from 2027-02-28: the skip lands on the spring-forward day.
    past = history("KKsKKx", start=datetime(2027, 2, 28, 1, 30), zone=NEW_YORK)
    streak, judged = streak_of(past)
    assert judged == "KKFKKM"
    assert (streak.current, streak.longest) == (0, 4)


# ----------------------------------------------------------------------------- the Loop score


@pytest.mark.parametrize(
    ("frequency", "previous", "value"),
    [
        (Fraction(1), 0.0, 1.0),
        (Fraction(1), 0.5, 0.0),
        (Fraction(1, 7), 0.3, 1.0),
        (Fraction(3, 7), 0.9, 0.5),
        (Fraction(1, 14), 1.0, 0.0),
        (Fraction(2), 0.25, 0.75),
    ],
)
def test_the_loop_score_step_is_loops_exponential_smoothing(
    frequency: Fraction, previous: float, value: float
) -> None:
    multiplier = 0.5 ** (math.sqrt(frequency) / 13)
    expected = previous * multiplier + value * (1 - multiplier)
    assert loop_score_step(frequency, previous, value) == pytest.approx(expected, abs=1e-12)


def test_a_daily_habit_loses_half_its_strength_in_thirteen_missed_days() -> None:
    score = 0.8
    for _ in range(13):
        score = loop_score_step(Fraction(1), score, 0.0)
    assert score == pytest.approx(0.4, abs=1e-12)


@pytest.mark.parametrize(
    ("frequency", "first_step"),
    [(Fraction(1), 0.0519224857), (Fraction(1, 7), 0.0199509847)],
    ids=["daily", "weekly"],
)
def test_the_first_kept_step_from_zero_is_loops_known_value(
    frequency: Fraction, first_step: float
) -> None:
    assert loop_score_step(frequency, 0.0, 1.0) == pytest.approx(first_step, abs=1e-9)


def daily_scores(marks: str) -> list[float]:
    """The score of a daily habit at the end of each day of `marks`, folded a day at a time."""
    past = history(marks, every=DAY, now=datetime(2030, 1, 1, tzinfo=UTC))
    state, scores = State(), []
    for entry in past.entries:
        end_of_day = resolve(datetime.combine(entry.slot.date() + DAY, time()), UTC)
        state, _ = fold(
            state,
            [entry],
            DAILY,
            past.pauses,
            past.now,
            through=end_of_day,
            today=entry.slot.date(),
        )
        scores.append(state.score)
    return scores


def test_a_daily_habit_kept_every_day_rises_monotonically_toward_one() -> None:
    scores = daily_scores("K" * 120)
    assert all(a < b for a, b in pairwise(scores))
    assert scores[0] == pytest.approx(loop_score_step(Fraction(1), 0.0, 1.0))
    assert 0.99 < scores[-1] < 1.0


def test_misses_after_a_long_kept_history_decay_the_score_but_leave_it_above_zero() -> None:
    scores = daily_scores("K" * 90 + "x" * 60)
    kept, missed = scores[89], scores[90:]
    assert all(a > b for a, b in pairwise([kept, *missed]))
    assert missed[12] == pytest.approx(kept / 2, rel=1e-9)  # Loop's 13-day half-life
    assert 0 < missed[-1] < kept / 8


@pytest.mark.parametrize("mark", ["s", "p", "n", "o"], ids=["frozen", "paused", "unsent", "open"])
def test_a_neutral_day_leaves_the_score_unchanged(mark: str) -> None:
    scores = daily_scores("K" * 20 + mark + "K")
    assert scores[20] == scores[19]
    assert scores[21] > scores[20]


def test_a_missed_day_lowers_the_score_and_a_kept_one_raises_it() -> None:
    scores = daily_scores("K" * 20 + "xK")
    assert scores[20] < scores[19]
    assert scores[21] > scores[20]


def test_a_weekly_habit_kept_every_week_scores_near_one_after_a_year() -> None:
    streak, _ = streak_of(history("K" * 52))
    assert 0.6 < streak.score < 1.0
    broken, _ = streak_of(history("K" * 26 + "x" * 26))
    assert 0 < broken.score < streak.score


# ----------------------------------------------------------------------------- checkpoints


def test_a_state_survives_json() -> None:
    past = history("KKsKKxKKsK")
    state, _ = fold(State(), past.entries, EITHER, [], past.now, through=past.now, today=past.today)
    assert state.kept_days and state.month and state.score > 0
    assert State.from_json(json.loads(json.dumps(state.to_json()))) == state
    assert State.from_json(json.loads(json.dumps(State().to_json()))) == State()


CHECKPOINT_ZONES = [
    "America/New_York",
    "Europe/Berlin",
    "Australia/Lord_Howe",
    "America/Santiago",
    "Asia/Kolkata",
    "UTC",
]


@st.composite
def checkpointed(draw: st.DrawFn) -> tuple[History, Rules, date]:
    zone = ZoneInfo(draw(st.sampled_from(CHECKPOINT_ZONES)))
    marks = draw(st.text(alphabet="KaAxosqpPn", max_size=40))
    every = draw(st.sampled_from([timedelta(hours=12), DAY, 2 * DAY, WEEK, 2 * WEEK]))
    start = draw(st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2035, 1, 1)))
    first = resolve(start, zone)
    last = resolve(start + every * max(len(marks) - 1, 0), zone)
    now = last + draw(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=6)))
    rules = Rules(
        mode=draw(st.sampled_from(["either", "both"])),
        audience=PARTNERS,
        freezes_per_month=draw(st.integers(0, 2)),
        frequency=draw(st.sampled_from([Fraction(1), Fraction(1, 7), Fraction(3, 7), Fraction(2)])),
    )
    # Whether each skip got a freeze: as the ledger decides it (skips made in some order),
    # or any flags at all, which the fold must take as they are.
    skips = [i for i, mark in enumerate(marks) if mark == "s"]
    froze = draw(
        st.one_of(
            st.permutations(skips).map(
                lambda order: ledger_freezes(
                    marks, [start + every * i for i in range(len(marks))], rules, order
                )
            ),
            st.lists(st.booleans(), min_size=len(marks), max_size=len(marks)),
        )
    )
    past = history(marks, start=start, every=every, zone=zone, now=now, rules=rules, froze=froze)
    first_day = first.astimezone(zone).date()
    split = first_day + timedelta(days=draw(st.integers(0, (past.today - first_day).days + 1)))
    return past, rules, split


@settings(max_examples=200, deadline=None)
@given(case=checkpointed())
def test_folding_from_a_json_checkpoint_equals_folding_everything_at_once(
    case: tuple[History, Rules, date],
) -> None:
    past, rules, split = case
    through = resolve(datetime.combine(split, time()), past.zone)
    before = [e for e in past.entries if e.at < through]
    after = [e for e in past.entries if e.at >= through]
    assert all(e.slot.date() < split for e in before)
    assert all(e.slot.date() >= split for e in after)

    whole, judged = fold(
        State(), past.entries, rules, past.pauses, past.now, through=past.now, today=past.today
    )
    checkpoint, judged_before = fold(
        State(), before, rules, past.pauses, past.now, through=through, today=split - DAY
    )
    restored = State.from_json(json.loads(json.dumps(checkpoint.to_json())))
    assert restored == checkpoint
    resumed, judged_after = fold(
        restored,
        after,
        rules,
        past.pauses,
        past.now,
        through=past.now,
        today=past.today,
    )

    assert judged_before + judged_after == judged
    assert resumed.current == whole.current
    assert resumed.longest == whole.longest
    assert resumed.kept == whole.kept
    assert resumed.month == whole.month
    assert resumed.frozen_in_month == whole.frozen_in_month
    assert resumed.score == pytest.approx(whole.score, abs=1e-9)
