"""Schedules: the forms a ritual file accepts, turned into local wall-clock slots.

Every schedule yields *slots*: naive local dates and times in the household's zone. A slot is
what identifies an occurrence; turning it into an instant is :func:`rituals.clock.resolve`'s
job, so the DST rules live in one place. Fixed schedules (phrases, ``cron:``, ``rrule:``) are
the same wall-clock sequence in every zone; random windows are drawn per household, ritual,
recipient and period, and avoid the recipients' quiet hours.

Parsing is left to libraries: ``dateutil.rrule`` for phrases and ``rrule:``, APScheduler's
``CronTrigger`` for ``cron:``. APScheduler is run in UTC, which has no DST, purely to
enumerate wall-clock values; it is never asked to resolve a local time (its ``CronTrigger``
fires twice in a repeated autumn hour and skips times after a spring-forward).
"""

from __future__ import annotations

import hashlib
import heapq
import random
import re
from abc import ABC, abstractmethod
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from itertools import islice
from typing import Literal

from apscheduler.triggers.cron import CronTrigger
from dateutil import rrule as du

from rituals.clock import QuietHours, TimeWindow, parse_hhmm

__all__ = [
    "EPOCH",
    "FIRST_YEAR",
    "LAST_YEAR",
    "FixedSchedule",
    "RandomWindow",
    "Schedule",
    "ScheduleError",
    "parse_schedule",
]

#: Occurrence indexes count from here (a Monday). Rules without their own start begin here.
EPOCH = datetime(2024, 1, 1)

#: Occurrence indexes count slots from the epoch, so planning is bounded to these years.
FIRST_YEAR, LAST_YEAR = 2000, 2099

_BOUND = datetime(LAST_YEAR + 1, 1, 1)
# A rule's period (FREQ times INTERVAL) in hours, roughly, and the longest one a ritual may
# have: INTERVAL=1000000 weeks would put its second round past any date Python can hold.
_PERIOD_HOURS = {du.YEARLY: 366 * 24, du.MONTHLY: 31 * 24, du.WEEKLY: 7 * 24, du.DAILY: 24}
MAX_PERIOD_YEARS = 10

#: Rituals are not alarms: a schedule may fire at most once an hour.
MIN_GAP = timedelta(hours=1)

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_NAMES = {
    **{name: i for i, name in enumerate(WEEKDAYS)},
    **{
        full: i
        for i, full in enumerate(
            ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
        )
    },
}
_ORDINALS = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": -1}

EXAMPLES = (
    "'daily at 19:00', 'weekly on sun at 19:30', 'every 2 weeks on fri at 19:00', "
    "'monthly on the first sat at 10:00', 'monthly on day 1 at 09:00', "
    "'cron: 30 19 * * sun', 'rrule: FREQ=WEEKLY;BYDAY=FR;BYHOUR=19;BYMINUTE=0'"
)


class ScheduleError(ValueError):
    """A schedule that cannot be understood; the message says what was expected."""


class Schedule(ABC):
    """What every schedule form offers."""

    source: str


# --------------------------------------------------------------------------- fixed schedules


class FixedSchedule(Schedule):
    """A schedule whose slots are the same wall-clock sequence in every zone."""

    @abstractmethod
    def iter_from(self, start: datetime) -> Iterator[datetime]:
        """Slots at or after the naive local `start`, ascending; endless unless the rule ends."""

    def slots(self, start: datetime, end: datetime) -> list[tuple[int, datetime]]:
        """``(index, slot)`` for slots in ``[start, end)``; the index counts from :data:`EPOCH`."""
        found: list[tuple[int, datetime]] = []
        for year in range(start.year, (end - timedelta(microseconds=1)).year + 1):
            slots = _year_slots(self, year)
            offset = _prefix(self, year)
            first = bisect_left(slots, start)
            for i in range(first, len(slots)):
                if slots[i] >= end:
                    break
                found.append((offset + i, slots[i]))
        return found

    def next_slots(self, after: datetime, count: int) -> list[datetime]:
        """Up to `count` slots at or after `after` (fewer when the rule ends)."""
        return list(islice(self.iter_from(after), count))

    def slots_between(self, start: datetime, end: datetime) -> list[datetime]:
        """Every slot in ``[start, end)``, ascending; a kind of schedule that can list them
        faster than :meth:`iter_from` walks them says how."""
        slots: list[datetime] = []
        for slot in self.iter_from(start):
            if slot >= end:
                break
            slots.append(slot)
        return slots


@lru_cache(maxsize=4096)
def _year_slots(schedule: FixedSchedule, year: int) -> list[datetime]:
    """All slots of one calendar year, cached: indexes need counts from the epoch."""
    return schedule.slots_between(datetime(year, 1, 1), datetime(year + 1, 1, 1))


@lru_cache(maxsize=4096)
def _prefix(schedule: FixedSchedule, year: int) -> int:
    """The index of the first slot of `year` (negative before the epoch)."""
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise ValueError(f"Tend plans the years {FIRST_YEAR}-{LAST_YEAR}; {year} is outside them")
    if year >= EPOCH.year:
        return sum(len(_year_slots(schedule, y)) for y in range(EPOCH.year, year))
    return -sum(len(_year_slots(schedule, y)) for y in range(year, EPOCH.year))


@dataclass(frozen=True, eq=True)
class RRuleSchedule(FixedSchedule):
    """A ``dateutil`` recurrence rule (from a phrase or an ``rrule:`` line)."""

    source: str
    rule: du.rrule = field(compare=False, hash=False, repr=False)

    def __hash__(self) -> int:
        return hash(("rrule", self.source))

    def iter_from(self, start: datetime) -> Iterator[datetime]:
        return _rebased(self.rule, start).xafter(start, inc=True)


def _rebased(rule: du.rrule, start: datetime) -> du.rrule:
    """`rule` starting at its last whole period before `start`, with the same slots after it.

    ``dateutil`` walks a rule from its DTSTART; moving DTSTART forward by whole multiples of
    the rule's period (days, weeks, months or years, times INTERVAL) keeps every later slot
    and spares walking the years before `start`. A rule with COUNT is left as it is.
    """
    dtstart: datetime = rule._dtstart  # type: ignore[attr-defined]
    interval: int = rule._interval  # type: ignore[attr-defined]
    freq: int = rule._freq  # type: ignore[attr-defined]
    if rule._count is not None or start <= dtstart:  # type: ignore[attr-defined]
        return rule
    if freq in (du.DAILY, du.WEEKLY):
        step = timedelta(days=interval * (7 if freq == du.WEEKLY else 1))
        periods = (start - dtstart) // step - 1
        if periods < 1:  # a period longer than the way to `start`: nothing to skip
            return rule
        moved = dtstart + step * periods
    elif freq in (du.MONTHLY, du.YEARLY) and dtstart.day <= 28:
        months = (start.year - dtstart.year) * 12 + start.month - dtstart.month
        unit = interval * (12 if freq == du.YEARLY else 1)
        shift = (months // unit - 1) * unit
        if shift <= 0:
            return rule
        year, month = divmod(dtstart.month - 1 + shift, 12)
        moved = dtstart.replace(year=dtstart.year + year, month=month + 1)
    else:
        return rule
    return rule.replace(dtstart=moved) if moved > dtstart else rule


@dataclass(frozen=True, eq=True)
class CronSchedule(FixedSchedule):
    """A five-field crontab line, enumerated by APScheduler's ``CronTrigger`` in UTC."""

    source: str
    triggers: tuple[CronTrigger, ...] = field(compare=False, hash=False, repr=False)

    def __hash__(self) -> int:
        return hash(("cron", self.source))

    def slots_between(self, start: datetime, end: datetime) -> list[datetime]:
        week = _weekly_pattern(self)
        if week is None:
            return super().slots_between(start, end)
        return _repeat_weekly(week, start, end)

    def next_slots(self, after: datetime, count: int) -> list[datetime]:
        week = _weekly_pattern(self)
        if week is None:
            return super().next_slots(after, count)
        if not week or count <= 0:
            return []
        weeks = -(-count // len(week)) + 1  # the first week may start after some of its slots
        return _repeat_weekly(week, after, after + timedelta(days=7 * weeks))[:count]

    def iter_from(self, start: datetime) -> Iterator[datetime]:
        streams = [_cron_stream(trigger, start) for trigger in self.triggers]
        last: datetime | None = None
        for slot in heapq.merge(*streams):
            if slot != last:
                yield slot
                last = slot


@lru_cache(maxsize=4096)
def _weekly_pattern(schedule: CronSchedule) -> tuple[timedelta, ...] | None:
    """The slots of one week as offsets from Monday 00:00, when they repeat every week.

    A crontab line whose day-of-month and month are ``*`` (most: "15 18 * * mon-fri") fires
    at the same weekdays and times every week, and its year is those repeated: far cheaper
    than asking APScheduler for each of a year's slots, which every count from the epoch
    does (a third of ``tend check``'s time on the example). The week itself is still
    APScheduler's answer.
    """
    wildcard = ("year", "month", "day", "week")
    for trigger in schedule.triggers:
        if any(str(f) != "*" for f in trigger.fields if f.name in wildcard):
            return None
    monday = EPOCH - timedelta(days=EPOCH.weekday())
    offsets: list[timedelta] = []
    for slot in schedule.iter_from(monday):
        if slot >= monday + timedelta(days=7):
            break
        offsets.append(slot - monday)
    return tuple(offsets)


def _repeat_weekly(week: tuple[timedelta, ...], start: datetime, end: datetime) -> list[datetime]:
    monday = datetime.combine(start.date(), time()) - timedelta(days=start.weekday())
    slots: list[datetime] = []
    while monday < end:
        slots.extend(s for offset in week if start <= (s := monday + offset) < end)
        monday += timedelta(days=7)
    return slots


def _cron_stream(trigger: CronTrigger, start: datetime) -> Iterator[datetime]:
    fire: datetime | None = trigger.get_next_fire_time(None, start.replace(tzinfo=UTC))
    while fire is not None:
        yield fire.replace(tzinfo=None)
        fire = trigger.get_next_fire_time(fire, fire)


# --------------------------------------------------------------------------- random windows

Per = Literal["day", "week", "month"]
SLOT_STEP = 5  # minutes: random times land on :00, :05, :10 ...


@dataclass(frozen=True)
class RandomWindow(Schedule):
    """``times`` random moments ``per`` day, week or month, inside ``between`` on ``days``."""

    times: int
    per: Per
    between: TimeWindow
    days: tuple[int, ...] = tuple(range(7))
    source: str = ""

    def periods(self, first: date, last: date) -> Iterator[tuple[int, date, date]]:
        """``(period number, first day, day after)`` for periods meeting ``[first, last)``."""
        day = self._period_start(first)
        while day < last:
            following = self._period_after(day)
            yield self._period_number(day), day, following
            day = following

    @property
    def marks(self) -> range:
        """Minutes of the day a draw may land on: every 5 minutes inside ``between``."""
        return range(self.between.start_minute, self.between.end_minute, SLOT_STEP)

    def draw(
        self, seed: str, first: date, after: date, quiet: QuietHours | None = None
    ) -> list[datetime]:
        """This period's slots, ascending: the same `seed` and period always give the same."""
        rng = random.Random(int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big"))
        by_day: list[tuple[int, Sequence[int]]] = []  # (days after `first`, allowed minutes)
        for offset in range((after - first).days):
            day = first + timedelta(days=offset)
            if day.weekday() in self.days:
                options = quiet.allowed_minutes(day, self.marks) if quiet else self.marks
                if options:
                    by_day.append((offset, options))
        if not by_day:
            return []
        start = datetime.combine(first, time())

        def reals(offset: int, minutes: Sequence[int]) -> list[int]:
            """`minutes` of that day on one line of real time: spacing holds across DST."""
            day = first + timedelta(days=offset)
            base = offset * 24 * 60 if quiet is None else quiet.utc_base(day)
            if base is not None:
                return [base + m for m in minutes]
            assert quiet is not None
            return [quiet.utc_minute(day, m) for m in minutes]

        hour = 60
        if self.per != "day" and self.times <= len(by_day):
            # One a day, on distinct days: the natural spread for "3 times a week"; still an
            # hour apart where it can be (23:55 and 00:05 are on distinct days).
            taken: list[int] = []
            picked: list[tuple[int, int]] = []
            for i in sorted(rng.sample(range(len(by_day)), self.times)):
                offset, options = by_day[i]
                on_line = reals(offset, options)
                near = [t for t in taken if on_line[0] - hour < t < on_line[-1] + hour]
                choices: Sequence[int] = range(len(options))
                if near:
                    spaced = [k for k in choices if all(abs(on_line[k] - t) >= hour for t in near)]
                    choices = spaced or choices
                k = rng.choice(choices)
                taken.append(on_line[k])
                picked.append((offset, options[k]))
            return [start + timedelta(days=o, minutes=m) for o, m in picked]
        pool = [
            (r, o, m)
            for o, options in by_day
            for r, m in zip(reals(o, options), options, strict=True)
        ]
        # An hour apart where the window allows; quiet hours may leave less room than the
        # window (the file check refuses windows that are too small on their own).
        for gap in (hour, 30, 15, SLOT_STEP):
            chosen = _spaced_sample(rng, [r for r, _, _ in pool], self.times, gap)
            if chosen is not None:
                wall = {r: (o, m) for r, o, m in pool}
                slots = [start + timedelta(days=wall[r][0], minutes=wall[r][1]) for r in chosen]
                return sorted(slots)
        return [start + timedelta(days=o, minutes=m) for _, o, m in pool]  # fewer than times

    def _period_start(self, day: date) -> date:
        if self.per == "week":
            return day - timedelta(days=day.weekday())
        if self.per == "month":
            return day.replace(day=1)
        return day

    def _period_after(self, start: date) -> date:
        if self.per == "week":
            return start + timedelta(days=7)
        if self.per == "month":
            return date(start.year + start.month // 12, start.month % 12 + 1, 1)
        return start + timedelta(days=1)

    def _period_number(self, start: date) -> int:
        epoch = EPOCH.date()
        if self.per == "month":
            return (start.year - epoch.year) * 12 + start.month - epoch.month
        days = (start - epoch).days
        return days // 7 if self.per == "week" else days


def _spaced_sample(rng: random.Random, pool: list[int], count: int, gap: int) -> list[int] | None:
    """`count` minutes from `pool`, each at least `gap` minutes from the others, or None."""
    chosen: list[int] = []
    for _ in range(count):
        options = [m for m in pool if all(abs(m - c) >= gap for c in chosen)]
        if not options:
            return None
        chosen.append(rng.choice(options))
    return chosen


# --------------------------------------------------------------------------- parsing

_AT = r"at\s+(?P<time>\d{1,2}:\d{2})"
_DAYLIST = r"(?P<days>[a-z]+(?:\s*(?:,|and)\s*[a-z]+)*)"
_PHRASES = {
    "daily": re.compile(rf"^(?:daily|every\s+day)\s+{_AT}$"),
    "weekly": re.compile(rf"^weekly\s+on\s+{_DAYLIST}\s+{_AT}$"),
    "every_weeks": re.compile(
        rf"^every\s+(?P<n>\d+)\s+weeks?\s+on\s+{_DAYLIST}\s+{_AT}"
        r"(?:\s+starting\s+(?P<start>\d{4}-\d{2}-\d{2}))?$"
    ),
    "monthly_nth": re.compile(rf"^monthly\s+on\s+the\s+(?P<nth>[a-z]+)\s+(?P<day>[a-z]+)\s+{_AT}$"),
    "monthly_day": re.compile(rf"^monthly\s+on\s+day\s+(?P<dom>\d{{1,2}})\s+{_AT}$"),
}


def parse_schedule(value: str | dict[str, object]) -> Schedule:
    """Any schedule form of the ritual file; ``ScheduleError`` says what is wrong."""
    if isinstance(value, dict):
        return parse_random_window(value)
    text = " ".join(value.strip().split())
    lowered = text.lower()
    if lowered.startswith("cron:"):
        return parse_cron(text[5:].strip(), source=text)
    if lowered.startswith("rrule:"):
        return parse_rrule(text[6:].strip().replace("\\n", "\n"), source=text)
    return parse_phrase(lowered, source=text)


def parse_phrase(text: str, *, source: str) -> RRuleSchedule:
    found = next(((k, m) for k, p in _PHRASES.items() if (m := p.match(text))), None)
    if found is None:
        raise ScheduleError(f"cannot read schedule {source!r}; {_hint(text)}")
    kind, match = found
    at = _time(match.group("time"))
    if kind == "daily":
        rule = du.rrule(du.DAILY, dtstart=EPOCH, byhour=at.hour, byminute=at.minute, bysecond=0)
    elif kind == "weekly":
        days = _days(match.group("days"))
        rule = du.rrule(
            du.WEEKLY, dtstart=EPOCH, byweekday=days, byhour=at.hour, byminute=at.minute, bysecond=0
        )
    elif kind == "every_weeks":
        interval = int(match.group("n"))
        if not 1 <= interval <= 52:
            raise ScheduleError(f"every {interval} weeks: the number of weeks must be 1 to 52")
        start = EPOCH
        if match.group("start"):
            try:
                start = datetime.fromisoformat(match.group("start"))
            except ValueError as exc:
                raise ScheduleError(f"starting {match.group('start')}: not a date") from exc
            if not FIRST_YEAR <= start.year <= LAST_YEAR:
                raise ScheduleError(
                    f"starting {start:%Y-%m-%d}: use a date in {FIRST_YEAR}-{LAST_YEAR}"
                )
            start -= timedelta(days=start.weekday())  # weeks count from that Monday
        rule = du.rrule(
            du.WEEKLY,
            dtstart=start,
            interval=interval,
            byweekday=_days(match.group("days")),
            byhour=at.hour,
            byminute=at.minute,
            bysecond=0,
        )
    elif kind == "monthly_nth":
        nth = _ORDINALS.get(match.group("nth"))
        if nth is None:
            raise ScheduleError(f"{match.group('nth')!r}: say first, second, third, fourth or last")
        weekday = du.weekdays[_days(match.group("day"))[0]](nth)
        rule = du.rrule(
            du.MONTHLY,
            dtstart=EPOCH,
            byweekday=weekday,
            byhour=at.hour,
            byminute=at.minute,
            bysecond=0,
        )
    else:
        dom = int(match.group("dom"))
        if not 1 <= dom <= 31:
            raise ScheduleError(f"day {dom}: a day of the month is 1 to 31")
        rule = du.rrule(
            du.MONTHLY,
            dtstart=EPOCH,
            bymonthday=dom,
            byhour=at.hour,
            byminute=at.minute,
            bysecond=0,
        )
    return RRuleSchedule(source=source, rule=_bounded(rule))


def parse_rrule(text: str, *, source: str) -> RRuleSchedule:
    if not text:
        raise ScheduleError("rrule: is empty; write e.g. 'rrule: FREQ=WEEKLY;BYDAY=FR;BYHOUR=19'")
    if re.search(r"FREQ=(SECONDLY|MINUTELY)", text, re.IGNORECASE):
        raise ScheduleError(
            "rrule: fires more than once an hour; rituals need FREQ=HOURLY or slower"
        )
    for part, limit in (("BYMONTHDAY", 31), ("BYYEARDAY", 366), ("BYWEEKNO", 53)):
        found = re.search(rf"{part}=([-+\d,]+)", text, re.IGNORECASE)
        numbers = [int(n) for n in found.group(1).split(",") if n] if found else []
        if any(n == 0 or abs(n) > limit for n in numbers):
            raise ScheduleError(f"rrule: {part} takes 1 to {limit} or -1 to -{limit}")
    try:
        rule = du.rrulestr(text, dtstart=EPOCH, forceset=False)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise ScheduleError(f"rrule: {exc}") from exc
    if not isinstance(rule, du.rrule):
        raise ScheduleError(
            "rrule: give one RRULE (EXDATE, RDATE and several rules are not supported)"
        )
    dtstart: datetime | None = getattr(rule, "_dtstart", None)
    if dtstart is not None and dtstart.tzinfo is not None:
        raise ScheduleError(
            "rrule: DTSTART must be a local time without TZID or Z; the household's zone applies"
        )
    has_start = "DTSTART" in text.upper()
    if not has_start and "BYHOUR" not in text.upper():
        raise ScheduleError(
            "rrule: say when in the day with BYHOUR and BYMINUTE (or a DTSTART with a time); "
            "without them it fires at midnight"
        )
    if not has_start and "COUNT=" in text.upper():
        raise ScheduleError("rrule: COUNT needs a DTSTART to count from")
    interval: int = rule._interval  # type: ignore[attr-defined]
    if interval < 1:
        raise ScheduleError("rrule: INTERVAL must be at least 1")
    if dtstart is not None and not FIRST_YEAR <= dtstart.year <= LAST_YEAR:
        raise ScheduleError(f"rrule: DTSTART must be in the years {FIRST_YEAR}-{LAST_YEAR}")
    hours = interval * _PERIOD_HOURS.get(rule._freq, 1)  # type: ignore[attr-defined]
    if hours > MAX_PERIOD_YEARS * 366 * 24:
        raise ScheduleError(
            f"rrule: INTERVAL={interval} puts about {hours / 24 / 365.25:,.0f} years between "
            f"rounds; a ritual comes round at least every {MAX_PERIOD_YEARS} years"
        )
    rule = _bounded(rule)
    start: datetime = rule._dtstart  # type: ignore[attr-defined]
    try:
        # dateutil walks a rule that can never match (BYMONTHDAY=-32) day by day to its end:
        # look eight years ahead (a leap day is in there), not to the end of the century.
        probe = rule.replace(count=None, until=min(_BOUND, start.replace(year=start.year + 8)))
        first = next(iter(probe), None)
    except (ValueError, TypeError, IndexError, OverflowError, ZeroDivisionError) as exc:
        raise ScheduleError(f"rrule: {exc}") from exc
    if first is None and (rule._until is None or rule._until > probe._until):  # type: ignore[attr-defined]
        raise ScheduleError("rrule: never fires in the eight years from its start")
    return RRuleSchedule(source=source, rule=rule)


def _bounded(rule: du.rrule) -> du.rrule:
    """`rule` ending by 2100: planning never looks further, and no walk can run to year 9999."""
    until: datetime | None = rule._until  # type: ignore[attr-defined]
    if rule._count is not None or (until is not None and until <= _BOUND):  # type: ignore[attr-defined]
        return rule
    return rule.replace(until=_BOUND)


_CRON_DOW_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def parse_cron(text: str, *, source: str) -> CronSchedule:
    fields = text.split()
    if len(fields) != 5:
        raise ScheduleError(
            f"cron: needs 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}"
        )
    minute, hour, dom, month, dow = fields
    try:
        days = _cron_weekdays(dow)
    except ValueError as exc:
        raise ScheduleError(f"cron: day-of-week {dow!r}: {exc}") from exc

    def trigger(day: str, day_of_week: str | None) -> CronTrigger:
        return CronTrigger(
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=day_of_week,
            second=0,
            timezone=UTC,
        )

    triggers: tuple[CronTrigger, ...]
    try:
        if not dom.startswith("*") and not dow.startswith(("*", "?")):
            # With both day fields restricted cron fires when EITHER matches (a field that
            # starts with * leaves the other in charge); APScheduler requires both.
            triggers = (trigger(dom, None), trigger("*", days))
        else:
            triggers = (trigger(dom, days),)
    except ValueError as exc:
        raise ScheduleError(f"cron: {_cron_message(str(exc))}") from exc
    return CronSchedule(source=source, triggers=triggers)


def _cron_message(text: str) -> str:
    """APScheduler's wording, shortened: "Error validating expression '25': the last ..."."""
    text = re.sub(r"^Error validating expression '[^']*': ", "", text)
    if text.startswith("Unrecognized expression"):
        text += " (cron here takes numbers, names, *, ranges a-b, lists a,b and steps /n)"
    return text


def _cron_weekdays(field_text: str) -> str | None:
    """Cron's day-of-week field as APScheduler day names, or None for every day.

    Cron counts Sunday as 0 (and 7); APScheduler 3 counts Monday as 0, so numbers and steps are
    expanded here into names, which both agree on.
    """
    if field_text in ("*", "?"):
        return None
    chosen: set[int] = set()
    for part in field_text.lower().split(","):
        body, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if step < 1:
            raise ValueError("a step must be at least 1")
        if body == "*":
            low, high = 0, 6
        else:
            low_text, _, high_text = body.partition("-")
            low = _cron_day_number(low_text)
            high = _cron_day_number(high_text) if high_text else (6 if step_text else low)
            if high < low:
                raise ValueError(f"range {body!r} runs backwards")
        chosen.update(n % 7 for n in range(low, high + 1, step))
    return ",".join(_CRON_DOW_NAMES[n] for n in sorted(chosen))


def _cron_day_number(text: str) -> int:
    if text.isdigit():
        number = int(text)
        if not 0 <= number <= 7:
            raise ValueError(f"{text} is not a day number 0-7 (0 and 7 are Sunday)")
        return number
    names = {name: i for i, name in enumerate(_CRON_DOW_NAMES[:7])}
    if text[:3] not in names:
        raise ValueError(f"{text!r} is not a day")
    return names[text[:3]]


def parse_random_window(value: dict[str, object]) -> RandomWindow:
    known = {"times", "per", "between", "days"}
    unknown = sorted(set(value) - known)
    if unknown:
        raise ScheduleError(f"unknown key {unknown[0]!r} in a random window (use {sorted(known)})")
    times = value.get("times")
    if not isinstance(times, int) or isinstance(times, bool) or times < 1:
        raise ScheduleError("times: a whole number of at least 1")
    per = value.get("per", "week")
    if per not in ("day", "week", "month"):
        raise ScheduleError(f"per: {per!r} must be 'day', 'week' or 'month'")
    between_text = value.get("between")
    if not isinstance(between_text, str):
        raise ScheduleError("between: a span of local time like '10:00-20:00'")
    try:
        between = TimeWindow.parse(between_text)
    except ValueError as exc:
        raise ScheduleError(f"between: {exc}") from exc
    if between.crosses_midnight or between.minutes < SLOT_STEP:
        raise ScheduleError(
            f"between: {between_text!r} must start before it ends on the same day, "
            "e.g. '10:00-20:00'"
        )
    days_value = value.get("days")
    days: tuple[int, ...] = tuple(range(7))
    if days_value is not None:
        if not isinstance(days_value, list) or not days_value:
            raise ScheduleError("days: a list of days like ['sat', 'sun']")
        days = tuple(sorted({n for d in days_value for n in _days(str(d))}))
    # Draws are an hour apart: how many fit in one day's window, and in the period's days.
    per_day = (between.minutes - SLOT_STEP) // 60 + 1
    period_days = {"day": 1, "week": len(days), "month": 4 * len(days)}[str(per)]
    if times > per_day * period_days:
        raise ScheduleError(
            f"times: {times} per {per} cannot be an hour apart inside {between} "
            f"on {period_days} day{'s' if period_days > 1 else ''}; "
            f"at most {per_day * period_days}"
        )
    return RandomWindow(
        times=times,
        per=per,
        between=between,
        days=days,
        source=f"{times} per {per} between {between}",
    )


def _hint(text: str) -> str:
    """What most likely went wrong in a phrase nobody could read."""
    if re.search(r"\d\s*(am|pm)\b", text):
        return "write times on the 24-hour clock, like 'at 19:00'"
    if re.fullmatch(r"[\d*][\d*,/\-]*(\s+[\d*,/\-a-z]+){4}", text):
        return f"did you mean 'cron: {text}'?"
    every_day = re.match(r"^every\s+([a-z]+?)s?\s+at\s+(\S+)$", text)
    if every_day and every_day.group(1) in _DAY_NAMES:
        return f"did you mean 'weekly on {every_day.group(1)[:3]} at {every_day.group(2)}'?"
    return f"write it like {EXAMPLES}"


def _time(text: str) -> time:
    try:
        return parse_hhmm(text)
    except ValueError as exc:
        raise ScheduleError(str(exc)) from exc


def _days(text: str) -> list[int]:
    found: list[int] = []
    for word in re.split(r"\s*(?:,|\band\b)\s*", text.strip().lower()):
        name = word.rstrip("s") if word.endswith("days") else word
        if name not in _DAY_NAMES:
            raise ScheduleError(f"{word!r} is not a day (use mon, tue, wed, thu, fri, sat or sun)")
        found.append(_DAY_NAMES[name])
    return found
