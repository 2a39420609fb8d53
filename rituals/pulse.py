"""The pulse: a partner's 1-5 rating of a check-in, and noticing a slip. Pure; tested from
tables in ``tests/rituals/test_pulse.py``.

A partner is *slipping* when, over their own ratings up to `now`, the mean of the last
:data:`FOUR_WEEK` weeks is at least :data:`DROP` below the mean of the last
:data:`TWELVE_WEEK` weeks, or their last :data:`LOW_RUN` ratings are each :data:`LOW` or
less. A household is slipping when either partner is; its next check-in then asks a
question from the "longer conversation" deck, to both partners alike (never saying who
rated what). When that has happened for :data:`PERSIST` check-ins in a row, the ritual's
``support_message`` goes out once, and not again within :data:`SUPPORT_EVERY`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = [
    "CONVERSATION_DECK",
    "DEFAULT_SUPPORT_MESSAGE",
    "DROP",
    "FOUR_WEEK",
    "LOW",
    "LOW_RUN",
    "MAX_RATING",
    "MIN_RATING",
    "PERSIST",
    "PULSE_LINE",
    "SUPPORT_EVERY",
    "TREND_WEEKS",
    "TWELVE_WEEK",
    "Rated",
    "Turn",
    "household_slipping",
    "next_turn",
    "shared_line",
    "slipping",
    "support_due",
    "trend",
    "worded",
]

MIN_RATING = 1
MAX_RATING = 5
FOUR_WEEK = 4  # weeks: the recent mean
TWELVE_WEEK = 12  # weeks: the partner's own longer mean
DROP = 1.0  # points the recent mean must fall below the longer one
LOW = 2  # a rating this low or lower is low
LOW_RUN = 2  # this many low ratings in a row is a slip
PERSIST = 4  # check-ins in a row with a slip before the support message
SUPPORT_EVERY = timedelta(weeks=8)  # the support message at most once in this long
TREND_WEEKS = 4  # PULSE shows the partner's ratings of this many weeks

#: The deck a slipping household's check-in takes its question from.
CONVERSATION_DECK = "longer-conversation"

#: The line a pulse check-in's text ends with.
PULSE_LINE = "Reply 1-5: how connected did you feel this week?"

#: What a ritual's ``support_message`` says unless the file sets it: no phone number, no
#: organisation (Tend cannot know which are right where a couple lives).
DEFAULT_SUPPORT_MESSAGE = (
    "Tend here. Check-ins have felt hard for a while. That happens to every couple, and "
    "talking it through with a couples counsellor can help; it is a sign of care, not of "
    "failure."
)


@dataclass(frozen=True, slots=True)
class Rated:
    """One rating: when it was given, and the value (1-5)."""

    at: datetime
    rating: int = 0

    def __repr__(self) -> str:  # a rating is the partner's own: never in a repr
        return f"Rated(at={self.at!r}, rating=<hidden>)"


@dataclass(frozen=True, slots=True)
class Turn:
    """A pulse check-in as sent: whether it asked the longer conversation, and whether it
    carried the support message."""

    at: datetime
    conversation: bool
    support: bool


def _mean(values: Sequence[int]) -> float | None:
    return sum(values) / len(values) if values else None


def slipping(ratings: Iterable[Rated], now: datetime) -> bool:
    """Whether one partner's ratings up to `now` show a slip (see the module's text)."""
    mine = sorted((r for r in ratings if r.at <= now), key=lambda r: r.at)
    if not mine:
        return False
    last = [r.rating for r in mine[-LOW_RUN:]]
    if len(last) == LOW_RUN and all(r <= LOW for r in last):
        return True
    recent = _mean([r.rating for r in mine if r.at > now - timedelta(weeks=FOUR_WEEK)])
    longer = _mean([r.rating for r in mine if r.at > now - timedelta(weeks=TWELVE_WEEK)])
    if recent is None or longer is None:
        return False
    # Recent weeks alone are their own longer mean too: no drop without older ratings.
    return longer - recent >= DROP - 1e-9


def household_slipping(by_partner: Mapping[str, Iterable[Rated]], now: datetime) -> bool:
    """Whether either partner is slipping."""
    return any(slipping(ratings, now) for ratings in by_partner.values())


def support_due(earlier: Sequence[Turn], conversation: bool, now: datetime) -> bool:
    """Whether this check-in (asking the longer conversation or not) carries the support
    message: it and the :data:`PERSIST` - 1 pulse check-ins before it (`earlier`, any order)
    all asked the longer conversation, and none carried the support message within
    :data:`SUPPORT_EVERY` of `now`."""
    if not conversation:
        return False
    if any(t.support and t.at > now - SUPPORT_EVERY for t in earlier):
        return False
    before = sorted(earlier, key=lambda t: t.at)[-(PERSIST - 1) :] if PERSIST > 1 else []
    return len(before) == PERSIST - 1 and all(t.conversation for t in before)


def trend(ratings: Iterable[Rated], now: datetime) -> str:
    """What PULSE answers: the partner's own ratings of the last :data:`TREND_WEEKS`
    weeks, oldest first (``Your last 4 weeks: 4 4 3 3``)."""
    since = now - timedelta(weeks=TREND_WEEKS)
    recent = sorted((r for r in ratings if since < r.at <= now), key=lambda r: r.at)
    if not recent:
        return (
            f"No ratings from you in the last {TREND_WEEKS} weeks. Reply 1-5 to a check-in "
            "to rate it; only you see your ratings."
        )
    values = " ".join(str(r.rating) for r in recent)
    return f"Your last {TREND_WEEKS} weeks: {values} (oldest first; only you see these)."


def shared_line(names: Sequence[tuple[str, int]]) -> str:
    """The one line a ``share_pulse`` household gets once both have rated a check-in."""
    return "Check-in pulse: " + ", ".join(f"{name} {rating}" for name, rating in names) + "."


def next_turn(
    by_partner: Mapping[str, Iterable[Rated]], earlier: Sequence[Turn], now: datetime
) -> Turn:
    """How a pulse check-in whose first message goes out at `now` is worded: the longer
    conversation when the household is slipping, and the support message when that has
    persisted (see :func:`support_due`)."""
    conversation = household_slipping(by_partner, now)
    return Turn(now, conversation, support_due(earlier, conversation, now))


def worded(body: str, pulse: Mapping[str, object], channel: str, turn: Turn) -> str:
    """What one partner's pulse check-in says under `turn`: `body` as planned, or the
    longer-conversation wording for `channel` (from the delivery's `pulse` alternates), then
    the support message. The same for a retry: built from the alternates, never from a body
    already reworded."""
    if not turn.conversation:
        return body
    wordings = pulse.get("conversation")
    text = wordings.get(channel, body) if isinstance(wordings, Mapping) else body
    support = pulse.get("support")
    if turn.support and isinstance(support, str) and support:
        text = f"{text}\n\n{support}"
    return str(text)
