"""The planner: the ritual file into ledger rows, idempotently.

Two steps, both safe to run twice or from two processes at once:

- :func:`sync_file` mirrors households and partners, and counts *generations*: each change
  of the file (by the hash of its validated content) is a new generation.
- :func:`plan_horizon` inserts the occurrences and deliveries of the next days with
  insert-or-ignore on their unique keys. After a change it also updates what is still
  pending, and cancels what the new file no longer makes (a removed or changed ritual's
  future deliveries), keeping every row that has history. A chunk of households with no
  occurrences yet (a first plan) gets the same rows with plain inserts, undone and upserted
  instead if another planner wrote it meanwhile.

Which rows a plan writes is decided by :mod:`scheduler.planner.rules`, from what the file
makes (:mod:`scheduler.planner.candidates`) and what the ledger has.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from config.model import RitualFile
from rituals.planning import PLANNING_RULES, Plan, file_hash
from scheduler.ledger import Ledger, Records
from scheduler.ledger.plans import CONFIG_CANCELLED, Snapshot
from scheduler.planner import rules
from scheduler.planner.candidates import Candidate, candidates

__all__ = [
    "CONFIG_CANCELLED",
    "DEFAULT_HORIZON_DAYS",
    "PLANNING_RULES",
    "PlanReport",
    "SyncResult",
    "file_hash",
    "plan_horizon",
    "sync_file",
]

log = logging.getLogger("scheduler.planner")

DEFAULT_HORIZON_DAYS = 14

CHUNK = 500  # households per transaction while planning


@dataclass(frozen=True)
class SyncResult:
    generation: int
    changed: bool


@dataclass(frozen=True)
class PlanReport:
    occurrences: int  # rows inserted or updated
    deliveries: int
    cancelled: int  # pending deliveries cancelled because the file no longer makes them
    generation: int
    # False when a ritual directory's plan gave way to a change part way (the rest follows).
    complete: bool = True


def sync_file(
    ledger: Ledger, file: RitualFile, now: datetime, *, text: str | None = None
) -> SyncResult:
    """Mirror the file's households and partners; count a generation when the file changed.

    `text`, the TOML as written, is kept as the last good file.
    """
    generation, changed = ledger.synced.sync(file, file_hash(file), now, text)
    if changed:
        log.info("ritual file generation %d synced", generation)
    return SyncResult(generation, changed)


def plan_horizon(
    ledger: Ledger,
    plan: Plan,
    now: datetime,
    *,
    generation: int,
    changed: bool,
    days: int = DEFAULT_HORIZON_DAYS,
    households: Sequence[str] | None = None,
    unfinished: bool = True,
) -> PlanReport:
    """Insert the occurrences and deliveries of the next `days` local days of each household.

    With ``changed`` (the file is a new generation), pending rows are updated to what the
    file now says and pending deliveries it no longer makes are cancelled.
    """
    file = plan.file
    since = _lookback(file, now)
    if not changed and unfinished:
        # A change whose planning failed part way (a crash, a lost database) is finished now:
        # otherwise no later run would update or cancel what the old file planned.
        changed = ledger.plans.unfinished([r.id for r in file.rituals], since, now, generation)
    only = None if households is None else set(households)
    chosen = [h for h in file.households if only is None or h.id in only]
    occurrences = deliveries = 0
    for start in range(0, len(chosen), CHUNK):
        chunk = [h.id for h in chosen[start : start + CHUNK]]
        # Computed before the transaction: on SQLite it holds the write lock.
        made = candidates(plan, chunk, now, generation, days)
        if not made:
            continue
        with ledger.transaction() as tx:
            o, d = _write_chunk(tx, chunk, made, now, generation, changed)
        occurrences += o
        deliveries += d
        if o or d:
            ledger.plans.refresh_statistics()  # PostgreSQL, as the tables grow
    cancelled = 0
    if changed:
        cancelled = ledger.plans.cancel_stale(
            rituals=[(r.id, r.households) for r in file.rituals],
            since=since,
            now=now,
            generation=generation,
            households=households,
        )
        if cancelled:
            log.info("cancelled %d pending deliveries the ritual file no longer makes", cancelled)
    return PlanReport(occurrences, deliveries, cancelled, generation)


def _write_chunk(
    tx: Records,
    household_ids: Sequence[str],
    made: Sequence[Candidate],
    now: datetime,
    generation: int,
    changed: bool,
) -> tuple[int, int]:
    """Write one chunk of households, in one transaction: (occurrences, deliveries)."""
    # Looked up by key; `at` only narrows the search. A row the upsert leaves alone
    # (confirmed, skipped) keeps the instant of an earlier file, and a changed zone moves a
    # slot's instant by up to 26 hours (UTC-12 to UTC+14): look that much further back.
    earliest = min(c.row["at"] for c in made) - timedelta(days=2)
    before = tx.plans.snapshot(household_ids, earliest)
    first_plan = generation <= 1
    if not before.occurrences:
        counts = _write_new(tx, made, before, now, first_plan)
        if counts is not None:
            return counts
        # Another planner wrote these households meanwhile: upsert on what it wrote.
        before = tx.plans.snapshot(household_ids, earliest)
    chosen = rules.choose(made, before, now, first_plan=first_plan)
    if changed and chosen.lost_days:
        keep = rules.kept_days(before, made, chosen.lost_days)
        if keep:
            tx.plans.keep(keep, now, generation)
    if not chosen.candidates:
        return 0, 0
    upserted, written = rules.occurrence_rows(chosen.candidates, before, changed=changed)
    if upserted:
        tx.plans.upsert_occurrences(upserted, changed=changed)
    ids = tx.plans.occurrence_ids(household_ids, earliest) if upserted else before.occurrences
    rows, announced = rules.delivery_rows(
        chosen.candidates, ids, before, now, first_plan=first_plan, changed=changed
    )
    if not rows:
        return written, 0
    tx.plans.upsert_deliveries(rows, changed=changed)
    return written, announced


def _write_new(
    tx: Records, made: Sequence[Candidate], before: Snapshot, now: datetime, first_plan: bool
) -> tuple[int, int] | None:
    """Write a chunk the ledger has no occurrences for (a first plan) with plain inserts:
    the very rows the upserts would write, found by the same rules. None, with nothing
    written, if a row exists after all."""
    chosen = rules.choose(made, before, now, first_plan=first_plan)
    if not chosen.candidates:
        return 0, 0
    # No occurrence in the snapshot, so none to keep (rule 6) and every chosen one is new.
    ids = tx.plans.new_occurrence_ids(len(chosen.candidates))
    new = {c.key: (i, "open") for c, i in zip(chosen.candidates, ids, strict=True)}
    occurrences = [{"id": i, **c.row} for c, i in zip(chosen.candidates, ids, strict=True)]
    rows, announced = rules.delivery_rows(
        chosen.candidates, new, before, now, first_plan=first_plan, changed=False
    )
    if not tx.plans.insert_new(occurrences, rows):
        return None
    return len(occurrences), announced


def _lookback(file: RitualFile, now: datetime) -> datetime:
    """How far back a plan reaches: an occurrence older than this has nothing left to send."""
    longest = max(
        (r.grace + (r.remind_after or timedelta()) for r in file.rituals), default=timedelta()
    )
    return now - longest - timedelta(days=2)
