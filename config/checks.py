"""Checks that need the whole ritual file: references, duplicates, templates, firing."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from itertools import pairwise
from typing import Literal
from zoneinfo import ZoneInfo

from config.model import Household, Partner, Ritual
from rituals.clock import QuietHours, format_duration, resolve
from rituals.decks import DEFAULT_DECKS, builtin_decks, topic_title
from rituals.planning import with_pulse_line
from rituals.pulse import CONVERSATION_DECK
from rituals.schedule import MIN_GAP, FixedSchedule, RandomWindow
from rituals.sms import MAX_LENGTH as SMS_MAX_LENGTH
from rituals.sms import count_segments, to_gsm7
from rituals.templates import (
    SAMPLE_VALUES,
    TemplateProblem,
    check_template,
    default_message,
    render,
)

__all__ = ["Problem", "check_file"]

Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong (or worth a warning) at `path` of the ritual file."""

    path: Loc
    message: str
    severity: Literal["error", "warning"] = "error"
    line: int = field(default=0, compare=False)

    @property
    def dotted(self) -> str:
        return ".".join(str(part) for part in self.path) or "(file)"


def check_file(
    *,
    timezone: str | None,
    households: Sequence[tuple[int, Household]],
    rituals: Sequence[tuple[int, Ritual]],
    decks: Collection[str],
    households_complete: bool,
    today: datetime,
    deck_items: Mapping[str, Sequence[str]] | None = None,
    unreadable: Collection[Loc] = (),
) -> list[Problem]:
    """Problems across tables. Lists hold ``(index in the file, valid table)``.

    `decks` names every deck the file defines, valid or not: a deck with errors is reported
    at its own lines, not again as an unknown deck at each ritual that uses it. `timezone` is
    the file's default zone as written, possibly invalid (reported at its own line).

    `households_complete` is False when some household failed validation: references to
    partners are then not checked, since the missing household might have had them.

    `unreadable` holds the paths of values the schema refused (reported at their own lines)
    and left out of the tables given here, or stood in for (a ritual's schedule): what
    depends on them is not checked, so that nothing is reported twice or for a value that
    is not the one written.
    """
    problems: list[Problem] = []
    problems += _duplicates("households", [(i, h.id) for i, h in households])
    problems += _duplicates("rituals", [(i, r.id) for i, r in rituals])
    # Households whose clock is not known as written: no check that needs their zone.
    unsure_zones = {
        h.id
        for i, h in households
        for loc in unreadable
        if loc[:2] == ("households", i) and loc[-1] == "timezone"
    }
    for i, household in households:
        if (
            household.timezone is None
            and timezone is None
            and ("households", i, "timezone") not in unreadable
        ):
            problems.append(
                Problem(("households", i), "no time zone: set 'timezone' here or at the top")
            )
        problems += _duplicates(
            f"households.{i}.partners", [(j, p.id) for j, p in enumerate(household.partners)]
        )
        if household.timezone is not None:
            problems += _zone_style(("households", i, "timezone"), household.timezone)
        for j, partner in enumerate(household.partners):
            problems += _partner(("households", i, "partners", j), partner)
        problems += _shared_phones(i, household)
    if timezone is not None:
        problems += _zone_style(("timezone",), timezone)
    known_decks = set(builtin_decks()) | set(decks)
    deck_items = {**builtin_decks(), **(deck_items or {})}
    context = _Context(
        households={h.id: h for _, h in households},
        known_decks=known_decks,
        deck_items=deck_items,
        households_complete=households_complete,
        timezone=timezone,
        today=today,
        unreadable=frozenset(unreadable),
        unsure_zones=frozenset(unsure_zones),
    )
    for i, ritual in rituals:
        problems += _guarded(("rituals", i), _ritual(i, ritual, context))
    return problems


@dataclass(frozen=True)
class _Context:
    """What every ritual's checks need of the rest of the file."""

    households: dict[str, Household]
    known_decks: set[str]
    deck_items: Mapping[str, Sequence[str]]
    households_complete: bool
    timezone: str | None
    today: datetime
    unreadable: frozenset[Loc]
    unsure_zones: frozenset[str]  # households whose zone (or a partner's) was refused


def _guarded(here: Loc, checks: Iterator[Problem]) -> list[Problem]:
    """The problems `checks` finds; one that fails in a way no check foresaw (a rule that
    overflows a date, a library's own exception) is a problem of this table, not a crash."""
    found: list[Problem] = []
    try:
        found.extend(checks)
    except Exception as exc:
        found.append(Problem(here, f"cannot be checked: {type(exc).__name__}: {exc}"))
    return found


def _partner(here: Loc, partner: Partner) -> list[Problem]:
    problems = []
    if partner.timezone is not None:
        problems += _zone_style((*here, "timezone"), partner.timezone)
    quiet = partner.quiet_hours
    if quiet is not None and quiet.minutes == 0:
        problems.append(
            Problem((*here, "quiet_hours"), f"{quiet} covers the whole day: nothing could be sent")
        )
    elif quiet is not None and quiet.minutes > 12 * 60 and quiet.contains(time(12)):
        length = format_duration(timedelta(minutes=quiet.minutes))
        problems.append(
            Problem(
                (*here, "quiet_hours"),
                f"{quiet} keeps {length} quiet, midday included; "
                f"did you mean '{quiet.end:%H:%M}-{quiet.start:%H:%M}'?",
                "warning",
            )
        )
    return problems


def _shared_phones(i: int, household: Household) -> list[Problem]:
    """Two partners of a household on one number: a reply by SMS could not say whose it is."""
    first: dict[str, Partner] = {}
    problems = []
    for j, partner in enumerate(household.partners):
        if partner.phone is None:
            continue
        earlier = first.setdefault(partner.phone, partner)
        if earlier is not partner:
            problems.append(
                Problem(
                    ("households", i, "partners", j, "phone"),
                    f"the same number as partner {earlier.id!r}: a reply by SMS could not tell "
                    "whose it is (give each partner their own number, or leave one out)",
                )
            )
    return problems


def _zone_style(path: Loc, name: str) -> list[Problem]:
    """A warning for zones that are fixed offsets or legacy names, not places."""
    if name in ("UTC", "Etc/UTC") or ("/" in name and not name.startswith("Etc/")):
        return []
    return [
        Problem(
            path,
            f"{name!r} is not a place: it may not follow local daylight saving time; "
            "use a zone like 'America/New_York' or 'Europe/Berlin'",
            "warning",
        )
    ]


def _duplicates(where: str, ids: Sequence[tuple[int, str]]) -> list[Problem]:
    counts = Counter(value for _, value in ids)
    seen: set[str] = set()
    problems = []
    for index, value in ids:
        if counts[value] > 1 and value in seen:
            path: Loc = (*_split(where), index, "id")
            problems.append(Problem(path, f"duplicate id {value!r}"))
        seen.add(value)
    return problems


def _split(dotted: str) -> Loc:
    return tuple(int(p) if p.isdigit() else p for p in dotted.split("."))


def _ritual(i: int, ritual: Ritual, context: _Context) -> Iterator[Problem]:
    here: Loc = ("rituals", i)
    households = context.households
    targets = list(households.values())
    if ritual.households is not None:
        for k, name in enumerate(ritual.households):
            if name not in households and context.households_complete:
                yield Problem((*here, "households", k), f"unknown household {name!r}")
        targets = [households[n] for n in ritual.households if n in households]

    refused = {loc[-1] for loc in context.unreadable if loc[:-1] == here}
    known_decks = context.known_decks
    for at, name in _named_decks(here, ritual):
        if name not in known_decks:
            yield Problem(at, f"unknown deck {name!r} (known: {', '.join(sorted(known_decks))})")
    default = DEFAULT_DECKS.get(ritual.kind)
    # A deck the schema refused is not known as written: {{ item }} and {{ topic }} may be
    # right for it, and are not reported again.
    decks = None if "deck" in refused else ritual.decks or ((default,) if default else ())
    names = sorted({p.name for h in targets for p in h.partners})
    audience = [p for h in targets for p in h.partners if ritual.to in ("both", "each", p.id)]
    texted = any("sms" in p.channels for p in audience)
    yield from _templates(here, ritual, decks, context.deck_items, names, texted)
    if any("email" in p.channels for p in audience):
        yield from _email_wording(here, ritual)

    if ritual.kind == "custom" and ritual.message is None and "message" not in refused:
        yield Problem((*here, "message"), "a custom ritual needs a message")

    if context.households_complete:
        for field_name in ("to", "planner"):
            value = getattr(ritual, field_name)
            special = {"both", "each"} if field_name == "to" else {"alternate", "both"}
            if value is None or value in special:
                continue
            missing = [h.id for h in targets if value not in {p.id for p in h.partners}]
            if missing:
                yield Problem(
                    (*here, field_name),
                    f"unknown partner {value!r} in household {missing[0]!r} "
                    f"(use {' | '.join(sorted(special))} or a partner id)",
                )
    if ritual.plan_ahead is not None and ritual.planner is None and "planner" not in refused:
        yield Problem((*here, "plan_ahead"), "plan_ahead needs a planner (alternate | both | id)")
    if ritual.to == "each":
        for name in ("planner", "plan_ahead"):
            if name in ritual.model_fields_set:
                yield Problem(
                    (*here, name),
                    "with to = 'each' every partner has their own occurrences: nobody plans "
                    "for the other (use to = 'both')",
                )
    if ritual.households == []:
        yield Problem((*here, "households"), "empty: leave it out to apply to every household")

    if "schedule" not in refused:  # else it is a stand-in: the real one did not parse
        known = [h for h in targets if h.id not in context.unsure_zones]
        yield from _firing(here, ritual, known, context.timezone, context.today)


def _named_decks(here: Loc, ritual: Ritual) -> Iterator[tuple[Loc, str]]:
    """Each deck the ritual names, at its path: ``deck``, or ``deck.K`` in a list."""
    if isinstance(ritual.deck, str):
        yield (*here, "deck"), ritual.deck
    elif ritual.deck is not None:
        for k, name in enumerate(ritual.deck):
            yield (*here, "deck", k), name


_DRAWN = frozenset({"item", "topic"})  # what a ritual with no deck has nothing for


def _templates(
    here: Loc,
    ritual: Ritual,
    decks: Sequence[str] | None,
    deck_items: Mapping[str, Sequence[str]],
    names: Collection[str],
    texted: bool,
) -> Iterator[Problem]:
    """Each template renders; an SMS of it, with its decks' longest item, fits 2 segments,
    and a message for a partner who gets texts is never longer than an SMS can be.

    `decks`: those the ritual draws from (none: it has no deck); None when they are not
    known as written (the schema refused the value)."""
    drawn = [(item, topic_title(deck)) for deck in decks or () for item in deck_items.get(deck, ())]
    items = [item for item, _topic in drawn]
    has_deck = decks is None or bool(decks)
    # An unknown deck is reported once, at `deck`, not again at every {{ item }}.
    allowed = frozenset(SAMPLE_VALUES) - (frozenset() if has_deck else _DRAWN)
    for name, role in (
        ("message", "day_of"),
        ("plan_ahead_message", "plan_ahead"),
        ("reminder_message", "reminder"),
    ):
        source = getattr(ritual, name)
        if source is not None:
            try:
                check_template(source, allowed)
            except TemplateProblem as exc:
                drawing = any(f"{word!r}" in str(exc) for word in _DRAWN)
                hint = " (this ritual has no deck)" if drawing and not has_deck else ""
                yield Problem((*here, name), f"{exc}{hint}")
                continue
        elif role == "day_of" and ritual.kind == "custom":
            continue
        pulse = ritual.asks_pulse and role == "day_of"
        # A pulse check-in's built-in text asks for no DONE: the rating is the reply.
        template = source or default_message(role, ritual.kind, "email" if pulse else "sms")
        variants = _variants(drawn if has_deck else None, deck_items, names, pulse)
        try:
            texts = [(to_gsm7(_sms(render(template, v), pulse)), v["item"]) for v in variants]
        except TemplateProblem as exc:
            yield Problem((*here, name), f"{exc} (with this file's names and deck items)")
            continue
        longest, item = max(texts, key=lambda pair: len(pair[0]))
        detail = f" with the item {item[:40]!r}" if items else ""
        if texted and len(longest) > SMS_MAX_LENGTH:
            yield Problem(
                (*here, name),
                f"this message is {len(longest):,} characters{detail}: longer than one SMS "
                f"can be ({SMS_MAX_LENGTH:,}; Twilio refuses it)",
            )
            continue
        segments, item = max(
            ((count_segments(text), i) for text, i in texts),
            key=lambda pair: (pair[0].count, pair[0].units),
        )
        if segments.count > 2:
            detail = f" with the item {item[:40]!r}" if items else ""
            yield Problem(
                (*here, name),
                f"an SMS of this message needs {segments.count} segments ({segments.encoding}, "
                f"{segments.units} characters{detail}); keep it to 2",
                "warning",
            )


def _variants(
    drawn: Sequence[tuple[str, str]] | None,
    deck_items: Mapping[str, Sequence[str]],
    names: Collection[str],
    pulse: bool,
) -> list[dict[str, str]]:
    """The values to render a template with: every real item (and its topic) and every real
    name too, as "{{ partner[3] }}" works for the sample "Alex" and fails for "Sam"; better
    here than at send time. `drawn`: the ritual's (item, topic) pairs, None with no deck."""
    sample = [(SAMPLE_VALUES["item"], SAMPLE_VALUES["topic"])]
    candidates = list(drawn or sample) if drawn is not None else [("", "")]
    if pulse and drawn is not None:  # a slipping household's question takes the item's place
        conversation = topic_title(CONVERSATION_DECK)
        candidates += [(i, conversation) for i in deck_items.get(CONVERSATION_DECK, ())]
    variants = [{**SAMPLE_VALUES, "item": i, "topic": t} for i, t in candidates]
    return variants + [{**SAMPLE_VALUES, "partner": n, "planner": n} for n in names]


def _sms(text: str, pulse: bool) -> str:
    """A rendered message as a text message sends it: a pulse check-in's with its line."""
    return with_pulse_line(text, "sms") if pulse else text


_REPLY = re.compile(r"\breply\b", re.IGNORECASE)


def _email_wording(here: Loc, ritual: Ritual) -> Iterator[Problem]:
    """Warn when the ritual's own template asks for a reply in an e-mail: nobody reads the
    replies to Tend's e-mails (they carry a confirm link instead)."""
    for name in ("message", "plan_ahead_message", "reminder_message"):
        source = getattr(ritual, name)
        if source is None:
            continue
        try:
            text = render(source, {**SAMPLE_VALUES, "channel": "email"})
        except TemplateProblem:
            continue  # reported by _templates
        if _REPLY.search(text):
            yield Problem(
                (*here, name),
                "an e-mail of this message asks for a reply, but e-mail replies are not read "
                "(an e-mail has a confirm link instead): word the reply for texts only, e.g. "
                "{% if channel != 'email' %} Reply DONE after.{% endif %}",
                "warning",
            )


def _always_quiet(
    where: Loc,
    ritual: Ritual,
    upcoming: Sequence[datetime],
    targets: list[Household],
    timezone: str | None,
) -> Iterator[Problem]:
    """Warn when every upcoming slot falls in a recipient's quiet hours: all would wait."""
    for household in targets:
        try:
            zone, zones = household.zones(timezone)
        except ValueError:
            continue  # an unknown default zone is reported where it is written
        for partner in household.partners:
            quiet = partner.quiet_hours
            if quiet is None or ritual.to not in ("both", "each", partner.id):
                continue
            own = zones[partner.id]
            locals_ = [resolve(slot, zone).astimezone(own) for slot in upcoming]
            if all(quiet.contains(moment.time()) for moment in locals_):
                yield Problem(
                    where,
                    f"{locals_[0]:%H:%M} ({own.key}) falls in {partner.name}'s quiet hours "
                    f"({quiet}): their messages will wait until {quiet.end:%H:%M}",
                    "warning",
                )


EVER = datetime(1971, 1, 1)  # before any schedule a file can have started


def _firing(
    here: Loc,
    ritual: Ritual,
    targets: list[Household],
    timezone: str | None,
    today: datetime,
) -> Iterator[Problem]:
    schedule = ritual.schedule
    where: Loc = (*here, "schedule")
    start = datetime.combine(today.date(), time())
    if isinstance(schedule, FixedSchedule):
        upcoming = schedule.next_slots(start, 50)
        if not upcoming:
            if schedule.next_slots(EVER, 1):
                # A ritual that has ended (an RRULE's UNTIL) is a valid file: it makes
                # nothing any more. An error would turn a file that was good yesterday
                # into one no worker can start on.
                yield Problem(
                    where,
                    f"{schedule.source!r} has ended: it fires no more after {today:%Y-%m-%d}",
                    "warning",
                )
                return
            yield Problem(where, f"{schedule.source!r} never fires after {today:%Y-%m-%d}")
            return
        for earlier, later in pairwise(upcoming):
            if later - earlier < MIN_GAP:
                yield Problem(
                    where,
                    f"{schedule.source!r} fires more than once an hour "
                    f"({earlier:%Y-%m-%d %H:%M} and {later:%H:%M}); rituals need an hour apart",
                )
                return
        yield from _always_quiet(where, ritual, upcoming[:14], targets, timezone)
        return
    assert isinstance(schedule, RandomWindow)
    for household in targets:
        try:
            zone, zones = household.zones(timezone)
        except ValueError:
            continue  # an unknown default zone is reported where it is written
        by_id = {p.id: p for p in household.partners}
        if ritual.to == "each":
            audiences = [[p] for p in by_id]
        elif ritual.to == "both":
            audiences = [list(by_id)]
        else:
            audiences = [[ritual.to]] if ritual.to in by_id else []
        days = [(start + timedelta(days=n)).date() for n in range(62)]
        days = [day for day in days if day.weekday() in schedule.days]
        found = True
        for audience in audiences:
            # Drawn as the planner draws it: on the clock of a partner it is for alone.
            own = zones[audience[0]] if ritual.to != "both" and len(audience) == 1 else zone
            quiet = QuietHours.of(
                own, [(by_id[p].quiet_hours, zones[p]) for p in audience], home=zone
            )
            found = found and any(quiet.allowed_minutes(day, schedule.marks) for day in days)
        if not found:
            yield Problem(
                where,
                f"never fires for household {household.id!r}: every time in "
                f"{schedule.between} falls in a partner's quiet hours",
            )
    if ritual.to == "both":
        yield from _shared_window(where, schedule, targets, timezone, today)


def _shared_window(
    where: Loc,
    schedule: RandomWindow,
    targets: list[Household],
    timezone: str | None,
    today: datetime,
) -> Iterator[Problem]:
    """Warn when a window shared by both partners is drawn on the household's clock while a
    partner lives on another: ``between`` is not their local time (``to = 'each'`` is)."""
    elsewhere: list[tuple[Household, Partner, ZoneInfo, ZoneInfo]] = []
    for household in targets:
        try:
            zone, zones = household.zones(timezone)
        except ValueError:
            continue  # an unknown default zone is reported where it is written
        for partner in household.partners:
            if _clocks_differ(zone, zones[partner.id], today.date()):
                elsewhere.append((household, partner, zone, zones[partner.id]))
                break
    if not elsewhere:
        return
    household, partner, zone, own = elsewhere[0]
    day = today.date()
    start, end = (
        resolve(datetime.combine(day, moment), zone).astimezone(own)
        for moment in (schedule.between.start, schedule.between.end)
    )
    more = f" (and {len(elsewhere) - 1} more households)" if len(elsewhere) > 1 else ""
    yield Problem(
        where,
        f"with to = 'both' the window {schedule.between} is drawn on the clock of household "
        f"{household.id!r} ({zone.key}){more}: for {partner.name} ({own.key}) that is "
        f"{start:%H:%M}-{end:%H:%M} (on {day:%Y-%m-%d}); with to = 'each' each partner gets "
        "it on their own clock",
        "warning",
    )


@lru_cache(maxsize=1024)
def _clocks_differ(zone: ZoneInfo, other: ZoneInfo, first: date) -> bool:
    """Whether two zones' clocks read differently at some noon of the year from `first`."""
    if zone == other:
        return False
    noon = datetime.combine(first, time(12), tzinfo=UTC)
    return any(
        (noon + timedelta(days=n)).astimezone(zone).utcoffset()
        != (noon + timedelta(days=n)).astimezone(other).utcoffset()
        for n in range(366)
    )
