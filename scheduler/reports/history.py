"""A household's history, occurrence by occurrence: what the heatmap draws (the couple's
page, ``tend streaks --history``, ``tend streaks --format svg``).

Each due occurrence of the last months is judged by the very rules streaks use
(:func:`rituals.streaks.judge` with :func:`scheduler.reports.streaks.rules_for`), so the
picture and ``tend streaks`` never disagree. A judged outcome becomes a cell's state:

========== =========================================================================
state      when
========== =========================================================================
``both``   kept, confirmed by everyone it is for (both partners, or the one partner
           of a partner's own nudge)
``one``    kept, but not by everyone it is for (``streak = "either"``: one confirmed)
``freeze`` skipped with a freeze: neutral
``paused`` inside a pause (PAUSE 2w): neutral
``missed`` the reply window closed with no confirmation (with ``streak = "both"``, also
           when only one partner confirmed), or skipped with no freeze left: breaks
``failed`` no message about it reached anyone and none is still to send (it failed,
           expired, or was never sent): not the couple's fault, neutral
``open``   still inside its reply window, or its message is still to be sent
========== =========================================================================

One read of the ledger for the household's occurrences (plus its zone and its pauses),
whatever the length of the history.
"""

from __future__ import annotations

from calendar import monthrange
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from fractions import Fraction
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

from config.model import Partner, Ritual, RitualFile
from rituals.clock import get_zone, resolve
from rituals.streaks import Entry, Outcome, judge
from scheduler.reports.streaks import rules_for

if TYPE_CHECKING:
    from scheduler.ledger import Records
    from scheduler.ledger.reports import HistoryEntry

__all__ = [
    "LABELS",
    "STATES",
    "Cell",
    "RitualHistory",
    "State",
    "day_text",
    "household_history",
    "months_before",
]

State = Literal["both", "one", "freeze", "paused", "missed", "failed", "open"]

#: The states in the legend's order.
STATES: tuple[State, ...] = ("both", "one", "freeze", "paused", "missed", "failed", "open")

LABELS: Mapping[State, str] = MappingProxyType(
    {
        "both": "kept by both",
        "one": "kept by one",
        "freeze": "skipped with a freeze",
        "paused": "paused",
        "missed": "missed",
        "failed": "not sent (Tend's fault)",
        "open": "still open",
    }
)

WEEKLY = Fraction(1, 7)
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True, slots=True)
class Cell:
    """One occurrence: its local day, what became of it, and that in words."""

    day: date  # the household's local day (the partner's, for a partner's own nudge)
    state: State
    note: str  # plain text, for the tooltip and a table: renderers escape it


@dataclass(frozen=True, slots=True)
class RitualHistory:
    """One row of the heatmap: a ritual of the household (one partner's own, for a
    ``to = "each"`` ritual)."""

    ritual: str  # the ritual's id
    title: str  # its display name, plain text
    weekly: bool  # it happens at most weekly: one square per week
    cells: tuple[Cell, ...]  # oldest first
    recipient: str | None = None  # whose own nudges these are; None: the household's


def day_text(day: date) -> str:
    """A day as the notes write it, the same in every locale: ``Fri 12 Dec 2026``."""
    return f"{_DAYS[day.weekday()]} {day.day} {_MONTHS[day.month - 1]} {day.year}"


def months_before(day: date, months: int) -> date:
    """The same day of the month `months` months before `day` (the month's last day when
    that month is shorter): where a history of `months` months starts."""
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    month += 1
    return date(year, month, min(day.day, monthrange(year, month)[1]))


def _names(partners: list[Partner]) -> dict[str, str]:
    return {p.id: p.name for p in partners}


def _joined(names: list[str]) -> str:
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def household_history(
    ledger: Records,
    file: RitualFile,
    household: str,
    now: datetime,
    *,
    months: int = 12,
    partner: str | None = None,
) -> tuple[RitualHistory, ...]:
    """The household's rituals over the last `months` months to `now`, one history per
    ritual in the file's order (per partner for a ``to = "each"`` ritual), each with a cell
    per due occurrence in ``[since, today]``.

    Without `partner`, every row, as ``tend streaks`` lists them (a partner's own nudges
    titled with their name). With `partner`, what that partner sees: the shared rituals and
    their own nudges (their ``to = "each"`` occurrences, a ritual sent to them alone), never
    another partner's own. Empty for a household the file or the ledger does not know.
    """
    found = next((h for h in file.households if h.id == household), None)
    if found is None:
        return ()
    names = _names(found.partners)
    if partner is not None and partner not in names:
        return ()
    zone_name = ledger.streaks.zone(household)
    if zone_name is None:
        return ()
    zone = get_zone(zone_name)
    _, partner_zones = found.zones(file.timezone)
    today = now.astimezone(zone).date()
    since = months_before(today, months)
    # A day earlier: a partner east of the household starts their day before it does.
    start = resolve(datetime.combine(since - timedelta(days=1), datetime.min.time()), zone)
    rows = ledger.reports.history(household, start, now)
    pauses = ledger.streaks.pauses(household)
    by_series: dict[tuple[str, str], list[HistoryEntry]] = {}
    for row in rows:
        by_series.setdefault((row.ritual_id, row.recipient), []).append(row)
    result: list[RitualHistory] = []
    for ritual in file.rituals:
        if ritual.households is not None and household not in ritual.households:
            continue
        for who in _recipients(ritual, [*names], partner):
            rules = rules_for(file, household, ritual, who)
            weekly = rules.frequency <= WEEKLY
            own_zone = partner_zones.get(who, zone) if who else zone
            cells = []
            for row in by_series.get((ritual.id, who or ""), []):
                day = row.at.astimezone(own_zone).date() if who else row.slot.date()
                if not since <= day <= today:
                    continue
                entry = Entry(
                    slot=row.slot,
                    at=row.at,
                    confirmed_by=row.confirmed_by,
                    skipped=row.skipped_by is not None,
                    froze=row.froze,
                    reached_at=row.reached_at,
                )
                outcome = judge(entry, rules, pauses, now)
                state = _state(outcome, row, rules.audience)
                when = day_text(day)
                if not weekly:
                    local = row.at.astimezone(own_zone)
                    when += f" {local:%H:%M}"
                cells.append(Cell(day, state, f"{when}: {_what(state, outcome, row, names)}"))
            title = ritual.display_name
            if who and partner is None and ritual.to == "each":
                title += f" ({names[who]})"
            result.append(
                RitualHistory(
                    ritual=ritual.id,
                    title=title,
                    weekly=weekly,
                    cells=tuple(cells),
                    recipient=who or (ritual.to if ritual.to not in ("both", "each") else None),
                )
            )
    return tuple(result)


def _recipients(ritual: Ritual, partners: list[str | None], viewer: str | None) -> list[str | None]:
    """The series of `ritual` a viewer sees: the household's, or each partner's own."""
    if ritual.to == "each":
        return [p for p in partners if viewer is None or p == viewer]
    if ritual.to != "both" and viewer is not None and ritual.to != viewer:
        return []  # sent to another partner alone: theirs
    return [None]


def _state(outcome: Outcome, row: HistoryEntry, audience: frozenset[str]) -> State:
    if outcome is Outcome.KEPT:
        return "both" if audience <= row.confirmed_by else "one"
    if outcome is Outcome.FROZEN:
        return "freeze"
    if outcome is Outcome.PAUSED:
        return "paused"
    if outcome is Outcome.UNSENT:
        return "open" if row.waiting else "failed"
    if outcome is Outcome.OPEN:
        return "open"
    return "missed"  # MISSED, or SKIPPED with no freeze left


def _what(state: State, outcome: Outcome, row: HistoryEntry, names: Mapping[str, str]) -> str:
    """What happened, in words (plain text)."""
    who = _joined(sorted(names.get(p, p) for p in row.confirmed_by))
    skipper = names.get(row.skipped_by, row.skipped_by) if row.skipped_by else None
    if state in ("both", "one"):
        text = f"kept by {who}"
    elif state == "freeze":
        text = f"skipped by {skipper} with a freeze" if skipper else "skipped with a freeze"
    elif state == "paused":
        text = "paused"
    elif state == "failed":
        text = "not sent (Tend's fault): no message reached you, so it does not count"
    elif state == "open":
        text = "still open: the message is still to send" if row.waiting else "still open"
    elif outcome is Outcome.SKIPPED:
        text = f"skipped by {skipper}, no freeze left: missed" if skipper else "skipped: missed"
    elif row.confirmed_by:
        text = f"missed: only {who} confirmed"
    else:
        text = "missed"
    if row.item:
        text += f" ({row.item})"
    return text
