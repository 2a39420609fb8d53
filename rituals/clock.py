"""Wall-clock slots and the instants they resolve to.

An occurrence is identified by a local slot (a naive date and time in a zone). This module
turns slots into UTC instants by the rules users are promised (DESIGN.md, "Time semantics"):

- a local time that does not exist (spring forward) is shifted forward by the gap:
  02:30 on a day that jumps 02:00 -> 03:00 resolves to 03:30;
- a local time that occurs twice (fall back) resolves to the first, earlier instant.

Both rules are what PEP 495 gives for ``fold=0``: in a gap, ``fold=0`` applies the offset
from before the transition (so 02:30 at UTC-5 is 03:30 at UTC-4); in a fold, ``fold=0`` is
the earlier of the two instants. We still say it here, once, and test it over every zone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "QuietHours",
    "TimeWindow",
    "format_duration",
    "get_zone",
    "parse_duration",
    "parse_hhmm",
    "resolve",
]


@lru_cache(maxsize=1024)
def get_zone(name: str) -> ZoneInfo:
    """The IANA zone called `name`; ``ValueError`` names it when it is unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: "America" is a folder
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name like 'Europe/Berlin')"
        ) from exc


def resolve(slot: datetime, zone: tzinfo) -> datetime:
    """The one UTC instant of the naive local `slot` in `zone` (see the module docstring)."""
    if slot.tzinfo is not None:
        raise ValueError("a slot is a naive local date and time")
    return slot.replace(tzinfo=zone, fold=0).astimezone(UTC)


_HHMM = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def parse_hhmm(text: str) -> time:
    """``"19:00"`` -> ``time(19, 0)``; 24-hour clock, minutes required."""
    match = _HHMM.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a time of day like '19:00' (24-hour clock)")
    return time(int(match.group(1)), int(match.group(2)))


_DURATION_PART = re.compile(r"(\d+)\s*(w|d|h|m)")
_DURATION = re.compile(r"^\s*(?:\d+\s*[wdhm]\s*)+$")
_UNIT_MINUTES = {"w": 7 * 24 * 60, "d": 24 * 60, "h": 60, "m": 1}
MAX_DURATION_MINUTES = 366 * 24 * 60


def parse_duration(text: str) -> timedelta:
    """``"3d"``, ``"2h"``, ``"90m"``, ``"1h30m"`` -> a positive ``timedelta``."""
    if not _DURATION.match(text):
        raise ValueError(f"{text!r} is not a duration like '2h', '3d', '45m' or '1h30m'")
    minutes = sum(
        int(amount) * _UNIT_MINUTES[unit] for amount, unit in _DURATION_PART.findall(text)
    )
    if minutes <= 0:
        raise ValueError(f"{text!r}: a duration must be longer than zero")
    if minutes > MAX_DURATION_MINUTES:
        raise ValueError(f"{text!r}: a duration is at most 366d")
    return timedelta(minutes=minutes)


def format_duration(value: timedelta) -> str:
    """Whole minutes as :func:`parse_duration` reads them: ``timedelta(hours=26)`` -> ``1d2h``."""
    minutes = int(value.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{n}{u}" for n, u in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    return "".join(parts) or "0m"


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """A daily span of local time such as ``22:00-08:00``; it may cross midnight."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> TimeWindow:
        parts = text.split("-")
        if len(parts) != 2:
            raise ValueError(f"{text!r} is not a span like '22:00-08:00'")
        return cls(parse_hhmm(parts[0]), parse_hhmm(parts[1]))

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    @property
    def crosses_midnight(self) -> bool:
        return self.end < self.start

    @property
    def minutes(self) -> int:
        """Length in minutes (0 when start == end)."""
        span = _minute(self.end) - _minute(self.start)
        return span % (24 * 60)

    @property
    def start_minute(self) -> int:
        return _minute(self.start)

    @property
    def end_minute(self) -> int:
        return _minute(self.end)

    def contains_minute(self, minute: int) -> bool:
        """Whether minute-of-day `minute` (0-1439) is inside ``[start, end)``."""
        start, end = _minute(self.start), _minute(self.end)
        if end < start:
            return minute >= start or minute < end
        return start <= minute < end

    def contains(self, moment: time) -> bool:
        """Whether the local time `moment` is inside ``[start, end)``."""
        if self.crosses_midnight:
            return moment >= self.start or moment < self.end
        return self.start <= moment < self.end

    def end_after(self, local: datetime) -> datetime:
        """For a naive local `local` inside the window: the naive local end of that span."""
        end = datetime.combine(local.date(), self.end)
        if end <= local:
            end += timedelta(days=1)
        return end


@dataclass(frozen=True)
class QuietHours:
    """The quiet hours of a message's recipients, seen from the zone a window is drawn in
    (the household's, or a partner's own for their own nudges).

    Random windows test every 5-minute mark of every day against them, so marks are minutes
    of the local day (ints), and on a day when no zone involved changes its offset each
    partner's clock is a fixed shift from the household's: one addition per mark.

    `home`, when the draw is in another zone than the household's, is the household's: a
    slot is named on its clock, so a mark that falls in the second pass of an hour it
    repeats (fall back) is not allowed; its wall-clock reading there names the first pass.
    """

    zone: tzinfo
    windows: tuple[tuple[TimeWindow, tzinfo], ...]
    home: tzinfo | None = None
    _shifts: dict[date, tuple[tuple[TimeWindow, int], ...] | None] = field(
        default_factory=dict, compare=False, hash=False, repr=False
    )
    _offsets: dict[date, int] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @classmethod
    def of(
        cls,
        zone: tzinfo,
        windows: Sequence[tuple[TimeWindow | None, tzinfo]],
        *,
        home: tzinfo | None = None,
    ) -> QuietHours:
        """One shared instance per zone and windows: households alike share the per-day
        work (what each day's quiet hours leave), which is most of a random draw's cost."""
        kept = tuple((w, own) for w, own in windows if w is not None)
        return _quiet_hours(zone, kept, None if home == zone else home)

    def allows(self, slot: datetime) -> bool:
        """Whether the naive local `slot` is outside every recipient's quiet hours."""
        instant = resolve(slot, self.zone)
        return not any(w.contains(instant.astimezone(own).time()) for w, own in self.windows)

    def named_at_home(self, slot: datetime) -> bool:
        """Whether the naive local `slot`'s instant reads, on the household's clock, as a
        wall-clock time that resolves back to it (not the second pass of a repeated hour)."""
        if self.home is None:
            return True
        instant = resolve(slot, self.zone)
        return resolve(instant.astimezone(self.home).replace(tzinfo=None), self.home) == instant

    def utc_base(self, day: date) -> int | None:
        """Where minute 0 of local `day` falls on the UTC minute line, if the day is steady."""
        self._day_shifts(day)
        offset = self._offsets.get(day)
        return None if offset is None else day.toordinal() * _DAY - offset

    def utc_minute(self, day: date, minute: int) -> int:
        """Minute `minute` of local `day` on a linear count of UTC minutes (for spacing)."""
        self._day_shifts(day)
        offset = self._offsets.get(day)
        if offset is not None:
            return day.toordinal() * _DAY + minute - offset
        instant = resolve(datetime.combine(day, time()) + timedelta(minutes=minute), self.zone)
        return instant.toordinal() * _DAY + instant.hour * 60 + instant.minute

    def exists(self, slot: datetime) -> bool:
        """Whether the naive local `slot` happens at all (not skipped by a spring-forward)."""
        return resolve(slot, self.zone).astimezone(self.zone).replace(tzinfo=None) == slot

    def allowed_minutes(self, day: date, minutes: Sequence[int]) -> Sequence[int]:
        """The minutes of local `day` (0-1439) in `minutes` that exist and `allows`, in order."""
        shifts = self._day_shifts(day)
        if shifts is None:
            midnight = datetime.combine(day, time())
            slots = ((m, midnight + timedelta(minutes=m)) for m in minutes)
            return [
                m
                for m, slot in slots
                if self.exists(slot) and self.allows(slot) and self.named_at_home(slot)
            ]
        if not shifts:
            return minutes
        return _outside(shifts, tuple(minutes) if not isinstance(minutes, range) else minutes)

    def _day_shifts(self, day: date) -> tuple[tuple[TimeWindow, int], ...] | None:
        if day not in self._shifts:
            midnight = datetime.combine(day, time())
            start = resolve(midnight, self.zone)
            end = resolve(midnight + timedelta(days=1), self.zone)
            # Steady means: the day starts at 00:00 (not in a gap) and keeps one offset.
            here = _steady_offset(start, end, self.zone) if self.exists(midnight) else None
            # The household's clock, when it is another, must not repeat an hour that day;
            # a repeat that began the day before may reach into this one.
            if here is None or (
                self.home is not None
                and _steady_offset(start - timedelta(days=1), end, self.home) is None
            ):
                self._shifts[day] = None
                return None
            self._offsets[day] = int(here.total_seconds()) // 60
            found: list[tuple[TimeWindow, int]] = []
            for window, own in self.windows:
                theirs = _steady_offset(start, end, own)
                if theirs is None:
                    self._shifts[day] = None
                    return None
                found.append((window, int((theirs - here).total_seconds()) // 60))
            self._shifts[day] = tuple(found)
        return self._shifts[day]


@lru_cache(maxsize=1024)
def _quiet_hours(
    zone: tzinfo, windows: tuple[tuple[TimeWindow, tzinfo], ...], home: tzinfo | None
) -> QuietHours:
    return QuietHours(zone, windows, home)


@lru_cache(maxsize=4096)
def _outside(
    shifts: tuple[tuple[TimeWindow, int], ...], minutes: range | tuple[int, ...]
) -> tuple[int, ...]:
    """`minutes` outside every window seen `shift` minutes away; most days share an answer."""
    return tuple(
        m for m in minutes if not any(w.contains_minute((m + s) % _DAY) for w, s in shifts)
    )


def _steady_offset(start: datetime, end: datetime, zone: tzinfo) -> timedelta | None:
    """The UTC offset of `zone` over ``[start, end)`` when it does not change, else None."""
    first = start.astimezone(zone).utcoffset()
    last = (end - timedelta(seconds=1)).astimezone(zone).utcoffset()
    return first if first == last else None


_DAY = 24 * 60


def _minute(moment: time) -> int:
    return moment.hour * 60 + moment.minute
