"""Planning a ritual directory: only the households whose file changed, or whose day did.

Each call looks at the files (:meth:`DirectorySource.look`, a stat of each), syncs the
household files whose content changed into the ledger a chunk at a time, and plans:

- with ``changed`` (their pending rows brought up to date, the rest cancelled): each
  household whose plan was not finished for its file and rituals.toml as they are now (the
  ledger's ``planned_hash``), which is every household after a change of rituals.toml, the
  changed ones after an edit, and any a crash interrupted;
- without: each household whose local day moved since this process last planned it (its
  horizon reaches a day further), which at a start is every household.

So a call with nothing changed in the same local day reads no household file and writes no
row. The households are read from the ledger (their last good versions) in chunks, planned
and let go: what the process holds of them at once is one chunk.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from contextlib import nullcontext
from datetime import date, datetime
from zoneinfo import ZoneInfo

from config.directory import combine
from rituals.planning import Plan
from scheduler.directory import CHUNK, DirectorySource, Look, ledger_view, planned_hash
from scheduler.ledger import Ledger
from scheduler.planner.planner import PlanReport, _lookback, plan_horizon

__all__ = ["DirectoryPlanner"]

log = logging.getLogger("scheduler.planner")


class DirectoryPlanner:
    """Plans `source`'s households into `ledger`; remembers how far each was planned."""

    def __init__(self, ledger: Ledger, source: DirectorySource, *, days: int) -> None:
        self.ledger = ledger
        self.source = source
        self.days = days
        self._planned_on: dict[str, date] = {}  # household -> its local day when planned
        self._synced_hash: str | None = None  # rituals.toml synced by this process
        self._pending: set[str] | None = None  # households whose plan is not finished

    def plan(self, now: datetime) -> PlanReport | None:
        """Sync what changed and plan what needs it; None when there was nothing to do.

        Someone's edit of a few household files is synced and planned ahead of the
        dispatcher's transactions (:meth:`Ledger.ahead`: SQLite has one writer, and a
        backlog being sent would otherwise keep the edit waiting); a change of every
        household (a start, rituals.toml) and the households whose day moved take turns."""
        look = self.source.look()
        edit = (
            self._pending is not None
            and not look.shared_changed
            and len(look.touched) + len(look.gone) <= CHUNK
        )
        try:
            with self.ledger.ahead() if edit else nullcontext():
                synced = self._sync_and_plan_changes(now, look)
        except Exception:
            # What the look saw is not all in the ledger: look at every file again next
            # time, and ask the ledger again which plans are unfinished.
            self.source.look_again()
            self._pending = None
            raise
        if synced is None:
            return None
        report, generation, pending, due = synced
        more = PlanReport(0, 0, 0, generation)
        if report.complete:
            more = self._plan(now, generation, sorted(due - pending), changed=False)
        return PlanReport(
            report.occurrences + more.occurrences,
            report.deliveries + more.deliveries,
            report.cancelled + more.cancelled,
            generation,
            complete=report.complete and more.complete,
        )

    def _sync_and_plan_changes(
        self, now: datetime, look: Look
    ) -> tuple[PlanReport, int, set[str], set[str]] | None:
        """Sync what `look` found changed, and plan the households whose plan is not
        finished; return that plan, the generation, those households and the ones whose day
        moved (None when there is nothing to plan)."""
        source = self.source
        changed_ids: set[str] = set()
        gone: list[str] = []
        generation: int | None = None
        for read in source.read(look):
            if generation is None:
                generation = self._sync_shared(now, households_changed=True)
            if read.changed:
                hashes = {
                    f.household.id: source.digest_of(f.household.id) or "" for f in read.changed
                }
                assert source.shared is not None
                view = combine(source.shared, [f.household for f in read.changed])
                self.ledger.synced.sync_households(view, hashes, now)
                changed_ids.update(hashes)
            gone += read.gone
        if generation is None:
            generation = self._sync_shared(now, households_changed=False)
        # A household one file let go of and another holds now (renamed, with its id) stays.
        gone = sorted({g for g in gone if source.digest_of(g) is None})
        first = self._pending is None
        pending = self._unfinished(changed_ids, everyone=look.shared_changed)
        if first:
            broken = len(source.broken())
            log.info(
                "ritual directory %s: %d households%s",
                source.path,
                len(source.zones),
                f", {broken} household files with errors (see above)" if broken else "",
            )
        elif changed_ids:
            log.info("household files changed: %s", _some(sorted(changed_ids)))
        if gone:
            self._gone(gone, now, generation)
        due = self._due(now, pending)
        if not pending and not due and not gone:
            return None
        # The edited households first: a plan of every household that gave way to an edit
        # goes on after it, not before.
        order = sorted(changed_ids & pending) + sorted(pending - changed_ids)
        report = self._plan(now, generation, order, changed=True)
        return report, generation, pending, due

    def _sync_shared(self, now: datetime, *, households_changed: bool) -> int:
        source = self.source
        assert source.hash is not None and source.text is not None
        if not households_changed and self._synced_hash == source.hash:
            state = self.ledger.synced.state()
            assert state is not None
            return state.generation
        generation, shared_changed = self.ledger.synced.sync_shared(
            source.hash, now, source.text, households_changed=households_changed
        )
        if shared_changed:
            log.info("rituals.toml generation %d synced", generation)
        self._synced_hash = source.hash
        return generation

    def _unfinished(self, changed: set[str], *, everyone: bool) -> set[str]:
        """Households whose plan is not finished for their file and rituals.toml as now:
        `changed` ones, every one when rituals.toml changed (`everyone`), and at the first
        plan of this process those the ledger says a crash interrupted."""
        shared = self.source.hash or ""
        if everyone:
            self._pending = set(self.source.households())
        elif self._pending is None:
            self._pending = {
                k.id
                for k in self.ledger.synced.kept()
                if (digest := self.source.digest_of(k.id)) is not None
                and k.planned_hash != planned_hash(shared, digest)
            }
        self._pending |= changed
        return set(self._pending)

    def _due(self, now: datetime, pending: set[str]) -> set[str]:
        """Households whose local day moved since this process planned them."""
        days: dict[str, date] = {}
        due = set()
        for household, zone in self.source.zones.items():
            today = days.get(zone)
            if today is None:
                today = days[zone] = now.astimezone(ZoneInfo(zone)).date()
            if self._planned_on.get(household) != today:
                due.add(household)
        return due

    def _gone(self, gone: list[str], now: datetime, generation: int) -> None:
        """Households whose file is gone: inactive, and what was still to send cancelled."""
        self.ledger.synced.deactivate(gone, now)
        shared = self.source.shared
        assert shared is not None
        rituals = [(r.id, r.households) for r in shared.file.rituals]
        for start in range(0, len(gone), CHUNK):
            cancelled = self.ledger.plans.cancel_stale(
                rituals=rituals,
                since=_lookback(shared.file, now),
                now=now,
                generation=generation + 1,  # everything they had planned
                households=gone[start : start + CHUNK],
            )
            if cancelled:
                log.info("cancelled %d pending deliveries of households gone", cancelled)
        log.info("households whose file is gone: %s", _some(gone))
        for household in gone:
            self._planned_on.pop(household, None)
            if self._pending is not None:
                self._pending.discard(household)

    def _plan(
        self, now: datetime, generation: int, households: list[str], *, changed: bool
    ) -> PlanReport:
        """Plan `households`, a chunk at a time; with `changed`, their pending rows are
        brought up to date and the rest cancelled, except for a household the ledger has no
        occurrence of yet, whose first plan has nothing to update or cancel.

        Between chunks it gives way to a change the file watch heard of (the report is not
        `complete`): the households not planned yet are still unfinished, or their day still
        moved, so the next plan, which the watch's wake-up runs at once, takes them up after
        the change. Otherwise an edit at a zone's midnight (25,000 households whose day moved
        at 100,000) waited a minute and a half for them."""
        occurrences = deliveries = cancelled = 0
        shared = self.source.shared
        assert shared is not None
        for start in range(0, len(households), CHUNK):
            if start and self.source.heard_of_changes():
                log.info(
                    "planning %d households after a change of the ritual directory",
                    len(households) - start,
                )
                return PlanReport(occurrences, deliveries, cancelled, generation, complete=False)
            view = ledger_view(self.ledger, shared, households[start : start + CHUNK])
            done = [h.id for h in view.households]
            before = self.ledger.plans.with_occurrences(done) if changed else set()
            for part, again in ((sorted(before), True), (sorted(set(done) - before), False)):
                if not part:
                    continue
                these = set(part)
                report = plan_horizon(
                    self.ledger,
                    Plan(combine(shared, [h for h in view.households if h.id in these])),
                    now,
                    generation=generation,
                    changed=again,
                    days=self.days,
                    households=part,
                    unfinished=False,  # tracked by household (planned_hash) here
                )
                occurrences += report.occurrences
                deliveries += report.deliveries
                cancelled += report.cancelled
            if changed:
                self._finished(done)
            self._planned_today(now, done)
        return PlanReport(occurrences, deliveries, cancelled, generation)

    def _planned_today(self, now: datetime, households: list[str]) -> None:
        today: dict[str, date] = {}  # one date a zone: 100,000 households share four
        for household in households:
            zone = self.source.zones.get(household)
            if zone is not None:
                if zone not in today:
                    today[zone] = now.astimezone(ZoneInfo(zone)).date()
                self._planned_on[household] = today[zone]

    def _finished(self, households: Iterable[str]) -> None:
        shared = self.source.hash or ""
        hashes = {}
        for household in households:
            digest = self.source.digest_of(household)
            if digest is not None:
                hashes[household] = planned_hash(shared, digest)
            if self._pending is not None:
                self._pending.discard(household)
        self.ledger.synced.planned(hashes)


def _some(households: list[str], most: int = 10) -> str:
    """`a, b, c` (or the first `most` and how many more)."""
    shown = ", ".join(households[:most])
    more = len(households) - most
    return f"{shown} and {more} more" if more > 0 else shown
