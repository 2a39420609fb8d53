"""Which occurrence a partner's reply is about (:mod:`scheduler.acts.targets`), from tables
of hand-made messages (``Told``) and open occurrences (``Open``): no database.

Alex replies on Sunday 7 June 2026 at 20:00 UTC. The check-in's replies count for a day,
the date night's for three (the default), the kind words' for twelve hours.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ritual_files import couple_file, ritual_file

from config.model import Ritual
from scheduler.acts.targets import (
    EARLY,
    Open,
    Pick,
    confirm_target,
    latest_per_occurrence,
    open_for,
    skip_target,
    skippable,
    snooze_target,
    to_confirm,
)
from scheduler.ledger.occurrences import Told

NOW = datetime(2026, 6, 7, 20, 0, tzinfo=UTC)
FILE = ritual_file(
    couple_file(
        rituals="""
[[rituals]]
id = "check-in"
kind = "check_in"
schedule = "daily at 19:00"
reply_window = "1d"

[[rituals]]
id = "date-night"
kind = "date_night"
schedule = "weekly on fri at 19:00"
streak = "both"

[[rituals]]
id = "kind-words"
kind = "appreciation"
schedule = "daily at 12:00"
to = "each"
reply_window = "12h"
"""
    )
)
RITUALS: dict[str, Ritual] = {r.id: r for r in FILE.rituals}


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def told(
    occurrence: int,
    sent: timedelta,
    *,
    ritual: str = "check-in",
    at: timedelta | None = None,
    recipient: str = "",
) -> Told:
    """A message about `occurrence` that reached Alex `sent` before now; the occurrence is
    `at` before now (default: when the message went out)."""
    when = NOW - (sent if at is None else at)
    return Told(
        occurrence=occurrence,
        ritual=ritual,
        recipient=recipient,
        slot=when.replace(tzinfo=None),
        at=when,
        status="open",
        sent_at=NOW - sent,
        due_at=NOW - sent,
        body=f"message about {occurrence}",
        channel="sms",
        subject=None,
    )


def latest(rows: Sequence[Told]) -> list[tuple[int, timedelta]]:
    """(occurrence, how long before now its kept message went out), in the order given."""
    return [(o, NOW - t.sent_at) for o, t in latest_per_occurrence(rows, RITUALS, NOW).items()]


# ----------------------------------------------------------------------------- the messages


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        pytest.param(
            [told(1, hours(1)), told(1, hours(3))],
            [(1, hours(1))],
            id="the-latest-message-about-an-occurrence-is-the-one-kept",
        ),
        pytest.param(
            [told(2, hours(1)), told(1, hours(2)), told(2, hours(3))],
            [(2, hours(1)), (1, hours(2))],
            id="occurrences-come-in-the-order-of-their-latest-messages",
        ),
        pytest.param(
            [told(1, hours(1), ritual="gone")],
            [],
            id="a-message-of-a-ritual-gone-from-the-file-is-left-out",
        ),
        pytest.param(
            [told(1, hours(25)), told(2, hours(25), ritual="date-night")],
            [(2, hours(25))],
            id="each-ritual-has-its-own-reply-window",
        ),
        pytest.param(
            [told(1, hours(24))],
            [(1, hours(24))],
            id="a-message-exactly-one-reply-window-old-still-counts",
        ),
        pytest.param(
            [told(1, hours(24) + timedelta(seconds=1))],
            [],
            id="a-message-a-second-past-its-reply-window-does-not",
        ),
        pytest.param(
            [told(1, hours(13), ritual="kind-words", recipient="alex"), told(2, hours(11))],
            [(2, hours(11))],
            id="a-short-reply-window-closes-first",
        ),
        pytest.param(
            [told(1, hours(1), ritual="gone"), told(1, hours(2))],
            [(1, hours(2))],
            id="a-message-left-out-does-not-hide-an-older-one-of-a-ritual-still-there",
        ),
    ],
)
def test_the_latest_message_about_each_occurrence_inside_its_window_is_what_replies_see(
    rows: list[Told], expected: list[tuple[int, timedelta]]
) -> None:
    assert latest(rows) == expected


def test_open_for_puts_what_the_latest_message_was_about_first_then_the_most_recent() -> None:
    # The last message was a reminder about Friday's date night; the check-ins are newer.
    rows = [
        told(7, hours(1), ritual="date-night", at=hours(49)),
        told(3, hours(2), at=hours(2)),
        told(5, hours(5), at=hours(5)),
        told(4, hours(2), at=hours(2)),
    ]
    found = latest_per_occurrence(rows, RITUALS, NOW)

    listed = open_for(found, RITUALS, confirmed={3: {"sam"}}, skipped={5: {"alex"}})

    # Check-ins 3 and 4 at the same time: the higher id first.
    assert [t.occurrence for t in listed] == [7, 4, 3, 5]
    assert listed[0].ritual is RITUALS["date-night"]
    assert listed[0].last_sent == NOW - hours(1) and listed[0].last_body == "message about 7"
    by_id = {t.occurrence: t for t in listed}
    assert by_id[3].confirmed_by == frozenset({"sam"}) and by_id[3].skipped_by == frozenset()
    assert by_id[5].skipped_by == frozenset({"alex"})
    assert open_for({}, RITUALS, {}, {}) == []


# ----------------------------------------------------------------------------- open occurrences


def occurrence(
    number: int,
    at: timedelta = timedelta(hours=1),
    *,
    ritual: str = "check-in",
    status: str = "open",
    heard: timedelta | None = None,
    confirmed: Sequence[str] = (),
    skipped: Sequence[str] = (),
) -> Open:
    """Occurrence `number`, `at` before now (negative: still to come), last heard of
    `heard` before now (default: at it, or now for one still to come)."""
    if heard is None:
        heard = max(at, timedelta())
    return Open(
        occurrence=number,
        ritual=RITUALS[ritual],
        recipient="",
        slot=(NOW - at).replace(tzinfo=None),
        at=NOW - at,
        status=status,
        last_sent=NOW - heard,
        last_due=NOW - heard,
        last_body=f"message about {number}",
        last_channel="sms",
        last_subject=None,
        confirmed_by=frozenset(confirmed),
        skipped_by=frozenset(skipped),
    )


A = occurrence(1, hours(1))
B = occurrence(2, hours(3))
C = occurrence(3, hours(26))
MINE = occurrence(4, hours(2), status="confirmed", confirmed=["alex"])
THEIRS = occurrence(5, hours(2), status="confirmed", confirmed=["sam"])  # an "either" ritual
WAITING = occurrence(6, hours(2), ritual="date-night", confirmed=["sam"])  # "both": Alex's turn
SKIPPED = occurrence(7, hours(2), status="skipped", skipped=["sam"])
SKIPPED_BY_ME = occurrence(8, hours(2), status="skipped", skipped=["alex"])
CALLED_OFF = occurrence(9, hours(2), status="cancelled")
AHEAD = occurrence(10, -hours(72), ritual="date-night")  # a plan-ahead message's date night
SOON = occurrence(11, -EARLY, ritual="date-night")
NOT_SO_SOON = occurrence(12, -EARLY - timedelta(minutes=1), ritual="date-night")


def numbers(found: Sequence[Open]) -> list[int]:
    return [t.occurrence for t in found]


@pytest.mark.parametrize(
    ("told_", "expected"),
    [
        pytest.param([A, B], [1, 2], id="open-ones-are-to-confirm-in-the-order-told"),
        pytest.param([MINE, A], [1], id="not-one-this-partner-confirmed"),
        pytest.param([WAITING], [6], id="a-both-ritual-the-other-confirmed-is-still-this-ones"),
        pytest.param([THEIRS], [], id="not-one-confirmed-for-the-household"),
        pytest.param([SKIPPED, CALLED_OFF], [], id="not-one-skipped-or-called-off"),
        pytest.param([SOON], [11], id="one-thirty-minutes-ahead-is-close-enough"),
        pytest.param([NOT_SO_SOON, AHEAD], [], id="not-one-more-than-thirty-minutes-ahead"),
    ],
)
def test_to_confirm_is_what_is_still_to_be_done_by_this_partner(
    told_: list[Open], expected: list[int]
) -> None:
    assert numbers(to_confirm(told_, "alex", NOW)) == expected


def target(
    told_: Sequence[Open], expected: Open | Pick | None, id: str, pick: int | None = None
) -> Any:
    return pytest.param(told_, pick, expected, id=id)


CONFIRMS = [
    target([B, A], B, "done-confirms-what-the-latest-message-was-about"),
    target([MINE, B, A], B, "done-takes-the-next-open-when-the-latest-ones-is-done-by-me"),
    target([THEIRS, A], THEIRS, "an-either-ritual-the-other-confirmed-is-still-the-target"),
    target([MINE, THEIRS, A], A, "an-open-one-comes-before-one-the-other-confirmed"),
    target([MINE, THEIRS], THEIRS, "one-the-other-confirmed-when-nothing-else-is-open"),
    target([WAITING], WAITING, "a-both-ritual-waiting-for-this-partner"),
    target([AHEAD], None, "a-plan-ahead-messages-date-night-is-not-confirmed-days-early"),
    target([SOON], SOON, "thirty-minutes-early-is-close-enough"),
    target([NOT_SO_SOON], None, "thirty-one-minutes-early-is-not"),
    target([SKIPPED, CALLED_OFF], None, "a-skipped-or-called-off-one-is-nothing-to-confirm"),
    target([MINE], None, "one-this-partner-confirmed-is-nothing-to-confirm"),
    target([], None, "nothing-told-is-nothing-to-confirm"),
    target([A, B, C], B, "done-2-is-the-second-open", pick=2),
    target([MINE, A, B, C], C, "done-3-counts-only-the-open-ones", pick=3),
    target([A, B, C], Pick(4, (A, B, C)), "done-4-of-three-open-is-no-such-pick", pick=4),
    target([A, B], Pick(0, (A, B)), "done-0-is-no-such-pick", pick=0),
    target([MINE, A], Pick(2, (A,)), "a-pick-lists-only-the-open-ones", pick=2),
    target([MINE], None, "done-1-with-nothing-open-is-nothing-to-confirm", pick=1),
]


@pytest.mark.parametrize(("told_", "pick", "expected"), CONFIRMS)
def test_a_done_confirms_the_occurrence_the_rules_pick(
    told_: list[Open], pick: int | None, expected: Open | Pick | None
) -> None:
    assert confirm_target(told_, "alex", NOW, pick) == expected


SKIPS = [
    target([B, A], B, "skip-takes-what-the-latest-message-was-about"),
    target([AHEAD], AHEAD, "skip-can-skip-a-date-night-still-to-come"),
    target([SKIPPED], SKIPPED, "one-the-other-skipped-is-still-this-partners-to-skip"),
    target([SKIPPED_BY_ME, A], A, "skip-passes-over-one-this-partner-skipped"),
    target([THEIRS, A], A, "skip-passes-over-one-done-already"),
    target([WAITING], None, "a-both-ritual-one-partner-confirmed-is-not-skipped-without-a-pick"),
    target([CALLED_OFF], None, "a-called-off-one-is-nothing-to-skip"),
    target([A, B], B, "skip-2-picks-from-the-list-the-answers-give", pick=2),
    target([WAITING], WAITING, "skip-1-may-name-one-done-by-the-other-partner", pick=1),
    target([AHEAD], None, "skip-1-names-what-is-open-now-not-one-still-to-come", pick=1),
    target([A, B], Pick(3, (A, B)), "skip-3-of-two-is-no-such-pick", pick=3),
]


@pytest.mark.parametrize(("told_", "pick", "expected"), SKIPS)
def test_a_skip_is_about_the_occurrence_the_rules_pick(
    told_: list[Open], pick: int | None, expected: Open | Pick | None
) -> None:
    assert skip_target(told_, "alex", NOW, pick) == expected


@pytest.mark.parametrize(
    ("told_", "expected"),
    [
        pytest.param([A, AHEAD], [1, 10], id="open-ones-and-one-still-to-come"),
        pytest.param([SKIPPED, SKIPPED_BY_ME], [7], id="skipped-by-the-other-not-by-me"),
        pytest.param([MINE, THEIRS, WAITING], [], id="nothing-anyone-confirmed"),
        pytest.param([CALLED_OFF], [], id="nothing-called-off"),
    ],
)
def test_skippable_is_what_nobody_did_and_this_partner_did_not_skip(
    told_: list[Open], expected: list[int]
) -> None:
    assert numbers(skippable(told_, "alex")) == expected


def test_a_skip_pick_of_one_done_already_is_named_but_not_skippable() -> None:
    # What replies then answer "marked as done already, nothing to skip".
    named = skip_target([A, WAITING], "alex", NOW, 2)
    assert named == WAITING
    assert WAITING not in skippable([A, WAITING], "alex")


@pytest.mark.parametrize(
    ("told_", "expected"),
    [
        pytest.param(
            [
                occurrence(1, hours(1), status="confirmed", confirmed=["alex"]),
                occurrence(3, hours(3)),  # listed before 2, as open_for lists them
                occurrence(2, hours(5), heard=hours(1.5)),  # its reminder came at 18:30
            ],
            2,
            id="snooze-brings-back-the-open-message-heard-last-not-the-first-listed",
        ),
        pytest.param([A, B], 1, id="snooze-of-the-latest-message"),
        pytest.param([WAITING, B], 6, id="a-both-ritual-waiting-for-this-partner-can-be-snoozed"),
        pytest.param(
            [occurrence(1, confirmed=["alex"]), occurrence(2, skipped=["alex"]), THEIRS],
            None,
            id="nothing-this-partner-did-or-skipped-or-that-was-done",
        ),
        pytest.param([], None, id="nothing-told-nothing-to-snooze"),
    ],
)
def test_a_snooze_brings_back_the_open_message_heard_last(
    told_: list[Open], expected: int | None
) -> None:
    found = snooze_target(told_, "alex")
    assert (found.occurrence if found else None) == expected


def test_the_tables_occurrences_are_what_their_names_say() -> None:
    # A guard on the fixtures above: a wrong one would make a row pass for the wrong reason.
    checks: dict[str, Any] = {
        "AHEAD is days ahead": AHEAD.at - NOW == hours(72),
        "SOON is EARLY ahead": SOON.at - NOW == EARLY,
        "WAITING is a both ritual": WAITING.ritual.streak == "both",
        "THEIRS is an either ritual": THEIRS.ritual.streak == "either",
    }
    assert all(checks.values()), checks
