"""What ``tend status`` shows: workers, counts by status, the next due deliveries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from scheduler.ledger import Ledger
from scheduler.ledger.reports import Due
from scheduler.ledger.workers import Beat

__all__ = ["LedgerStatus", "ledger_status"]


@dataclass(frozen=True)
class LedgerStatus:
    now: datetime
    workers: list[Beat]
    counts: dict[str, int]
    next_due: list[Due]


def ledger_status(ledger: Ledger, now: datetime, *, limit: int = 10) -> LedgerStatus:
    """The status at `now`; :class:`~scheduler.ledger.SchemaBehind` when the database is
    not at the code's schema."""
    ledger.check_schema()
    return LedgerStatus(
        now=now,
        workers=ledger.workers.latest(10),
        counts=ledger.reports.counts(),
        next_due=ledger.reports.next_due(limit),
    )
