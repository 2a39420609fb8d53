"""The worker process: APScheduler 3 (in-memory job store) around the ledger.

The ledger is the source of truth; APScheduler only wakes the process at the right moments.
Its persistent ``SQLAlchemyJobStore`` is deliberately not used: about 850 jobs/s measured,
and its FAQ says a job store cannot be shared by processes. Jobs:

- ``plan``: sync the ritual file and plan the horizon; hourly, at start, after a change;
- ``watch``: notices a changed ritual file (by content hash) and re-plans;
- ``wake``: one-shot, at the next due delivery, re-armed after every batch;
- ``poll``: every 30 s, a safety net for work another process planned;
- ``heartbeat``: every 15 s; ``reconcile``: settles deliveries a crash left in ``sending``;
- ``take-over`` (PostgreSQL): a worker that is not the planner tries the lock each minute.

On PostgreSQL several workers share the dispatch; planning is done by the one holding
``pg_try_advisory_lock``. On SQLite one worker runs; a second refuses to start.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, cast

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_STOPPED

from notifiers.registry import NotifierSet
from rituals.planning import Plan
from scheduler.directory import DirectorySource
from scheduler.dispatch import Dispatcher, RetryPolicy
from scheduler.ledger import Ledger
from scheduler.planner import DEFAULT_HORIZON_DAYS, PlanReport, plan_horizon, sync_file
from scheduler.planner.directory import DirectoryPlanner
from scheduler.source import FileSource

__all__ = ["AlreadyRunning", "Worker", "WorkerOptions"]

# The name operators know it by (and filter its lines by), whatever the module's path.
log = logging.getLogger("scheduler.service")

HEARTBEAT_SECONDS = 15
POLL_SECONDS = 30
PLAN_SECONDS = 3600
WATCH_SECONDS = 5
RECONCILE_SECONDS = 60
TAKE_OVER_SECONDS = 60
BUSY_RETRY = timedelta(seconds=2)
LISTEN_TIMEOUT_SECONDS = 1.0


class AlreadyRunning(RuntimeError):
    """Another worker holds the SQLite database."""


class _Scheduler(BackgroundScheduler):  # type: ignore[misc]  # apscheduler has no types
    """APScheduler 3's ``shutdown()`` sets the stopped state before it takes the job-store
    lock; a pass of ``_process_jobs`` under way then cannot remove the date job it just ran
    (``remove_job`` looks only at pending jobs once stopped) and the scheduler's thread dies
    with ``JobLookupError`` (the family of agronholm/apscheduler#104). Stopping anyway: the
    job is gone with the rest of the store, so that error means nothing."""

    def _process_jobs(self) -> float | None:
        try:
            return cast("float | None", super()._process_jobs())
        except JobLookupError:
            if self.state == STATE_STOPPED:
                return None
            raise


class WorkerOptions:
    def __init__(
        self,
        *,
        horizon_days: int = DEFAULT_HORIZON_DAYS,
        senders: int = 32,
        batch_size: int | None = None,
        retry: RetryPolicy | None = None,
        claim_timeout: timedelta = timedelta(minutes=5),
    ) -> None:
        self.horizon_days = horizon_days
        self.senders = senders
        self.batch_size = batch_size
        self.retry = retry or RetryPolicy()
        self.claim_timeout = claim_timeout


class Worker:
    """Plans and dispatches. :meth:`start` returns once the scheduler runs; :meth:`stop`
    stops claiming, lets sends in flight finish and returns.

    `source` is the ritual file; started here unless its owner (the CLI) already did."""

    def __init__(
        self,
        ledger: Ledger,
        source: FileSource | DirectorySource,
        notifiers: NotifierSet,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        options: WorkerOptions | None = None,
    ) -> None:
        self.ledger = ledger
        self.source = source
        self.clock = clock
        self.options = options or WorkerOptions()
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.dispatcher = Dispatcher(
            ledger,
            notifiers,
            self.worker_id,
            clock=clock,
            senders=self.options.senders,
            batch_size=self.options.batch_size,
            retry=self.options.retry,
            claim_timeout=self.options.claim_timeout,
        )
        self.notifiers = notifiers
        self._scheduler = _Scheduler(timezone=UTC)
        self._plan_lock = threading.Lock()
        self._lock_file: IO[str] | None = None
        self._planner_lock = ledger.planner_lock()
        self.leader = False
        self._listener: threading.Thread | None = None
        self._arm_lock = threading.Lock()
        self._armed_at: datetime | None = None
        self._wakes = 0
        self._began = False  # past the schema check: there is a stop to record
        self._noted: list[str] | None = None  # the problems the ledger has from this worker
        self._directory: DirectoryPlanner | None = None
        if isinstance(source, DirectorySource):
            self._directory = DirectoryPlanner(ledger, source, days=self.options.horizon_days)

    # ------------------------------------------------------------------ start and stop

    def start(self) -> None:
        """Check the schema, take the locks, plan, settle crashes, then run the jobs."""
        if self.ledger.is_sqlite:
            self._lock_sqlite()  # before migrating: a second worker must not touch the schema
        self.ledger.ensure_schema()
        self._began = True
        if not self.source.started:
            self.source.start()
        if self.source.synced_at is not None and self.source.problems:
            log.error(
                "the ritual file has errors; running on the last good one, synced %s:\n%s",
                f"{self.source.synced_at:%Y-%m-%d %H:%M} UTC",
                "\n".join(self.source.problems),
            )
        self._is_leader()
        self._beat()
        self.plan()
        if isinstance(self.source, DirectorySource):
            # An edit is planned as soon as it is heard of, not at the next 5 s look.
            self.source.watch(self.watch)
        # On SQLite this is the only worker: anything in `sending` was interrupted.
        self.dispatcher.reconcile(everything=self.ledger.is_sqlite)
        self._add_jobs()
        self._scheduler.start()
        if self.ledger.is_postgres:
            self._listener = threading.Thread(target=self._listen, name="tend-listen", daemon=True)
            self._listener.start()
        log.info("worker %s started (leader: %s)", self.worker_id, self.leader)

    def _add_jobs(self) -> None:
        now = self.clock()
        s = self._scheduler
        s.add_job(self.plan, "interval", seconds=PLAN_SECONDS, id="plan", coalesce=True)
        s.add_job(self.watch, "interval", seconds=WATCH_SECONDS, id="watch", coalesce=True)
        if self.ledger.is_postgres:
            # A worker that is not the planner checks each minute whether the planner is gone.
            s.add_job(self.take_over, "interval", seconds=TAKE_OVER_SECONDS, id="take-over")
        s.add_job(self.dispatch, "interval", seconds=POLL_SECONDS, id="poll", coalesce=True)
        s.add_job(self._beat, "interval", seconds=HEARTBEAT_SECONDS, id="heartbeat")
        # Often enough that an interrupted claim waits about its timeout, not much longer.
        every = max(1.0, min(RECONCILE_SECONDS, self.options.claim_timeout.total_seconds() / 2))
        s.add_job(self.reconcile, "interval", seconds=every, id="reconcile")
        s.add_job(self.dispatch, "date", run_date=now, id="wake-0", misfire_grace_time=None)

    def stop(self) -> None:
        """Stop claiming; wait for sends in flight; record the stop. Idempotent; for a worker
        that never got past the schema check (or was never started), only closes."""
        self.dispatcher.stop()
        if isinstance(self.source, DirectorySource):
            self.source.stop_watching()
        # APScheduler 3's shutdown(wait=True) holds its job-store lock while it waits for
        # running jobs; a job adding a wake-up then would wait for that lock forever. Once
        # this lock is taken, an `_arm` under way has added its job and later ones see
        # `stopping`.
        with self._arm_lock:
            pass
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)
        self.dispatcher.close()
        self.notifiers.close()
        if self._listener is not None:
            self._listener.join(timeout=LISTEN_TIMEOUT_SECONDS * 2)
            self._listener = None
        if self._began:
            try:
                self.ledger.workers.stopped(self.worker_id, self.clock())
            except Exception:  # the database may be what went away
                log.exception("could not record the worker's stop")
        self._release_leadership()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None
        if self._began:
            log.info("worker %s stopped", self.worker_id)

    # ------------------------------------------------------------------ jobs

    def plan(self) -> None:
        """Sync the file and plan the horizon, if this process is the planner."""
        with self._plan_lock:
            if not self._is_leader():
                return
            report = self._plan_directory() if self._directory is not None else self._plan_file()
            self._note_problems()
            if report is None:
                return
            log.info(
                "planned %d occurrences, %d deliveries (generation %d%s)",
                report.occurrences,
                report.deliveries,
                report.generation,
                f", {report.cancelled} cancelled" if report.cancelled else "",
            )
            if self.ledger.is_postgres and report.deliveries:
                # Wake the other workers: their next wake-up may be later than this work.
                self.ledger.workers.announce(self.worker_id)
        self._arm()

    def _plan_file(self) -> PlanReport | None:
        assert isinstance(self.source, FileSource)
        file = self.source.file
        if file is None:
            return None
        now = self.clock()
        synced = sync_file(self.ledger, file, now, text=self.source.text)
        return plan_horizon(
            self.ledger,
            Plan(file),
            now,
            generation=synced.generation,
            changed=synced.changed,
            days=self.options.horizon_days,
        )

    def _plan_directory(self) -> PlanReport | None:
        """A ritual directory: only what changed, and the households whose day did."""
        assert self._directory is not None
        return self._directory.plan(self.clock())

    def watch(self) -> None:
        """Re-plan when the ritual file's content changed; keep the old one if it is broken.
        A ritual directory's plan looks at its files itself, and plans only what moved."""
        if isinstance(self.source, DirectorySource):
            self.plan()
        elif self.source.refresh():
            if self.leader:
                log.info("ritual file changed; planning again")
            self.plan()
        elif self.leader:
            with self._plan_lock:
                self._note_problems()  # broken, or mended back to the version in force

    def _note_problems(self) -> None:
        """Keep the files' problems in the ledger for ``tend status`` when they changed (and
        at the first plan: whatever an earlier worker noted may be mended by now)."""
        lines = list(self.source.problems or [])
        if isinstance(self.source, DirectorySource):
            for _path, problems in sorted(self.source.broken().items()):
                lines += problems
        if lines != self._noted:
            self.ledger.synced.note_problems(lines)
            self._noted = lines

    def take_over(self) -> None:
        if not self.leader:
            self.plan()

    def reconcile(self) -> None:
        """Settle interrupted claims; what returns to pending is due now."""
        if self.dispatcher.reconcile():
            self._arm()

    def dispatch(self) -> None:
        with self._arm_lock:
            self._armed_at = None  # this run covers whatever the armed wake-up was for
        claimed = 0
        try:
            claimed = self.dispatcher.run_until_idle()
        finally:
            # Nothing claimed although something is due: another worker holds it (locked,
            # skipped). Look again in a moment rather than at once, in a loop.
            self._arm(busy=claimed == 0)

    def _listen(self) -> None:
        """PostgreSQL: re-arm when the planner (in any process) announces new work."""
        self.ledger.listen(self.dispatcher.stopping_event, self._arm, LISTEN_TIMEOUT_SECONDS)

    def _arm(self, *, busy: bool = False) -> None:
        """Schedule a one-shot wake-up at the next due delivery, unless one comes sooner.

        Each wake-up is a new job rather than one job replaced: APScheduler removes a
        finished date job after handing it to a thread, and could remove a replacement
        that job had just added, losing the wake-up.
        """
        if self.dispatcher.stopping or not self._scheduler.running:
            return
        due = self.dispatcher.next_due()
        if due is None:
            return
        run_date = max(due, self.clock())
        if busy:
            # APScheduler runs on the real clock, whatever clock the worker was given.
            run_date = max(run_date, datetime.now(UTC) + BUSY_RETRY)
        with self._arm_lock:
            if self.dispatcher.stopping:
                return  # stop() is shutting the scheduler down: adding a job would deadlock
            if self._armed_at is not None and self._armed_at <= run_date:
                return  # already armed for this, or sooner
            self._armed_at = run_date
            self._wakes += 1
            self._scheduler.add_job(
                self.dispatch,
                "date",
                run_date=run_date,
                id=f"wake-{self._wakes}",
                misfire_grace_time=None,
            )

    def _beat(self) -> None:
        now = self.clock()
        values: dict[str, Any] = {
            "worker_id": self.worker_id,
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "started_at": now,
            "beat_at": now,
            "leader": self.leader,
        }
        self.ledger.workers.beat(values, now, self.leader)

    # ------------------------------------------------------------------ helpers

    def _is_leader(self) -> bool:
        if not self.ledger.is_postgres:
            self.leader = True
            return True
        held, taken = self._planner_lock.hold()
        self.leader = held
        if taken:
            log.info("this worker is the planner (holds the advisory lock)")
        return held

    def _release_leadership(self) -> None:
        self.leader = False
        self._planner_lock.release()

    def _lock_sqlite(self) -> None:
        database = self.ledger.sqlite_path or Path("tend.db")
        path = Path(f"{database}.worker-lock")
        handle = path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise AlreadyRunning(
                f"another Tend worker ({holder}) is already running on {database}. "
                "SQLite allows one worker; stop it first, or use PostgreSQL "
                "(DATABASE_URL) to run several."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        self._lock_file = handle
