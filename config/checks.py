"""Checks that need the whole ritual file: references, duplicates, templates, firing."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from itertools import pairwise
from typing import Any, Literal
from zoneinfo import ZoneInfo

from config.model import Household, Partner, Ritual
from rituals.clock import QuietHours, TimeWindow, format_duration, resolve
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
    names_in,
    render,
)

__all__ = ["HouseholdChecks", "Problem", "check_file", "household_problems"]

Loc = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong (or worth a warning) at `path` of the ritual file."""

    path: Loc
    message: str
    severity: Literal["error", "warning"] = "error"
    line: int = field(default=0, compare=False)
    #: The file it is in, when not the one an error or a loaded file is named after (the
    #: files of a ritual directory).
    file: str = field(default="", compare=False)

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
    any_audience: bool = False,
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

    `any_audience`: the households are not all here (a ritual directory's ``rituals.toml``,
    checked alone): each ritual's messages are checked as texts and e-mails whoever its
    households are, since any household file may have partners who get them.
    """
    problems: list[Problem] = []
    problems += _duplicates(("households",), [(i, h.id) for i, h in households])
    problems += _duplicates(("rituals",), [(i, r.id) for i, r in rituals])
    # Households whose clock is not known as written: no check that needs their zone.
    unsure_zones = {
        h.id
        for i, h in households
        for loc in unreadable
        if loc[:2] == ("households", i) and loc[-1] == "timezone"
    }
    for i, household in households:
        problems += household_problems(
            ("households", i),
            household,
            timezone=timezone,
            zone_unreadable=("households", i, "timezone") in unreadable,
            where_zone="here or at the top",
        )
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
        any_audience=any_audience,
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
    any_audience: bool = False  # check messages as texts and e-mails, whoever gets them


def _guarded(here: Loc, checks: Iterator[Problem]) -> list[Problem]:
    """The problems `checks` finds; one that fails in a way no check foresaw (a rule that
    overflows a date, a library's own exception) is a problem of this table, not a crash."""
    found: list[Problem] = []
    try:
        found.extend(checks)
    except Exception as exc:
        found.append(Problem(here, f"cannot be checked: {type(exc).__name__}: {exc}"))
    return found


def household_problems(
    here: Loc,
    household: Household,
    *,
    timezone: str | None,
    zone_unreadable: bool,
    where_zone: str,
) -> list[Problem]:
    """The problems of one household table alone, at paths below `here`: its zone, its
    partners (ids, zones, quiet hours, numbers). `timezone`: the default zone as written;
    `where_zone` says where else a zone may be set."""
    problems: list[Problem] = []
    if household.timezone is None and timezone is None and not zone_unreadable:
        problems.append(Problem(here, f"no time zone: set 'timezone' {where_zone}"))
    problems += _duplicates(
        (*here, "partners"), [(j, p.id) for j, p in enumerate(household.partners)]
    )
    if household.timezone is not None:
        problems += _zone_style((*here, "timezone"), household.timezone)
    for j, partner in enumerate(household.partners):
        problems += _partner((*here, "partners", j), partner)
    problems += _shared_phones(here, household)
    return problems


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


def _shared_phones(here: Loc, household: Household) -> list[Problem]:
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
                    (*here, "partners", j, "phone"),
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


def _duplicates(where: Loc, ids: Sequence[tuple[int, str]]) -> list[Problem]:
    counts = Counter(value for _, value in ids)
    seen: set[str] = set()
    problems = []
    for index, value in ids:
        if counts[value] > 1 and value in seen:
            path: Loc = (*where, index, "id")
            problems.append(Problem(path, f"duplicate id {value!r}"))
        seen.add(value)
    return problems


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
    texted = context.any_audience or any("sms" in p.channels for p in audience)
    yield from _templates(here, ritual, decks, context.deck_items, names, texted)
    if context.any_audience or any("email" in p.channels for p in audience):
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
        if not _window_fires(ritual, schedule, household, zone, zones, today):
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


# -- One household against rituals known to be valid (a ritual directory) -----------------

_NAMED = frozenset({"partner", "planner"})  # what a household's own names fill in
_ROLES = (
    ("message", "day_of"),
    ("plan_ahead_message", "plan_ahead"),
    ("reminder_message", "reminder"),
)


@dataclass(frozen=True, slots=True)
class _Message:
    """A template of a ritual that a household's names go into."""

    field: str  # message | plan_ahead_message | reminder_message
    source: str  # the ritual's own template, or the built-in one
    pulse: bool
    warned: bool  # already more than 2 segments with the deck's items (warned at the ritual)


@dataclass(frozen=True, slots=True)
class _Shared:
    """What every household's checks need of one ritual, worked out once."""

    index: int
    ritual: Ritual
    only: frozenset[str] | None  # the households it names, None for all
    messages: tuple[_Message, ...]
    upcoming: tuple[datetime, ...] | None  # a fixed schedule's next slots; None: random


class HouseholdChecks:
    """The checks that involve one household, against rituals already checked alone
    (``rituals.toml`` of a ritual directory, :func:`check_file` with `any_audience`).

    Problems are at the household file's own paths (``partners.0.quiet_hours``); one about a
    ritual names the ritual in its message. What every household shares is worked out once
    here (each ritual's deck items in its messages, its next slots), and what households
    alike share (their names in a message, zones and quiet hours against a schedule) once
    per distinct value: a directory of 100,000 households is checked household by household.
    """

    def __init__(
        self,
        *,
        timezone: str | None,
        rituals: Sequence[Ritual],
        deck_items: Mapping[str, Sequence[str]],
        today: datetime,
    ) -> None:
        self.timezone = timezone
        self.today = today
        self._deck_items = {**builtin_decks(), **deck_items}
        self._rituals = [self._shared(i, r) for i, r in enumerate(rituals)]
        self._renders: dict[tuple[str, bool, str], tuple[int, int] | str] = {}
        self._quiet: dict[tuple[int, ZoneInfo, ZoneInfo, TimeWindow], datetime | None] = {}
        self._windows: dict[tuple[int, ZoneInfo, tuple[Any, ...]], bool] = {}

    def _shared(self, i: int, ritual: Ritual) -> _Shared:
        default = DEFAULT_DECKS.get(ritual.kind)
        decks = ritual.decks or ((default,) if default else ())
        drawn = [(item, topic_title(d)) for d in decks for item in self._deck_items.get(d, ())]
        messages = []
        for name, role in _ROLES:
            source = getattr(ritual, name)
            if source is None and role == "day_of" and ritual.kind == "custom":
                continue
            pulse = ritual.asks_pulse and role == "day_of"
            template = source or default_message(role, ritual.kind, "email" if pulse else "sms")
            try:
                if not names_in(template) & _NAMED:
                    continue
                variants = _variants(drawn if decks else None, self._deck_items, (), pulse)
                texts = [to_gsm7(_sms(render(template, v), pulse)) for v in variants]
            except TemplateProblem:
                continue  # reported at the ritual
            worst = max((count_segments(t) for t in texts), key=lambda s: (s.count, s.units))
            messages.append(_Message(name, template, pulse, worst.count > 2))
        upcoming: tuple[datetime, ...] | None = None
        schedule = ritual.schedule
        if isinstance(schedule, FixedSchedule):
            start = datetime.combine(self.today.date(), time())
            slots = schedule.next_slots(start, 50)
            hourly = any(b - a < MIN_GAP for a, b in pairwise(slots))
            upcoming = () if hourly else tuple(slots[:14])  # either is reported at the ritual
        only = None if ritual.households is None else frozenset(ritual.households)
        return _Shared(i, ritual, only, tuple(messages), upcoming)

    def check(self, household: Household, *, unreadable: Collection[Loc] = ()) -> list[Problem]:
        """Every problem of `household` (a household file's table, its values the schema
        refused left out and their paths in `unreadable`) and of the rituals for it."""
        problems = household_problems(
            (),
            household,
            timezone=self.timezone,
            zone_unreadable=("timezone",) in unreadable,
            where_zone="here or in rituals.toml",
        )
        zone_known = not any(loc[-1] == "timezone" for loc in unreadable if loc)
        for shared in self._rituals:
            if shared.only is not None and household.id not in shared.only:
                continue
            here: Loc = ("rituals", shared.ritual.id)
            problems += _guarded(here, self._ritual(shared, household, zone_known))
        return [
            p if p.path[:1] != ("rituals",) else Problem((), f"ritual {p.path[1]!r}: {p.message}")
            for p in problems
        ]

    def _ritual(self, shared: _Shared, household: Household, zone_known: bool) -> Iterator[Problem]:
        ritual = shared.ritual
        prefix = f"ritual {ritual.id!r}"
        ids = {p.id for p in household.partners}
        for field_name in ("to", "planner"):
            value = getattr(ritual, field_name)
            special = {"both", "each"} if field_name == "to" else {"alternate", "both"}
            if value is not None and value not in special and value not in ids:
                yield Problem(
                    ("partners",),
                    f"{prefix}: {field_name} = {value!r}, a partner this household does not "
                    f"have (use {' | '.join(sorted(special))} or a partner id, or name the "
                    "households it is for: households = [...])",
                )
        audience = [p for p in household.partners if ritual.to in ("both", "each", p.id)]
        texted = any("sms" in p.channels for p in audience)
        for message in shared.messages:
            yield from self._names(prefix, message, household, texted)
        if not zone_known:
            return
        try:
            zone, zones = household.zones(self.timezone)
        except ValueError:
            return  # an unknown default zone is reported where it is written
        if shared.upcoming is not None:
            yield from self._always_quiet(prefix, shared, household, zone, zones)
        else:
            yield from self._random(prefix, shared, household, zone, zones)

    def _names(
        self, prefix: str, message: _Message, household: Household, texted: bool
    ) -> Iterator[Problem]:
        worst: tuple[int, int, str] | None = None
        for j, partner in enumerate(household.partners):
            key = (message.source, message.pulse, partner.name)
            found = self._renders.get(key)
            if found is None:
                values = {**SAMPLE_VALUES, "partner": partner.name, "planner": partner.name}
                try:
                    text = to_gsm7(_sms(render(message.source, values), message.pulse))
                except TemplateProblem as exc:
                    found = str(exc)
                else:
                    segments = count_segments(text)
                    found = (len(text), segments.count)
                self._renders[key] = found
            at: Loc = ("partners", j, "name")
            if isinstance(found, str):
                yield Problem(
                    at, f"{prefix}: {message.field}: {found} (with the name {partner.name!r})"
                )
                return
            length, count = found
            if texted and length > SMS_MAX_LENGTH:
                yield Problem(
                    at,
                    f"{prefix}: {message.field}: with the name {partner.name!r} this message is "
                    f"{length:,} characters: longer than one SMS can be ({SMS_MAX_LENGTH:,}; "
                    "Twilio refuses it)",
                )
                return
            if worst is None or count > worst[0]:
                worst = (count, j, partner.name)
        if texted and worst is not None and worst[0] > 2 and not message.warned:
            count, j, name = worst
            yield Problem(
                ("partners", j, "name"),
                f"{prefix}: {message.field}: an SMS of this message with the name {name!r} "
                f"needs {count} segments; keep it to 2",
                "warning",
            )

    def _always_quiet(
        self,
        prefix: str,
        shared: _Shared,
        household: Household,
        zone: ZoneInfo,
        zones: Mapping[str, ZoneInfo],
    ) -> Iterator[Problem]:
        """Warn when every upcoming slot falls in a recipient's quiet hours: all would wait."""
        if not shared.upcoming:
            return
        for j, partner in enumerate(household.partners):
            quiet = partner.quiet_hours
            if quiet is None or shared.ritual.to not in ("both", "each", partner.id):
                continue
            own = zones[partner.id]
            key = (shared.index, zone, own, quiet)
            if key not in self._quiet:
                locals_ = [resolve(slot, zone).astimezone(own) for slot in shared.upcoming]
                quiet_always = all(quiet.contains(moment.time()) for moment in locals_)
                self._quiet[key] = locals_[0] if quiet_always else None
            first = self._quiet[key]
            if first is not None:
                yield Problem(
                    ("partners", j, "quiet_hours"),
                    f"{prefix}: {first:%H:%M} ({own.key}) falls in {partner.name}'s quiet hours "
                    f"({quiet}): their messages will wait until {quiet.end:%H:%M}",
                    "warning",
                )

    def _random(
        self,
        prefix: str,
        shared: _Shared,
        household: Household,
        zone: ZoneInfo,
        zones: Mapping[str, ZoneInfo],
    ) -> Iterator[Problem]:
        ritual = shared.ritual
        schedule = ritual.schedule
        assert isinstance(schedule, RandomWindow)
        clocks = tuple((p.id, p.quiet_hours, zones[p.id]) for p in household.partners)
        key = (shared.index, zone, clocks)
        if key not in self._windows:
            self._windows[key] = _window_fires(ritual, schedule, household, zone, zones, self.today)
        if not self._windows[key]:
            yield Problem(
                ("partners",),
                f"{prefix}: never fires for this household: every time in {schedule.between} "
                "falls in a partner's quiet hours",
            )
        if ritual.to != "both":
            return
        for j, partner in enumerate(household.partners):
            own = zones[partner.id]
            if _clocks_differ(zone, own, self.today.date()):
                day = self.today.date()
                start, end = (
                    resolve(datetime.combine(day, moment), zone).astimezone(own)
                    for moment in (schedule.between.start, schedule.between.end)
                )
                yield Problem(
                    ("partners", j, "timezone"),
                    f"{prefix}: with to = 'both' the window {schedule.between} is drawn on "
                    f"this household's clock ({zone.key}): for {partner.name} ({own.key}) that "
                    f"is {start:%H:%M}-{end:%H:%M} (on {day:%Y-%m-%d}); with to = 'each' each "
                    "partner gets it on their own clock",
                    "warning",
                )
                return


def _window_fires(
    ritual: Ritual,
    schedule: RandomWindow,
    household: Household,
    zone: ZoneInfo,
    zones: Mapping[str, ZoneInfo],
    today: datetime,
) -> bool:
    """Whether a random window leaves each of its audiences in `household` a time outside
    their quiet hours on some day of the next two months."""
    start = datetime.combine(today.date(), time())
    by_id = {p.id: p for p in household.partners}
    if ritual.to == "each":
        audiences = [[p] for p in by_id]
    elif ritual.to == "both":
        audiences = [list(by_id)]
    else:
        audiences = [[ritual.to]] if ritual.to in by_id else []
    days = [(start + timedelta(days=n)).date() for n in range(62)]
    days = [day for day in days if day.weekday() in schedule.days]
    for audience in audiences:
        # Drawn as the planner draws it: on the clock of a partner it is for alone.
        own = zones[audience[0]] if ritual.to != "both" and len(audience) == 1 else zone
        quiet = QuietHours.of(own, [(by_id[p].quiet_hours, zones[p]) for p in audience], home=zone)
        if not any(quiet.allowed_minutes(day, schedule.marks) for day in days):
            return False
    return True
