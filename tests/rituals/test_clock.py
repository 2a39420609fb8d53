"""Slots resolve to instants by the promised rules; named cases in zones that have DST."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from rituals.clock import TimeWindow, format_duration, get_zone, parse_duration, resolve


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone", "slot", "expected_utc", "expected_local"),
    [
        # New York, spring forward 2027-03-14 02:00 -> 03:00.
        ("America/New_York", "2027-03-14T00:30", "2027-03-14T05:30", "00:30"),
        ("America/New_York", "2027-03-14T01:30", "2027-03-14T06:30", "01:30"),
        ("America/New_York", "2027-03-14T02:30", "2027-03-14T07:30", "03:30"),  # gap: +1h
        ("America/New_York", "2027-03-14T03:30", "2027-03-14T07:30", "03:30"),
        # New York, fall back 2027-11-07 02:00 -> 01:00: 01:30 happens twice, take the first.
        ("America/New_York", "2027-11-07T00:30", "2027-11-07T04:30", "00:30"),
        ("America/New_York", "2027-11-07T01:30", "2027-11-07T05:30", "01:30"),
        ("America/New_York", "2027-11-07T02:30", "2027-11-07T07:30", "02:30"),
        # Sydney: spring forward 2027-10-03 02:00 -> 03:00; fall back 2027-04-04 03:00 -> 02:00.
        ("Australia/Sydney", "2027-10-03T02:30", "2027-10-02T16:30", "03:30"),
        ("Australia/Sydney", "2027-04-04T02:30", "2027-04-03T15:30", "02:30"),
        # Lord Howe moves by 30 minutes: 02:00 -> 02:30 on 2027-10-03; 02:00 -> 01:30 on 04-04.
        ("Australia/Lord_Howe", "2027-10-03T02:15", "2027-10-02T15:45", "02:45"),
        ("Australia/Lord_Howe", "2027-04-04T01:45", "2027-04-03T14:45", "01:45"),
        # Kolkata has no DST: a plain +05:30.
        ("Asia/Kolkata", "2027-03-14T02:30", "2027-03-13T21:00", "02:30"),
        ("Asia/Kolkata", "2027-11-07T01:30", "2027-11-06T20:00", "01:30"),
        # Berlin: 2027-03-28 02:30 does not exist; 2027-10-31 02:30 happens twice.
        ("Europe/Berlin", "2027-03-28T02:30", "2027-03-28T01:30", "03:30"),
        ("Europe/Berlin", "2027-10-31T02:30", "2027-10-31T00:30", "02:30"),
    ],
)
def test_it_resolves_each_named_slot_to_one_instant(
    zone: str, slot: str, expected_utc: str, expected_local: str
) -> None:
    instant = resolve(datetime.fromisoformat(slot), get_zone(zone))
    assert instant == utc(expected_utc)
    assert instant.astimezone(get_zone(zone)).strftime("%H:%M") == expected_local


def test_it_refuses_an_aware_slot() -> None:
    with pytest.raises(ValueError, match="naive"):
        resolve(datetime(2027, 1, 1, tzinfo=UTC), get_zone("UTC"))


@pytest.mark.parametrize("name", ["Mars/Olympus", "America", "Europe", "../etc/passwd", ""])
def test_it_names_an_unknown_zone(name: str) -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        get_zone(name)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2h", timedelta(hours=2)),
        ("3d", timedelta(days=3)),
        ("45m", timedelta(minutes=45)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1w", timedelta(weeks=1)),
        ("1d 2h", timedelta(days=1, hours=2)),
    ],
)
def test_it_reads_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert parse_duration(format_duration(expected)) == expected


@pytest.mark.parametrize(
    "text",
    ["", "soon", "2", "h2", "2 hours", "0m", "-1h", "1.5h", "367d", "2000000w", "9" * 30 + "d"],
)
def test_it_refuses_what_is_not_a_duration(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("window", "moment", "inside"),
    [
        ("22:00-08:00", "23:30", True),
        ("22:00-08:00", "07:59", True),
        ("22:00-08:00", "08:00", False),
        ("22:00-08:00", "21:59", False),
        ("13:00-14:00", "13:00", True),
        ("13:00-14:00", "14:00", False),
    ],
)
def test_a_window_contains_the_times_from_its_start_up_to_its_end(
    window: str, moment: str, inside: bool
) -> None:
    assert TimeWindow.parse(window).contains(time.fromisoformat(moment)) is inside


def test_the_end_of_a_night_window_is_the_next_morning() -> None:
    window = TimeWindow.parse("22:00-08:00")
    assert window.end_after(datetime(2027, 1, 1, 23, 0)) == datetime(2027, 1, 2, 8, 0)
    assert window.end_after(datetime(2027, 1, 2, 6, 0)) == datetime(2027, 1, 2, 8, 0)
    assert window.minutes == 600


@pytest.mark.parametrize("text", ["22:00", "25:00-08:00", "22-08", "10:00-20:00-21:00"])
def test_it_refuses_a_malformed_window(text: str) -> None:
    with pytest.raises(ValueError):
        TimeWindow.parse(text)
