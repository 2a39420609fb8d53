"""Worker processes for real: subprocesses on one database, killed, restarted and stopped.

Deliveries are made due a few minutes in the past (inside grace), so workers send at once:
no test waits for a schedule; they wait for work to finish, with a deadline.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ledger_setup import reset_postgres
from sqlalchemy import Engine, func, inspect, select, text
from tend_recording import read_record
from tend_workers import Workers, households_file, wait_for

from scheduler.ledger.engine import make_engine
from scheduler.ledger.rows import DeliveryRow, WorkerHeartbeatRow


def due_keys(engine: Engine, before: datetime) -> set[str]:
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT d.household_id, o.ritual_id, o.slot, d.partner_key, d.role, d.channel "
                "FROM delivery d JOIN occurrence o ON o.id = d.occurrence_id "
                "WHERE d.due_at <= :before"
            ),
            {"before": before.replace(tzinfo=None)},
        ).all()
    keys = set()
    for household, ritual, slot, partner, role, channel in rows:
        slot = slot if isinstance(slot, datetime) else datetime.fromisoformat(slot)
        keys.add(f"{household}/{ritual}/{slot:%Y-%m-%dT%H:%M}/{partner}/{role}/{channel}")
    return keys


def counts(engine: Engine) -> dict[str, int]:
    """Deliveries by status; empty until the worker has created the tables."""
    if not inspect(engine).has_table("delivery"):
        return {}
    with engine.connect() as connection:
        return dict(
            connection.execute(
                select(DeliveryRow.status, func.count()).group_by(DeliveryRow.status)
            )
            .tuples()
            .all()
        )


def sent_count(engine: Engine) -> int:
    return counts(engine).get("sent", 0)


def assert_each_sent_once(
    workers: Workers, engine: Engine, started: datetime, expected: int
) -> None:
    record = read_record(workers.record)
    sends = Counter(str(r["key"]) for r in record)
    duplicated = {k: n for k, n in sends.items() if n > 1}
    assert not duplicated, f"sent more than once: {list(duplicated.items())[:5]}"
    due = due_keys(engine, started)
    assert len(due) == expected
    assert set(sends) == due, f"lost: {sorted(due - set(sends))[:5]}"
    assert counts(engine).get("sending", 0) == 0


# ---------------------------------------------------------------------- PostgreSQL


@pytest.fixture
def pg_url(postgres_url: str) -> Iterator[str]:
    engine = make_engine(postgres_url)
    reset_postgres(engine)
    engine.dispose()
    subprocess.run(
        [sys.executable, "-m", "tend", "db", "upgrade"],
        env={**os.environ, "DATABASE_URL": postgres_url},
        check=True,
        capture_output=True,
    )
    yield postgres_url


def test_three_workers_on_postgres_send_2000_due_deliveries_exactly_once(
    tmp_path: Path, pg_url: str, workers_factory: Callable[..., Workers]
) -> None:
    started = datetime.now(UTC)
    config = households_file(tmp_path / "tend.toml", 2000, started - timedelta(minutes=5))
    workers = workers_factory(pg_url, config, TEND_TEST_SEND_DELAY="0.002")
    for _ in range(3):
        workers.start()
    engine = make_engine(pg_url)
    try:
        wait_for(lambda: sent_count(engine) >= 2000, 90, "2000 sends", workers.logs)
        assert workers.stop_all() == [0, 0, 0], workers.logs()
        assert_each_sent_once(workers, engine, started, 2000)
        senders = Counter(r["pid"] for r in read_record(workers.record))
        assert len(senders) >= 2, f"only one worker sent: {senders}"
        with engine.connect() as connection:
            leaders = connection.execute(
                select(func.count()).where(WorkerHeartbeatRow.leader.is_(True))
            ).scalar_one()
        assert leaders == 0  # each stopped worker gave up the planner role
    finally:
        engine.dispose()


def test_a_worker_killed_mid_batch_on_postgres_loses_and_repeats_nothing(
    tmp_path: Path, pg_url: str, workers_factory: Callable[..., Workers]
) -> None:
    started = datetime.now(UTC)
    config = households_file(tmp_path / "tend.toml", 1000, started - timedelta(minutes=5))
    workers = workers_factory(
        pg_url, config, TEND_TEST_SEND_DELAY="0.01", TEND_CLAIM_TIMEOUT_SECONDS="2"
    )
    victim = workers.start()
    engine = make_engine(pg_url)
    try:
        wait_for(lambda: len(read_record(workers.record)) >= 150, 60, "sends", workers.logs)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        interrupted = counts(engine).get("sending", 0)
        assert interrupted > 0, "the kill should land while sends are in flight"
        workers.start(TEND_TEST_SEND_DELAY="0")
        wait_for(lambda: sent_count(engine) >= 1000, 60, "1000 sends", workers.logs)
        assert workers.stop_all()[1:] == [0], workers.logs()
        assert_each_sent_once(workers, engine, started, 1000)
    finally:
        engine.dispose()


def test_a_worker_refuses_a_postgres_database_a_newer_tend_migrated(
    tmp_path: Path, pg_url: str, workers_factory: Callable[..., Workers]
) -> None:
    """One with no tables yet, or behind, is waited for (tests/tend/test_procfile.py); no
    upgrade of this Tend brings this one to its revision, so waiting would be for ever."""
    engine = make_engine(pg_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'ffff'"))
    engine.dispose()
    config = households_file(tmp_path / "tend.toml", 1, datetime.now(UTC))
    workers = workers_factory(pg_url, config)
    process = workers.start()
    assert process.wait(timeout=30) == 2
    assert "revision ffff, which this Tend does not know" in workers.logs()


# ---------------------------------------------------------------------- SQLite


def test_a_worker_killed_mid_batch_on_sqlite_loses_and_repeats_nothing(
    tmp_path: Path, workers_factory: Callable[..., Workers]
) -> None:
    url = f"sqlite:///{tmp_path}/tend.db"
    started = datetime.now(UTC)
    config = households_file(tmp_path / "tend.toml", 2000, started - timedelta(minutes=5))
    workers = workers_factory(url, config, TEND_TEST_SEND_DELAY="0.005")
    engine = make_engine(url)
    try:
        # The kill must land mid-batch (claims in `sending`); between two batches it lands
        # on nothing to recover, so try again, a few times at the most.
        for attempt in range(1, 6):
            killed = workers.start()
            wait_for(
                lambda n=attempt: len(read_record(workers.record)) >= 200 * n,
                60,
                "sends",
                workers.logs,
            )
            killed.send_signal(signal.SIGKILL)
            killed.wait()
            before = counts(engine)
            if before.get("sending", 0) > 0:
                break
        else:
            pytest.fail(f"five kills, none mid-batch: {before}")
        workers.start(TEND_TEST_SEND_DELAY="0")
        wait_for(lambda: sent_count(engine) >= 2000, 60, "2000 sends", workers.logs)
        assert workers.stop_all()[-1] == 0, workers.logs()
        assert_each_sent_once(workers, engine, started, 2000)
    finally:
        engine.dispose()


def test_a_second_sqlite_worker_refuses_to_start(
    tmp_path: Path, workers_factory: Callable[..., Workers]
) -> None:
    url = f"sqlite:///{tmp_path}/tend.db"
    config = households_file(tmp_path / "tend.toml", 1, datetime.now(UTC) + timedelta(hours=1))
    workers = workers_factory(url, config)
    workers.start()
    engine = make_engine(url)
    try:
        wait_for(
            lambda: (tmp_path / "tend.db").exists() and _heartbeats(engine) > 0,
            30,
            "the first worker's heartbeat",
            workers.logs,
        )
    finally:
        engine.dispose()
    second = workers.start()
    assert second.wait(timeout=30) == 2
    assert "already running" in workers.logs()
    assert "use PostgreSQL" in workers.logs()
    assert workers.processes[0].poll() is None  # the first keeps running
    assert workers.stop_all()[0] == 0


def threads_of(pid: int) -> str:
    """Where each thread of a stuck process is, by py-spy (a dev dependency), for the report."""
    spy = Path(sys.executable).parent / "py-spy"
    if not spy.exists():
        return "(py-spy is not installed: no thread dump)\n"
    dump = subprocess.run(
        [str(spy), "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=30
    )
    return dump.stdout + dump.stderr + "\n"


def _heartbeats(engine: Engine) -> int:
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(select(func.count(WorkerHeartbeatRow.worker_id))).scalar_one()
            )
    except Exception:
        return 0  # not migrated yet


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_finishes_sends_in_flight_and_exits_0_within_10_s(
    tmp_path: Path, workers_factory: Callable[..., Workers], signum: int
) -> None:
    url = f"sqlite:///{tmp_path}/tend.db"
    started = datetime.now(UTC)
    config = households_file(tmp_path / "tend.toml", 40, started - timedelta(minutes=5))
    # A slow provider: each send takes a second, eight at a time.
    started_mark = tmp_path / "a-send-started"
    workers = workers_factory(
        url, config, TEND_TEST_SEND_DELAY="1", TEND_TEST_STARTED=str(started_mark)
    )
    process = workers.start()
    engine = make_engine(url)
    try:
        wait_for(started_mark.exists, 30, "a send in flight", workers.logs)
        stop_at = time.monotonic()
        process.send_signal(signum)
        try:
            code = process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            raise AssertionError(threads_of(process.pid) + workers.logs()) from None
        took = time.monotonic() - stop_at
        assert code == 0, workers.logs()
        assert took < 10
        after = counts(engine)
        assert after.get("sending", 0) == 0, after  # every send in flight was recorded
        assert after.get("sent", 0) == len(read_record(workers.record)) > 0
        assert after.get("pending", 0) > 0  # and no new claims were made after the signal
    finally:
        engine.dispose()


@pytest.mark.skipif(sys.platform != "linux", reason="tgkill is Linux's")
def test_a_stop_signal_handed_to_another_thread_still_stops_the_worker(
    tmp_path: Path, workers_factory: Callable[..., Workers]
) -> None:
    # The kernel may give a process's SIGTERM to any of its threads. The main thread must
    # still notice it: an untimed wait there never did (seen in CI: a worker that ignored
    # SIGTERM for 15 s). Here it is handed to a sender thread on purpose, with tgkill.
    import ctypes

    url = f"sqlite:///{tmp_path}/tend.db"
    config = households_file(tmp_path / "tend.toml", 4, datetime.now(UTC) + timedelta(hours=1))
    workers = workers_factory(url, config)
    process = workers.start()
    engine = make_engine(url)
    try:
        wait_for(
            lambda: (tmp_path / "tend.db").exists() and _heartbeats(engine) > 0,
            30,
            "the worker's heartbeat",
            workers.logs,
        )
    finally:
        engine.dispose()
    wait_for(lambda: "running on" in workers.logs(), 30, "the worker's start", workers.logs)
    threads = sorted(int(t.name) for t in Path(f"/proc/{process.pid}/task").iterdir())
    others = [t for t in threads if t != process.pid]
    assert others, threads
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.tgkill(process.pid, others[-1], signal.SIGTERM) == 0, ctypes.get_errno()
    assert process.wait(timeout=15) == 0, workers.logs()
    assert "SIGTERM: stopping" in workers.logs()
