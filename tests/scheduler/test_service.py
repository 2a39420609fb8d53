"""The worker object in-process: who plans, and what a changed ritual file does."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fake_notifiers import FakeClock, FakeSms
from january_couple import SOLO, at, plan
from sqlalchemy import Engine, func, select, text

from notifiers.base import Message, Notifier, SendResult
from notifiers.registry import NotifierSet
from scheduler.dispatch.dispatcher import Claim
from scheduler.ledger import Ledger
from scheduler.ledger.rows import (
    ConfigStateRow,
    DeliveryRow,
    OccurrenceRow,
    WorkerHeartbeatRow,
)
from scheduler.source import FileSource
from scheduler.worker.worker import AlreadyRunning, Worker

FILE = """\
timezone = "Europe/Berlin"

[[households]]
id = "home"
partners = [{{ id = "alex", name = "Alex", channels = ["console"] }}]

[[rituals]]
id = "walk"
kind = "custom"
schedule = "daily at {at}"
message = "Walk, {{{{ partner }}}}?"
"""


class Quiet(Notifier):
    channel = "console"

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.lock = threading.Lock()

    def _send(self, message: Message) -> SendResult:
        with self.lock:
            self.sent.append(message.key)
        return SendResult(provider_id="q")


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "tend.toml"
    path.write_text(FILE.format(at="03:00"))
    return path


@pytest.fixture
def make_worker(config: Path) -> Iterator[object]:
    made: list[Worker] = []

    def make(engine: Engine) -> Worker:
        ledger = Ledger(engine)
        worker = Worker(
            ledger,
            FileSource(config, ledger=ledger),
            NotifierSet(overrides={"console": Quiet()}),
            clock=lambda: datetime.now(UTC),
        )
        made.append(worker)
        return worker

    yield make
    for worker in made:
        worker.stop()


def test_one_worker_of_two_on_postgres_plans_and_another_takes_over_when_it_stops(
    pg_engine: Engine, make_worker: object
) -> None:
    first, second = make_worker(pg_engine), make_worker(pg_engine)  # type: ignore[operator]
    first.start()
    second.start()
    assert (first.leader, second.leader) == (True, False)
    with pg_engine.connect() as connection:
        leaders = connection.execute(
            select(WorkerHeartbeatRow.worker_id).where(WorkerHeartbeatRow.leader.is_(True))
        ).scalars()
        assert list(leaders) == [first.worker_id]

    second.take_over()
    assert not second.leader  # the planner is alive: nothing changes

    first.stop()
    second.take_over()
    assert second.leader


def test_a_second_worker_object_on_one_sqlite_file_refuses(
    sqlite_engine: Engine, make_worker: object
) -> None:
    make_worker(sqlite_engine).start()  # type: ignore[operator]
    with pytest.raises(AlreadyRunning, match="use PostgreSQL"):
        make_worker(sqlite_engine).start()  # type: ignore[operator]


def test_an_edited_ritual_file_is_planned_again_and_a_broken_edit_keeps_the_last_good_one(
    sqlite_engine: Engine, make_worker: object, config: Path, caplog: pytest.LogCaptureFixture
) -> None:
    worker = make_worker(sqlite_engine)  # type: ignore[operator]
    worker.start()

    def generation() -> int:
        with sqlite_engine.connect() as connection:
            return int(connection.execute(select(ConfigStateRow.generation)).scalar_one())

    def pending_hours() -> set[int]:
        with sqlite_engine.connect() as connection:
            slots = connection.execute(
                select(OccurrenceRow.slot)
                .join(DeliveryRow, DeliveryRow.occurrence_id == OccurrenceRow.id)
                .where(DeliveryRow.status == "pending")
            ).scalars()
            return {slot.hour for slot in slots}

    assert generation() == 1
    assert pending_hours() == {3}

    config.write_text(config.read_text() + "\n# only a comment\n")
    worker.watch()
    assert generation() == 1  # comments are not a change

    config.write_text(FILE.format(at="04:00"))
    worker.watch()
    assert generation() == 2
    assert pending_hours() == {4}

    config.write_text(FILE.format(at="25:00"))
    with caplog.at_level(logging.ERROR):
        worker.watch()
    assert "still running on the last good one" in caplog.text
    assert generation() == 2
    assert pending_hours() == {4}
    with sqlite_engine.connect() as connection:
        cancelled = connection.execute(
            select(func.count()).where(DeliveryRow.status == "cancelled")
        ).scalar_one()
    assert cancelled > 0


def wake_times(worker: Worker) -> list[datetime]:
    return sorted(
        job.next_run_time
        for job in worker._scheduler.get_jobs()
        if job.id.startswith("wake-") and job.next_run_time is not None
    )


def test_the_worker_arms_a_wake_up_at_the_next_due_delivery_and_earlier_when_planning_adds_work(
    sqlite_engine: Engine, make_worker: object, config: Path
) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    # Today or tomorrow, whichever comes first; UTC so the arithmetic is plain.
    later, sooner = now + timedelta(hours=3), now + timedelta(hours=1)
    config.write_text(FILE.replace("Europe/Berlin", "UTC").format(at=f"{later:%H:%M}"))
    worker = make_worker(sqlite_engine)  # type: ignore[operator]
    worker.start()
    worker.dispatch()  # what the first wake-up does: nothing is due yet, so it re-arms
    assert later in wake_times(worker)

    config.write_text(
        config.read_text()
        + '\n[[rituals]]\nid = "tea"\nkind = "custom"\n'
        + f'schedule = "daily at {sooner:%H:%M}"\nmessage = "Tea?"\n'
    )
    worker.watch()
    assert wake_times(worker)[0] == sooner


def test_a_worker_on_postgresql_does_not_spin_while_a_due_delivery_is_locked_elsewhere(
    pg_engine: Engine, tmp_path: Path
) -> None:
    """A due row another transaction holds (the planner's upsert of a big chunk, its
    cancellations, another worker's claim) is skipped by the claim; `_arm` used to re-arm
    the wake-up at once, the row being still the earliest pending: a hot loop of
    mark_missed + claim + next_due against the database until the lock went."""
    clock = FakeClock(at(12, 1))
    plan(pg_engine, SOLO, at(9))
    config = tmp_path / "tend.toml"
    config.write_text(SOLO)
    ledger = Ledger(pg_engine)
    worker = Worker(
        ledger,
        FileSource(config, ledger=ledger),
        NotifierSet(overrides={"sms": FakeSms(clock)}),
        clock=clock,
    )
    claims = 0
    claim = worker.dispatcher.claim

    def counting(now: datetime, limit: int) -> list[Claim]:
        nonlocal claims
        claims += 1
        return claim(now, limit)

    worker.dispatcher.claim = counting  # type: ignore[method-assign]
    holder = pg_engine.connect()
    try:
        holder.execute(
            text("SELECT id FROM delivery WHERE due_at = :due FOR UPDATE"),
            {"due": at(12).replace(tzinfo=None)},
        )
        worker._scheduler.start()
        worker.dispatch()
        time.sleep(1.0)  # real time only to count the loop's turns; no schedule is awaited
        turns = claims
    finally:
        worker.dispatcher.stop()
        worker._scheduler.shutdown(wait=True)
        worker.dispatcher.close()
        holder.rollback()
        holder.close()
    assert turns <= 5, f"{turns} claims in one second while one row was locked"


def test_a_broken_ritual_file_is_logged_once_and_its_repair_too(
    sqlite_engine: Engine, make_worker: object, config: Path, caplog: pytest.LogCaptureFixture
) -> None:
    worker = make_worker(sqlite_engine)  # type: ignore[operator]
    worker.start()
    good = config.read_text()
    config.write_text(FILE.format(at="25:00"))
    with caplog.at_level(logging.INFO, logger="scheduler.service"):
        for _ in range(3):
            worker.watch()  # every 5 s in the worker
        config.write_text(good)
        worker.watch()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("still running on the last good one" in m for m in messages) == 1
    assert sum("the ritual file is good again" in m for m in messages) == 1


def test_a_broken_ritual_file_is_kept_in_the_ledger_for_tend_status_until_it_is_mended(
    engine: Engine, make_worker: object, config: Path
) -> None:
    ledger = Ledger(engine)
    worker = make_worker(engine)  # type: ignore[operator]
    worker.start()
    assert ledger.synced.problems() == []
    good = config.read_text()
    config.write_text(FILE.format(at="25:00"))
    worker.watch()
    [problem] = ledger.synced.problems()
    assert problem.startswith(f"{config}:") and "25:00" in problem, problem
    worker.watch()  # the same problems: nothing written again
    assert ledger.synced.problems() == [problem]
    config.write_text(good)
    worker.watch()
    assert ledger.synced.problems() == []


def test_stopping_while_a_job_is_arming_a_wake_up_does_not_deadlock(
    sqlite_engine: Engine, make_worker: object
) -> None:
    """APScheduler 3's shutdown holds its job-store lock while it waits for running jobs; a
    job that adds a wake-up at that moment used to wait for the lock forever."""
    worker = make_worker(sqlite_engine)  # type: ignore[operator]
    worker.start()
    inside, release = threading.Event(), threading.Event()
    real_next_due = worker.dispatcher.next_due

    def slow_next_due() -> datetime | None:
        inside.set()
        release.wait(10)
        return real_next_due() or datetime.now(UTC) + timedelta(hours=1)

    worker.dispatcher.next_due = slow_next_due
    worker._scheduler.add_job(worker.dispatch, "date", run_date=datetime.now(UTC))
    assert inside.wait(10)  # the job is in `_arm`, between its check and add_job
    stopping = threading.Thread(target=worker.stop)
    stopping.start()
    time.sleep(0.3)  # let shutdown take its lock: real time, no schedule is awaited
    release.set()
    stopping.join(10)
    assert not stopping.is_alive(), "stop() deadlocked"


def test_a_stop_racing_a_finished_wake_up_does_not_kill_the_scheduler_thread() -> None:
    # APScheduler 3 marks itself stopped before taking its job-store lock in shutdown(); a
    # pass of _process_jobs under way then fails to remove the date job it just ran, and the
    # exception ends the scheduler's thread. Here the pass runs (on this thread, the
    # scheduler's own not started) while the state already says stopped, as in that race.
    import threading

    from apscheduler.jobstores.base import JobLookupError
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.schedulers.base import STATE_STOPPED, BaseScheduler

    from scheduler.worker.worker import _Scheduler

    ran: list[str] = []
    for cls in (BackgroundScheduler, _Scheduler):
        scheduler = cls(timezone=UTC)
        scheduler._event = threading.Event()
        BaseScheduler.start(scheduler)  # stores and executors, no thread of its own
        scheduler.add_job(
            ran.append, "date", run_date=datetime.now(UTC), args=[cls.__name__], id="wake-0"
        )
        scheduler.state = STATE_STOPPED
        try:
            if cls is BackgroundScheduler:
                with pytest.raises(JobLookupError):  # the library alone
                    scheduler._process_jobs()
            else:
                assert scheduler._process_jobs() is None
        finally:
            for executor in scheduler._executors.values():
                executor.shutdown(wait=True)
    assert ran == ["BackgroundScheduler", "_Scheduler"]  # the job itself ran both times
