"""The couple's page (``GET /h/{token}``), as data: what one partner (or the household as a
whole) sees, read from the ledger and the ritual file. The web renders it; nothing here is
HTML, and every text is plain (the template escapes it).

What a partner's page shows is what that partner may see: the shared rituals and their own
nudges (never the other partner's own), their own ratings (the other partner's only when the
household has ``share_pulse``), and the partners' names, never a phone number or an e-mail
address. The household's page (a token without a partner) shows what both share, and no
buttons: a button records a partner's DONE, and that page is nobody's in particular.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from config.model import Household, Ritual, RitualFile
from rituals.pulse import TREND_WEEKS, trend
from rituals.streaks import weeks_text
from scheduler.acts import targets
from scheduler.acts.replies import told_to
from scheduler.reports.heatmap import heatmap_svg
from scheduler.reports.history import RitualHistory, day_text, household_history
from scheduler.reports.streaks import household_streaks

if TYPE_CHECKING:
    from rituals.planning import Occurrence, Plan
    from scheduler.ledger import Records

__all__ = [
    "COMING_DAYS",
    "Button",
    "Coming",
    "CouplePage",
    "Pulse",
    "StreakLine",
    "couple_page",
]

COMING_DAYS = 14


@dataclass(frozen=True, slots=True)
class StreakLine:
    title: str
    current: str
    longest: str
    rate: str  # the 12-week rate, "-" before there is one
    strength: str  # the habit-strength score


@dataclass(frozen=True, slots=True)
class Coming:
    """An occurrence of the next :data:`COMING_DAYS` days, on the viewer's clock."""

    when: str
    title: str
    planners: str  # who plans it ("" for nobody in particular)
    item: str | None  # the idea or question drawn for it


@dataclass(frozen=True, slots=True)
class Button:
    """An occurrence still open for the viewer: its DONE and SKIP buttons."""

    occurrence: int
    title: str
    when: str
    done: bool  # a DONE would record it
    skip: bool  # a SKIP would


@dataclass(frozen=True, slots=True)
class Pulse:
    """The viewer's own pulse line, and with ``share_pulse`` the other partners'."""

    mine: str | None
    shared: tuple[tuple[str, str], ...]  # (name, ratings, oldest first)


@dataclass(frozen=True, slots=True)
class CouplePage:
    household: str
    names: tuple[str, ...]  # the partners' names
    viewer: str | None  # the viewing partner's name (None: the household's page)
    today: date
    zone: str
    history: tuple[RitualHistory, ...]
    heatmap: str  # an escaped inline <svg>, from scheduler.reports.heatmap
    streaks: tuple[StreakLine, ...]
    coming: tuple[Coming, ...]
    next_date: Coming | None
    buttons: tuple[Button, ...]
    pulse: Pulse | None


_PLANS: dict[int, tuple[RitualFile, Plan]] = {}


def _plan(file: RitualFile) -> Plan:
    """The file's planner, kept for the few latest files (it indexes every household)."""
    from rituals.planning import Plan  # the decks and templates: only when a page is asked

    found = _PLANS.get(id(file))
    if found is None or found[0] is not file:
        found = (file, Plan(file))
        if len(_PLANS) >= 4:
            _PLANS.clear()
        _PLANS[id(file)] = found
    return found[1]


def _sees(ritual: Ritual, recipient: str | None, viewer: str | None) -> bool:
    """Whether `viewer` (None: the household's page) sees an occurrence of `ritual` for
    `recipient` (None: the household's)."""
    if recipient is not None:
        return recipient == viewer
    if ritual.to not in ("both", "each"):
        return ritual.to == viewer
    return True


def couple_page(
    ledger: Records,
    file: RitualFile,
    household: Household,
    partner: str | None,
    now: datetime,
) -> CouplePage:
    """What the page of `household` shows `partner` (None: the household's page) at `now`."""
    zone, zones = household.zones(file.timezone)
    own = zones.get(partner, zone) if partner else zone
    names = {p.id: p.name for p in household.partners}
    today = now.astimezone(zone).date()
    history = household_history(ledger, file, household.id, now, partner=partner)
    if partner is None:  # what both share: not a partner's own nudges
        history = tuple(h for h in history if h.recipient is None)
    title = "History" if partner is None else f"{names[partner]}'s history"
    coming = _coming(_plan(file), file, household, partner, now, own, names)
    return CouplePage(
        household=household.id,
        names=tuple(names.values()),
        viewer=names[partner] if partner else None,
        today=today,
        zone=str(own),
        history=history,
        heatmap=heatmap_svg(history, today=today, title=title),
        streaks=_streaks(ledger, file, household.id, partner, now, names),
        coming=coming,
        next_date=_next_date(_plan(file), file, household, partner, now, own, names),
        buttons=_buttons(ledger, file, household.id, partner, now, own),
        pulse=_pulse(ledger, file, household, partner, now),
    )


def _streaks(
    ledger: Records,
    file: RitualFile,
    household: str,
    partner: str | None,
    now: datetime,
    names: dict[str, str],
) -> tuple[StreakLine, ...]:
    lines = []
    for series in household_streaks(ledger, file, household, now):
        if not _sees(series.ritual, series.recipient, partner):
            continue
        s = series.streak
        counted = weeks_text if s.unit == "weeks" else str
        title = series.ritual.display_name
        if series.recipient and partner is None:
            title += f" ({names.get(series.recipient, series.recipient)})"
        lines.append(
            StreakLine(
                title=title,
                current=counted(s.current),
                longest=counted(s.longest),
                rate="-" if s.rate is None else f"{s.rate:.0%}",
                strength=f"{s.score:.0%}",
            )
        )
    return tuple(lines)


def _when(at: datetime, zone: ZoneInfo) -> str:
    local = at.astimezone(zone)
    return f"{day_text(local.date())} {local:%H:%M}"


def _shown(occurrence: Occurrence, ritual: Ritual, zone: ZoneInfo, names: dict[str, str]) -> Coming:
    planners = ", ".join(names.get(p, p) for p in occurrence.planners)
    return Coming(_when(occurrence.at, zone), ritual.display_name, planners, occurrence.item)


def _coming(
    plan: Plan,
    file: RitualFile,
    household: Household,
    partner: str | None,
    now: datetime,
    zone: ZoneInfo,
    names: dict[str, str],
) -> tuple[Coming, ...]:
    """The occurrences from `now` to the end of the viewer's 14th day, soonest first."""
    first = now.astimezone(plan.zone_of(household.id)).date()
    end = now.astimezone(zone).date() + timedelta(days=COMING_DAYS)
    found: list[tuple[datetime, Coming]] = []
    for ritual in plan.rituals_for(household.id):
        # A day either side: the viewer's days need not be the household's.
        for o in plan.occurrences(household.id, ritual, first, first + timedelta(COMING_DAYS + 2)):
            seen = o.at >= now and o.at.astimezone(zone).date() < end
            if seen and _sees(ritual, o.recipient, partner):
                found.append((o.at, _shown(o, ritual, zone, names)))
    found.sort(key=lambda pair: pair[0])
    return tuple(c for _, c in found)


def _next_date(
    plan: Plan,
    file: RitualFile,
    household: Household,
    partner: str | None,
    now: datetime,
    zone: ZoneInfo,
    names: dict[str, str],
) -> Coming | None:
    """The next date night (the soonest of the household's date-night rituals)."""
    best: tuple[datetime, Coming] | None = None
    for ritual in plan.rituals_for(household.id):
        if ritual.kind != "date_night" or not _sees(ritual, None, partner):
            continue
        found = plan.next_occurrence(household.id, ritual, now)
        if found is not None and (best is None or found.at < best[0]):
            best = (found.at, _shown(found, ritual, zone, names))
    return best[1] if best else None


def _buttons(
    ledger: Records,
    file: RitualFile,
    household: str,
    partner: str | None,
    now: datetime,
    zone: ZoneInfo,
) -> tuple[Button, ...]:
    if partner is None:
        return ()
    told = told_to(ledger, file, household=household, partner=partner, now=now)
    found = []
    for t in told:
        done = targets.button_target(told, partner, now, t.occurrence, "done") is not None
        # Skipped by the other partner already: a SKIP would change nothing they see.
        skip = t.status == "open" and (
            targets.button_target(told, partner, now, t.occurrence, "skip") is not None
        )
        if done or skip:
            found.append(Button(t.occurrence, t.ritual.display_name, _when(t.at, zone), done, skip))
    return tuple(found)


def _pulse(
    ledger: Records, file: RitualFile, household: Household, partner: str | None, now: datetime
) -> Pulse | None:
    """The viewer's own ratings; the others' only with ``share_pulse``. Nothing on the
    household's page without ``share_pulse`` (a rating is its partner's own), nor for a
    household with no pulse check-in."""
    if partner is None and not household.share_pulse:
        return None
    if not any(
        r.asks_pulse and (r.households is None or household.id in r.households)
        for r in file.rituals
    ):
        return None
    since = now - timedelta(weeks=TREND_WEEKS)
    viewer = None if household.share_pulse else partner
    ratings = ledger.ratings.by_partner(household.id, since, now, viewer)
    mine = trend(ratings.get(partner, []), now) if partner else None
    shared: Sequence[tuple[str, str]] = ()
    if household.share_pulse:
        shared = [
            (p.name, " ".join(str(r.rating) for r in ratings.get(p.id, [])) or "none yet")
            for p in household.partners
            if p.id != partner
        ]
    return Pulse(mine, tuple(shared))
