"""What a TELL's sender is told, from a table: when it arrives on the sender's own clock
(the zone named when the partners' zones differ), or why nothing was sent."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from scheduler.acts.acts import Passed, PassedTo
from scheduler.acts.wording import passed_on

UTC_ZONE = ZoneInfo("UTC")
NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 1, 13, 21, 30, tzinfo=UTC)


def to_sam(due: datetime) -> Passed:
    return Passed("queued", (PassedTo("sam", "Sam", due),))


@pytest.mark.parametrize(
    ("passed", "zone", "sams", "counted", "expected"),
    [
        pytest.param(to_sam(NOW), UTC_ZONE, UTC_ZONE, False, "Sent to Sam.", id="now"),
        pytest.param(
            to_sam(NOW),
            UTC_ZONE,
            UTC_ZONE,
            True,
            "Sent to Sam. Your appreciation counts as done.",
            id="now-and-counted",
        ),
        pytest.param(
            to_sam(datetime(2026, 1, 13, 23, 0, tzinfo=UTC)),
            UTC_ZONE,
            UTC_ZONE,
            False,
            "Sam gets it at 23:00, after their quiet hours.",
            id="later-today",
        ),
        pytest.param(
            to_sam(datetime(2026, 1, 14, 8, 0, tzinfo=UTC)),
            UTC_ZONE,
            UTC_ZONE,
            False,
            "Sam gets it tomorrow at 08:00, after their quiet hours.",
            id="tomorrow",
        ),
        pytest.param(
            # Sam in Berlin sleeps until 08:00 there, 07:00 UTC, 02:00 in New York: Alex's
            # clock, said to be theirs.
            to_sam(datetime(2026, 1, 14, 7, 0, tzinfo=UTC)),
            NEW_YORK,
            BERLIN,
            False,
            "Sam gets it tomorrow at 02:00 your time (America/New_York), after their quiet hours.",
            id="other-zone-the-senders-clock-named",
        ),
        pytest.param(
            to_sam(datetime(2026, 1, 14, 7, 0, tzinfo=UTC)),
            BERLIN,
            NEW_YORK,
            False,
            "Sam gets it tomorrow at 08:00 your time (Europe/Berlin), after their quiet hours.",
            id="other-zone-tomorrow",
        ),
        pytest.param(
            Passed("unreachable", (PassedTo("sam", "Sam", NOW),)),
            UTC_ZONE,
            UTC_ZONE,
            False,
            "That could not be passed on: Sam turned off Tend's messages. Nothing was sent.",
            id="opted-out",
        ),
        pytest.param(
            Passed("limit"),
            UTC_ZONE,
            UTC_ZONE,
            False,
            "You have passed on 5 messages today, the most for one day. "
            "Nothing was sent: try again tomorrow.",
            id="limit",
        ),
        pytest.param(
            Passed("alone"),
            UTC_ZONE,
            UTC_ZONE,
            False,
            "There is nobody else in your household to pass that on to. Nothing was sent.",
            id="alone",
        ),
    ],
)
def test_the_sender_is_told_when_it_arrives_or_why_not(
    passed: Passed, zone: ZoneInfo, sams: ZoneInfo, counted: bool, expected: str
) -> None:
    answer = passed_on(passed, now=NOW, zone=zone, zones={"sam": sams}, counted=counted)
    assert answer == expected
