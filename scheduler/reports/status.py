"""What ``tend status`` shows: workers, counts by status, the next due deliveries."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from scheduler.ledger import Ledger
from scheduler.ledger.reports import Due
from scheduler.ledger.workers import Beat

__all__ = ["LedgerStatus", "due_text", "ledger_status"]


@dataclass(frozen=True)
class LedgerStatus:
    now: datetime
    workers: list[Beat]
    counts: dict[str, int]
    next_due: list[Due]
    #: The ritual files' problems as the planner last read them (their last good versions
    #: are in force meanwhile); empty when every file is good.
    problems: list[str] = field(default_factory=list)


def ledger_status(
    ledger: Ledger, now: datetime, *, limit: int = 10, household: str | None = None
) -> LedgerStatus:
    """The status at `now` (the deliveries of one `household`, or of all);
    :class:`~scheduler.ledger.SchemaBehind` when the database is not at the code's schema."""
    ledger.check_schema()
    return LedgerStatus(
        now=now,
        workers=ledger.workers.latest(10),
        counts=ledger.reports.counts(household),
        next_due=ledger.reports.next_due(limit, household),
        problems=ledger.synced.problems(),
    )


def due_text(instant: datetime, zone: str) -> str:
    """``2026-03-29 09:00 UTC (11:00 Europe/Berlin)``: a due time in UTC and on the
    recipient's clock, with the day there when it is another day than in UTC. Only UTC for
    a recipient on UTC, or in a zone this machine does not know."""
    utc = instant.astimezone(UTC)
    text = f"{utc:%Y-%m-%d %H:%M} UTC"
    try:
        there = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        return text
    if zone in ("UTC", "Etc/UTC"):
        return text
    local = utc.astimezone(there)
    day = "" if local.date() == utc.date() else f"{local:%a} {local.day} {local:%b} "
    return f"{text} ({day}{local:%H:%M} {zone})"
