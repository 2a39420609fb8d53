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
import hashlib
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, cast

import psycopg
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_STOPPED
from sqlalchemy import Connection, Engine, func, select, text, update

from config.loader import RitualFileError, load_ritual_file, parse_ritual_file
from config.model import RitualFile
from notifiers.registry import NotifierSet
from rituals.planning import Plan
from scheduler.dispatcher import Dispatcher, RetryPolicy
from scheduler.ledger.engine import dialect_insert, is_postgres, is_sqlite
from scheduler.ledger.rows import WorkerHeartbeatRow
from scheduler.ledger.schema import ensure_schema
from scheduler.planner import (
    DEFAULT_HORIZON_DAYS,
    file_hash,
    last_good_file,
    plan_horizon,
    sync_file,
)

__all__ = ["AlreadyRunning", "Worker", "WorkerOptions"]

log = logging.getLogger(__name__)

# pg_try_advisory_lock key for "the planner": any fixed 64-bit number, Tend's own.
PLANNER_LOCK_KEY = 0x74656E64_706C616E  # b"tendplan"
HEARTBEAT_SECONDS = 15
POLL_SECONDS = 30
PLAN_SECONDS = 3600
WATCH_SECONDS = 5
RECONCILE_SECONDS = 60
TAKE_OVER_SECONDS = 60
BUSY_RETRY = timedelta(seconds=2)
NOTIFY_CHANNEL = "tend_planned"
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
    stops claiming, lets sends in flight finish and returns."""

    def __init__(
        self,
        engine: Engine,
        config_path: Path,
        notifiers: NotifierSet,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        options: WorkerOptions | None = None,
    ) -> None:
        self.engine = engine
        self.config_path = config_path
        self.clock = clock
        self.options = options or WorkerOptions()
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.dispatcher = Dispatcher(
            engine,
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
        self._file: RitualFile | None = None
        self._hash: str | None = None
        self._text: str | None = None
        self._problems: str | None = None  # the broken file's errors, logged once
        self._seen: str | None = None  # the file's bytes' hash at the last look
        self._plan_lock = threading.Lock()
        self._lock_file: IO[str] | None = None
        self._leader_connection: Connection | None = None
        self.leader = False
        self._listener: threading.Thread | None = None
        self._arm_lock = threading.Lock()
        self._armed_at: datetime | None = None
        self._wakes = 0

    # ------------------------------------------------------------------ start and stop

    def start(self) -> None:
        """Check the schema, take the locks, plan, settle crashes, then run the jobs."""
        if is_sqlite(self.engine):
            self._lock_sqlite()  # before migrating: a second worker must not touch the schema
        ensure_schema(self.engine)
        self._seen = self._fingerprint()
        self._file = self._load_file(initial=True)
        self._is_leader()
        self._beat()
        self.plan()
        # On SQLite this is the only worker: anything in `sending` was interrupted.
        self.dispatcher.reconcile(everything=is_sqlite(self.engine))
        now = self.clock()
        s = self._scheduler
        s.add_job(self.plan, "interval", seconds=PLAN_SECONDS, id="plan", coalesce=True)
        s.add_job(self.watch, "interval", seconds=WATCH_SECONDS, id="watch", coalesce=True)
        if is_postgres(self.engine):
            # A worker that is not the planner checks each minute whether the planner is gone.
            s.add_job(self.take_over, "interval", seconds=TAKE_OVER_SECONDS, id="take-over")
        s.add_job(self.dispatch, "interval", seconds=POLL_SECONDS, id="poll", coalesce=True)
        s.add_job(self._beat, "interval", seconds=HEARTBEAT_SECONDS, id="heartbeat")
        # Often enough that an interrupted claim waits about its timeout, not much longer.
        every = max(1.0, min(RECONCILE_SECONDS, self.options.claim_timeout.total_seconds() / 2))
        s.add_job(self.reconcile, "interval", seconds=every, id="reconcile")
        s.add_job(self.dispatch, "date", run_date=now, id="wake-0", misfire_grace_time=None)
        s.start()
        if is_postgres(self.engine):
            self._listener = threading.Thread(target=self._listen, name="tend-listen", daemon=True)
            self._listener.start()
        log.info("worker %s started (leader: %s)", self.worker_id, self.leader)

    def stop(self) -> None:
        """Stop claiming; wait for sends in flight; record the stop. Idempotent."""
        self.dispatcher.stop()
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
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    update(WorkerHeartbeatRow)
                    .where(WorkerHeartbeatRow.worker_id == self.worker_id)
                    .values(stopped_at=self.clock(), leader=False)
                )
        except Exception:  # the database may be what went away
            log.exception("could not record the worker's stop")
        self._release_leadership()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None
        log.info("worker %s stopped", self.worker_id)

    # ------------------------------------------------------------------ jobs

    def plan(self) -> None:
        """Sync the file and plan the horizon, if this process is the planner."""
        with self._plan_lock:
            if self._file is None or not self._is_leader():
                return
            now = self.clock()
            synced = sync_file(self.engine, self._file, now, text=self._text)
            report = plan_horizon(
                self.engine,
                Plan(self._file),
                now,
                generation=synced.generation,
                changed=synced.changed,
                days=self.options.horizon_days,
            )
            log.info(
                "planned %d occurrences, %d deliveries (generation %d%s)",
                report.occurrences,
                report.deliveries,
                report.generation,
                f", {report.cancelled} cancelled" if report.cancelled else "",
            )
            if is_postgres(self.engine) and report.deliveries:
                # Wake the other workers: their next wake-up may be later than this work.
                with self.engine.begin() as connection:
                    connection.execute(select(func.pg_notify(NOTIFY_CHANNEL, self.worker_id)))
        self._arm()

    def watch(self) -> None:
        """Re-plan when the ritual file's content changed; keep the old one if it is broken."""
        seen = self._fingerprint()
        if seen is not None and seen == self._seen:
            return  # the same bytes as at the last look: no need to parse them again
        self._seen = seen
        loaded = self._load_file(initial=False)
        if loaded is not None and file_hash(loaded) != self._hash:
            self._file = loaded
            self._hash = file_hash(loaded)
            if self.leader:
                log.info("ritual file changed; planning again")
            self.plan()

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
        url = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not self.dispatcher.stopping:
            try:
                with psycopg.connect(url, autocommit=True) as connection:
                    connection.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    while not self.dispatcher.stopping:
                        for _ in connection.notifies(timeout=LISTEN_TIMEOUT_SECONDS, stop_after=1):
                            self._arm()
            except psycopg.Error as exc:
                log.warning("listening for new work failed (%s); the 30 s poll covers it", exc)
                self.dispatcher.wait_stopping(5)

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
        with self.engine.begin() as connection:
            insert = dialect_insert(connection, WorkerHeartbeatRow)
            connection.execute(
                insert.values(values).on_conflict_do_update(
                    index_elements=["worker_id"], set_={"beat_at": now, "leader": self.leader}
                )
            )

    # ------------------------------------------------------------------ helpers

    def _fingerprint(self) -> str | None:
        """The file's bytes, hashed: far cheaper than parsing and checking them."""
        try:
            return hashlib.sha256(self.config_path.read_bytes()).hexdigest()
        except OSError:
            return None

    def _load_file(self, *, initial: bool) -> RitualFile | None:
        """The ritual file, or None (logged once per distinct problem) while it is broken.

        At start, a broken file falls back to the last good one the ledger kept, so a routine
        restart during a bad edit does not stop every message.
        """
        try:
            loaded = load_ritual_file(self.config_path, today=self.clock())
        except RitualFileError as exc:
            problems = "\n".join(exc.lines())
            if initial:
                kept = last_good_file(self.engine)
                if kept is None:
                    raise
                text, synced_at = kept
                log.error(
                    "the ritual file has errors; running on the last good one, synced %s:\n%s",
                    f"{synced_at:%Y-%m-%d %H:%M} UTC",
                    problems,
                )
                loaded = parse_ritual_file(  # judged as of its sync, when it was good
                    text, name=f"{self.config_path} (last good)", today=synced_at
                )
                self._problems = problems
            else:
                if problems != self._problems:
                    log.error(
                        "the ritual file has errors; still running on the last good one:\n%s",
                        problems,
                    )
                    self._problems = problems
                return None
        else:
            if self._problems is not None:
                log.info("the ritual file is good again")
                self._problems = None
        if initial:
            self._hash = file_hash(loaded.file)
        self._text = loaded.text
        return loaded.file

    def _is_leader(self) -> bool:
        if not is_postgres(self.engine):
            self.leader = True
            return True
        if self._leader_connection is not None:
            try:
                self._leader_connection.execute(text("SELECT 1"))
                self._leader_connection.commit()
                return True
            except Exception:
                log.warning("lost the planner lock's connection; trying to take it again")
                self._release_leadership()
        connection = self.engine.connect()
        got = connection.execute(select(func.pg_try_advisory_lock(PLANNER_LOCK_KEY))).scalar_one()
        connection.commit()
        if got:
            self._leader_connection = connection
            self.leader = True
            log.info("this worker is the planner (holds the advisory lock)")
        else:
            connection.close()
        return bool(got)

    def _release_leadership(self) -> None:
        connection, self._leader_connection = self._leader_connection, None
        self.leader = False
        if connection is None:
            return
        # Closing would only return the connection to the pool, still holding the
        # session-level lock: unlock, and drop the connection for good.
        try:
            connection.execute(select(func.pg_advisory_unlock(PLANNER_LOCK_KEY)))
            connection.commit()
        except Exception:
            log.warning("could not release the planner lock; dropping its connection")
        finally:
            connection.invalidate()
            connection.close()

    def _lock_sqlite(self) -> None:
        database = self.engine.url.database or "tend.db"
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
