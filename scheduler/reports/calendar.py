"""A household's planned rituals as iCalendar: the private feed ``GET /calendar/{token}.ics``.

The feed is read from the ledger, not the ritual file: it shows what the planner wrote (the
topic and the idea drawn, who plans) and what became of it. It covers the occurrences from
:data:`DAYS_BACK` days ago to the end of what is planned (the planner writes
``TEND_HORIZON_DAYS`` ahead, so the feed grows as the days come). One VEVENT per occurrence;
its UID is the occurrence's identity (household, ritual, local slot, recipient), the same
``tend plan --format ics`` gives, so a calendar updates an event instead of doubling it.

The household's feed shows what both partners share; a partner's feed shows that and the
partner's own (their ``to = "each"`` occurrences, and rituals sent to them alone), never the
other partner's own.

What became of an occurrence is its STATUS: done (``confirmed``) is CONFIRMED; still
``open``, or ``missed``, is TENTATIVE (planned, nobody said it happened); ``skipped`` (the
couple said so) stays in the feed as CANCELLED, so calendars that had it strike it out
rather than keep a stale event; ``cancelled`` (the ritual file no longer makes it) is left
out, as if never planned.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from icalendar import Calendar, Event, vDuration

from config.model import RitualFile
from rituals.decks import topic_title
from rituals.planning import Delivery, Occurrence

if TYPE_CHECKING:  # `tend plan --format ics` opens no ledger
    from scheduler.ledger import Records
    from scheduler.ledger.reports import CalendarEntry

__all__ = [
    "DAYS_BACK",
    "MAX_EVENTS",
    "REFRESH",
    "addressed_rituals",
    "event_length",
    "household_calendar",
    "new_calendar",
    "occurrence_uid",
    "plan_calendar",
]

DAYS_BACK = 60
# An hourly ritual makes 24 events a day; the newest this many are kept (the oldest past
# ones go first), so one feed stays a bounded read and a bounded download.
MAX_EVENTS = 5000
# The planner writes new occurrences every hour: asking calendars to look again hourly is
# enough (most poll less often anyway).
REFRESH = timedelta(hours=1)

_EVENT_LENGTH = {
    "date_night": timedelta(hours=2),
    "check_in": timedelta(minutes=30),
}
_STATUS = {"confirmed": "CONFIRMED", "skipped": "CANCELLED"}  # others: TENTATIVE


def event_length(kind: str) -> timedelta:
    """How long a ritual of this kind is shown in a calendar."""
    return _EVENT_LENGTH.get(kind, timedelta(minutes=15))


def new_calendar(name: str) -> Calendar:
    """An empty VCALENDAR with Tend's product id and a display name."""
    calendar = Calendar()
    calendar.add("prodid", "-//Tend//Tend rituals//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", name)
    return calendar


def occurrence_uid(household: str, ritual: str, slot: datetime, recipient: str | None) -> str:
    """The UID of an occurrence's VEVENT: its key (``rituals.planning.Occurrence.key``)."""
    key = f"{household}/{ritual}/{slot:%Y-%m-%dT%H:%M}"
    return f"{key}/{recipient}@tend" if recipient else f"{key}@tend"


def addressed_rituals(file: RitualFile) -> dict[str, str]:
    """The rituals sent to one partner only (``to = "<partner id>"``), by id: that partner's
    own, as a ``to = "each"`` ritual's occurrences are each partner's."""
    return {r.id: r.to for r in file.rituals if r.to not in ("both", "each")}


def household_calendar(
    ledger: Records,
    household_id: str,
    now: datetime,
    titles: Mapping[str, str] | None = None,
    *,
    partner: str | None = None,
    addressed: Mapping[str, str] | None = None,
) -> bytes | None:
    """The household's occurrences from :data:`DAYS_BACK` days before `now` on, as ICS.

    Without `partner`, the shared feed: only what both share, never a partner's own (the
    occurrences of a ``to = "each"`` ritual, and of the rituals `addressed` to one partner,
    see :func:`addressed_rituals`). With `partner`, their feed: the shared events and their
    own, never the other partner's. `titles` maps a ritual id to its display title
    (default: the id, ``-`` and ``_`` as spaces). None when the ledger has no such
    household, or no such partner in it.
    """
    people = ledger.reports.people(household_id)
    if people is None or (partner is not None and partner not in people.names):
        return None
    zone = _zone(people.timezone)
    rows = ledger.reports.events(
        household_id,
        now - timedelta(days=DAYS_BACK),
        MAX_EVENTS,
        recipients=[""] if partner is None else ["", partner],
        leaving_out=[r for r, to in (addressed or {}).items() if to != partner],
    )
    name = f"Tend: {household_id}"
    calendar = new_calendar(name if partner is None else f"{name} ({people.names[partner]})")
    calendar.add("x-wr-timezone", str(zone))
    calendar.add("refresh-interval", vDuration(REFRESH), parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", vDuration(REFRESH))
    for row in reversed(rows):
        calendar.add_component(_entry_event(household_id, row, people.names, zone, titles, now))
    if rows:
        _add_zones(calendar, rows[-1].at, rows[0].at)
    body: bytes = calendar.to_ical()
    return body


def _add_zones(calendar: Calendar, first: datetime, last: datetime) -> None:
    """The VTIMEZONEs the events between `first` and `last` name, before the events: some
    clients read in one pass."""
    calendar.add_missing_timezones(
        first_date=first.date() - timedelta(days=1), last_date=last.date() + timedelta(days=2)
    )
    calendar.subcomponents.sort(key=lambda component: component.name != "VTIMEZONE")


def _entry_event(
    household_id: str,
    row: CalendarEntry,
    names: Mapping[str, str],
    zone: tzinfo,
    titles: Mapping[str, str] | None,
    now: datetime,
) -> Event:
    """The VEVENT of an occurrence as the ledger has it."""
    title = (titles or {}).get(row.ritual_id) or row.ritual_id.replace("-", " ").replace("_", " ")
    event = _event(
        uid=occurrence_uid(household_id, row.ritual_id, row.slot, row.recipient),
        title=title,
        kind=row.kind,
        at=row.at,
        zone=zone,
        recipient=names.get(row.recipient, row.recipient) if row.recipient else None,
        planners=[names.get(p, p) for p in row.planners.split(",") if p],
        item=row.item,
        deck=row.deck,
        now=now,
    )
    event.add("last-modified", row.updated_at)
    event.add("status", _STATUS.get(row.status, "TENTATIVE"))
    return event


def _event(
    *,
    uid: str,
    title: str,
    kind: str,
    at: datetime,
    zone: tzinfo,
    recipient: str | None,
    planners: Sequence[str],
    item: str | None,
    deck: str | None,
    now: datetime,
) -> Event:
    """A VEVENT as the feed and ``tend plan --format ics`` both write it: on the household's
    wall clock, the ritual's title (and whose it is), the topic (the deck of the idea), the
    idea and who plans."""
    summary = title[:1].upper() + title[1:]
    if recipient:
        summary += f" for {recipient}"
    lines = []
    if deck:
        lines.append(f"Topic: {topic_title(deck)}")
    if item:
        lines.append(f"Idea: {item}")
    if planners:
        lines.append(f"{' and '.join(planners)} {'plans' if len(planners) == 1 else 'plan'}.")
    start = _local(at, zone)
    event = Event()
    event.add("uid", uid)
    event.add("dtstamp", now)
    event.add("dtstart", start)
    event.add("dtend", start + event_length(kind))
    event.add("summary", summary)
    if lines:
        event.add("description", "\n".join(lines))
    event.add("categories", [kind])
    event.add("transp", "TRANSPARENT" if kind not in _EVENT_LENGTH else "OPAQUE")
    return event


def _local(instant: datetime, zone: tzinfo) -> datetime:
    """The instant on the household's wall clock, or in UTC when that clock is ambiguous.

    In the hour the clocks go back, ``DTSTART;TZID=...:...T013000`` means the first 01:30
    (RFC 5545, 3.3.5), so an occurrence at the second one is written in UTC instead.
    """
    local = instant.astimezone(zone)
    if local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset():
        return instant.astimezone(UTC)
    return local


def _zone(name: str) -> tzinfo:
    """The household's zone; UTC for one this machine does not know (never a 500)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def plan_calendar(file: RitualFile, deliveries: Sequence[Delivery], now: datetime) -> Calendar:
    """The occurrences of planned `deliveries` as a calendar (``tend plan --format ics``):
    one VEVENT per occurrence, with the UID, the wall-clock time in the household's zone and
    the words the feed gives it, so importing the preview and subscribing to the feed agree."""
    calendar = new_calendar("Tend rituals")
    seen: dict[str, Occurrence] = {}
    for delivery in deliveries:
        seen.setdefault(delivery.occurrence.key, delivery.occurrence)
    rituals = {r.id: r for r in file.rituals}
    households = {h.id: h for h in file.households}
    zones = {h: households[h].zones(file.timezone)[0] for h in households}
    occurrences = sorted(seen.values(), key=lambda o: (o.at, o.key))
    for occurrence in occurrences:
        names = {p.id: p.name for p in households[occurrence.household].partners}
        calendar.add_component(
            _event(
                uid=f"{occurrence.key}@tend",
                title=rituals[occurrence.ritual].display_name,
                kind=occurrence.kind,
                at=occurrence.at,
                zone=zones[occurrence.household],
                recipient=names[occurrence.recipient] if occurrence.recipient else None,
                planners=[names[p] for p in occurrence.planners],
                item=occurrence.item,
                deck=occurrence.deck,
                now=now,
            )
        )
    shown = {str(zones[o.household]) for o in occurrences}
    if len(shown) == 1:
        calendar.add("x-wr-timezone", shown.pop())
    if occurrences:
        _add_zones(calendar, occurrences[0].at, occurrences[-1].at)
    return calendar
