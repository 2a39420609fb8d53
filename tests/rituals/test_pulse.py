"""The pulse's rules, from tables: a slip, the support message's timing, the trend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rituals.pulse import (
    DEFAULT_SUPPORT_MESSAGE,
    DROP,
    FOUR_WEEK,
    LOW,
    LOW_RUN,
    PERSIST,
    SUPPORT_EVERY,
    TWELVE_WEEK,
    Rated,
    Turn,
    household_slipping,
    shared_line,
    slipping,
    support_due,
    trend,
)

NOW = datetime(2026, 6, 7, 20, 0, tzinfo=UTC)  # a Sunday evening


def weekly(*ratings: int) -> list[Rated]:
    """One rating a week, the last one a day before NOW, oldest first."""
    last = NOW - timedelta(days=1)
    return [Rated(last - timedelta(weeks=len(ratings) - 1 - i), r) for i, r in enumerate(ratings)]


def test_the_thresholds_are_the_issues() -> None:
    assert (FOUR_WEEK, TWELVE_WEEK, DROP, LOW, LOW_RUN, PERSIST) == (4, 12, 1.0, 2, 2, 4)
    assert timedelta(weeks=8) == SUPPORT_EVERY


@pytest.mark.parametrize(
    ("ratings", "expected"),
    [
        ([], False),
        (weekly(4), False),
        (weekly(3, 3, 3, 3), False),  # steady, however low
        (weekly(5, 5, 5, 5, 5, 5, 5, 5, 4, 4, 4, 4), False),  # 4.67 vs 4.0: a drop of 0.67
        (weekly(5, 5, 5, 5, 5, 5, 5, 5, 4, 4, 3, 3), True),  # 4.5 vs 3.5: exactly DROP
        (weekly(5, 5, 5, 5, 5, 5, 5, 5, 3, 3, 3, 3), True),
        (weekly(4, 4, 4, 4), False),  # the recent weeks alone are their own mean
        (weekly(4, 2, 2), True),  # two low in a row
        (weekly(2, 4, 2), False),  # low, but not in a row
        (weekly(2, 2, 4), False),  # the run is over
        (weekly(1, 2), True),
        (weekly(3, 3, 3, 3, 3, 3, 3, 3, 5, 5, 5, 5), False),  # a rise is not a slip
        # Ratings older than twelve weeks do not count in the longer mean.
        ([Rated(NOW - timedelta(weeks=20), 5), *weekly(3, 3, 3)], False),
    ],
    ids=[
        "none",
        "one",
        "steady",
        "a-small-drop",
        "a-drop-of-one-point",
        "a-big-drop",
        "only-recent",
        "two-low-in-a-row",
        "low-not-in-a-row",
        "low-run-over",
        "two-low-only",
        "a-rise",
        "too-old-to-count",
    ],
)
def test_a_partner_is_slipping(ratings: list[Rated], expected: bool) -> None:
    assert slipping(ratings, NOW) is expected


def test_ratings_after_now_do_not_count() -> None:
    later = [Rated(NOW + timedelta(days=1), 1), Rated(NOW + timedelta(days=2), 1)]
    assert slipping([*weekly(4, 4), *later], NOW) is False


def test_a_household_is_slipping_when_either_partner_is() -> None:
    assert household_slipping({"alex": weekly(4, 4), "sam": weekly(2, 1)}, NOW)
    assert not household_slipping({"alex": weekly(4, 4), "sam": weekly(3, 4)}, NOW)
    assert not household_slipping({}, NOW)


def turns(*marks: str) -> list[Turn]:
    """One pulse check-in a week before NOW, oldest first: 'c' asked the longer
    conversation, 's' did and carried the support message, '-' neither."""
    return [
        Turn(NOW - timedelta(weeks=len(marks) - i), mark in "cs", mark == "s")
        for i, mark in enumerate(marks)
    ]


@pytest.mark.parametrize(
    ("earlier", "conversation", "expected"),
    [
        (turns("c", "c", "c"), True, True),  # the fourth in a row
        (turns("c", "c"), True, False),  # only the third
        (turns("c", "-", "c", "c"), True, False),  # not in a row
        (turns("c", "c", "c"), False, False),  # no slip now
        (turns("s", "c", "c", "c"), True, False),  # sent 4 weeks ago: not again yet
        (turns("s", "c", "c", "c", "c", "c", "c", "c"), True, True),  # 8 weeks on
        (turns("s", "c", "c", "c", "c", "c", "c"), True, False),  # 7 weeks on
        (turns("-", "-", "c", "c", "c"), True, True),
    ],
    ids=[
        "fourth-in-a-row",
        "third",
        "broken-run",
        "no-slip-now",
        "support-sent-lately",
        "eight-weeks-after-support",
        "seven-weeks-after-support",
        "after-good-weeks",
    ],
)
def test_the_support_message_is_due(
    earlier: list[Turn], conversation: bool, expected: bool
) -> None:
    assert support_due(earlier, conversation, NOW) is expected


def test_the_trend_is_the_last_four_weeks_oldest_first() -> None:
    assert trend(weekly(1, 1, 4, 4, 3, 3), NOW) == (
        "Your last 4 weeks: 4 4 3 3 (oldest first; only you see these)."
    )
    assert trend([], NOW).startswith("No ratings from you in the last 4 weeks.")


def test_the_shared_line_names_both_ratings() -> None:
    assert shared_line([("Alex", 4), ("Sam", 3)]) == "Check-in pulse: Alex 4, Sam 3."


def test_the_default_support_message_names_no_number_or_organisation() -> None:
    assert "counsellor" in DEFAULT_SUPPORT_MESSAGE
    assert not any(c.isdigit() for c in DEFAULT_SUPPORT_MESSAGE)
    assert "http" not in DEFAULT_SUPPORT_MESSAGE and "www" not in DEFAULT_SUPPORT_MESSAGE


def test_a_rating_is_not_in_its_repr() -> None:
    assert "3" not in repr(Rated(datetime(2026, 1, 1, tzinfo=UTC), 3)).replace("2026", "")
