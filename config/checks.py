"""Checks that need the whole ritual file: references, duplicates, templates, firing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from itertools import pairwise
from typing import Literal

from config.model import Household, Ritual
from rituals.clock import QuietHours, get_zone
from rituals.decks import DEFAULT_DECKS, builtin_decks
from rituals.schedule import MIN_GAP, FixedSchedule, RandomWindow
from rituals.sms import count_segments
from rituals.templates import SAMPLE_VALUES, TemplateProblem, check_template, render

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
) -> list[Problem]:
    """Problems across tables. Lists hold ``(index in the file, valid table)``.

    `decks` names every deck the file defines, valid or not: a deck with errors is reported
    at its own lines, not again as an unknown deck at each ritual that uses it. `timezone` is
    the file's default zone as written, possibly invalid (reported at its own line).

    `households_complete` is False when some household failed validation: references to
    partners are then not checked, since the missing household might have had them.
    """
    problems: list[Problem] = []
    problems += _duplicates("households", [(i, h.id) for i, h in households])
    problems += _duplicates("rituals", [(i, r.id) for i, r in rituals])
    for i, household in households:
        if household.timezone is None and timezone is None:
            problems.append(
                Problem(("households", i), "no time zone: set 'timezone' here or at the top")
            )
        problems += _duplicates(
            f"households.{i}.partners", [(j, p.id) for j, p in enumerate(household.partners)]
        )
        for j, partner in enumerate(household.partners):
            if partner.quiet_hours is not None and partner.quiet_hours.minutes == 0:
                problems.append(
                    Problem(
                        ("households", i, "partners", j, "quiet_hours"),
                        f"{partner.quiet_hours} covers the whole day: nothing could ever be sent",
                    )
                )
    known_decks = set(builtin_decks()) | set(decks)
    by_id = {h.id: h for _, h in households}
    for i, ritual in rituals:
        problems += list(
            _ritual(i, ritual, by_id, known_decks, households_complete, timezone, today)
        )
    return problems


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


def _ritual(
    i: int,
    ritual: Ritual,
    households: dict[str, Household],
    known_decks: set[str],
    households_complete: bool,
    timezone: str | None,
    today: datetime,
) -> Iterator[Problem]:
    here: Loc = ("rituals", i)
    targets = list(households.values())
    if ritual.households is not None:
        for k, name in enumerate(ritual.households):
            if name not in households and households_complete:
                yield Problem((*here, "households", k), f"unknown household {name!r}")
        targets = [households[n] for n in ritual.households if n in households]

    deck = ritual.deck or DEFAULT_DECKS.get(ritual.kind)
    if ritual.deck is not None and ritual.deck not in known_decks:
        yield Problem(
            (*here, "deck"),
            f"unknown deck {ritual.deck!r} (known: {', '.join(sorted(known_decks))})",
        )
        deck = None

    allowed = set(SAMPLE_VALUES) - ({"item"} if deck is None else set())
    for name in ("message", "plan_ahead_message", "reminder_message"):
        source = getattr(ritual, name)
        if source is None:
            continue
        try:
            check_template(source, frozenset(allowed))
        except TemplateProblem as exc:
            hint = " (this ritual has no deck)" if "'item'" in str(exc) and deck is None else ""
            yield Problem((*here, name), f"{exc}{hint}")
            continue
        segments = count_segments(render(source, SAMPLE_VALUES))
        if segments.count > 2:
            yield Problem(
                (*here, name),
                f"an SMS of this message needs {segments.count} segments ({segments.encoding}, "
                f"{segments.units} characters with sample values); keep it to 2",
                "warning",
            )
    if ritual.kind == "custom" and ritual.message is None:
        yield Problem((*here, "message"), "a custom ritual needs a message")

    if households_complete:
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
    if ritual.plan_ahead is not None and ritual.planner is None and ritual.kind != "date_night":
        yield Problem((*here, "plan_ahead"), "plan_ahead needs a planner (alternate | both | id)")

    yield from _firing(here, ritual, targets, timezone, today)


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
        return
    assert isinstance(schedule, RandomWindow)
    for household in targets:
        try:
            zone = get_zone(household.timezone or timezone or "UTC")
        except ValueError:
            continue  # an unknown default zone is reported where it is written
        zones = {p.id: get_zone(p.timezone) if p.timezone else zone for p in household.partners}
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
            quiet = QuietHours.of(zone, [(by_id[p].quiet_hours, zones[p]) for p in audience])
            found = found and any(quiet.allowed_minutes(day, schedule.marks) for day in days)
        if not found:
            yield Problem(
                where,
                f"never fires for household {household.id!r}: every time in "
                f"{schedule.between} falls in a partner's quiet hours",
            )
