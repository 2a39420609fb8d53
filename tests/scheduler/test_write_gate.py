"""SQLite's transactions queue at one gate per file within a process (``WriteGate``): the next
begins as soon as the last one ends, a thread inside ``Ledger.ahead()`` goes before the
threads waiting outside it, and whatever ends a transaction (commit, rollback, a closed
connection, a BEGIN that failed) lets the gate go.

Real threads on a real SQLite file; nothing sleeps through time: each test waits for a
thread to be seen waiting at the gate.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from scheduler.ledger import Busy, Ledger
from scheduler.ledger.engine import WriteGate, is_ahead, make_engine

WAIT = 10.0  # seconds a test waits for a thread to get somewhere, at most


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "tend.db"


@pytest.fixture
def engine(database: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{database}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE turn (who TEXT)"))
    yield engine
    engine.dispose()


def gate_of(database: Path) -> WriteGate:
    return WriteGate.of(str(database))


def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {WAIT} s: {what}")
        time.sleep(0.001)


def turns(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(connection.execute(text("SELECT who FROM turn ORDER BY rowid")).scalars())


def write_turn(engine: Engine, who: str, *, ahead: bool = False) -> threading.Thread:
    """A thread that writes one row in a transaction of its own, from inside
    ``Ledger.ahead()`` when `ahead`."""

    def run() -> None:
        ledger = Ledger(engine)
        if ahead:
            with ledger.ahead():
                assert is_ahead()
                _insert(engine, who)
        else:
            _insert(engine, who)

    thread = threading.Thread(target=run, name=f"turn-{who}")
    thread.start()
    return thread


def _insert(engine: Engine, who: str) -> None:
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO turn (who) VALUES (:who)"), {"who": who})


def test_a_thread_ahead_begins_before_threads_that_were_waiting_longer(
    engine: Engine, database: Path
) -> None:
    gate = gate_of(database)
    held = engine.connect()
    held.execute(text("INSERT INTO turn (who) VALUES ('holder')"))  # holds the gate
    waiting = [write_turn(engine, "dispatcher-1"), write_turn(engine, "dispatcher-2")]
    until(lambda: gate.waiting == 2, "two threads waiting at the gate")
    waiting.append(write_turn(engine, "edit", ahead=True))
    until(lambda: gate.waiting == 3, "the edit waiting too")
    held.commit()
    held.close()
    for thread in waiting:
        thread.join(WAIT)
    assert turns(engine)[:2] == ["holder", "edit"]
    assert sorted(turns(engine)[2:]) == ["dispatcher-1", "dispatcher-2"]


def test_without_ahead_the_next_transaction_begins_as_soon_as_the_last_one_ends(
    engine: Engine, database: Path
) -> None:
    gate = gate_of(database)
    held = engine.connect()
    held.execute(text("INSERT INTO turn (who) VALUES ('holder')"))
    thread = write_turn(engine, "next")
    until(lambda: gate.waiting == 1, "the next thread waiting")
    started = time.monotonic()
    held.commit()
    held.close()
    thread.join(WAIT)
    # Woken by the commit, not by SQLite's busy handler looking again later.
    assert time.monotonic() - started < 1.0
    assert turns(engine) == ["holder", "next"]


def test_every_engine_of_the_process_on_one_file_shares_its_gate(
    database: Path, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(database.parent)
    other = make_engine("sqlite:///tend.db")  # the same file, by a relative path
    try:
        held = engine.connect()
        held.execute(text("INSERT INTO turn (who) VALUES ('first engine')"))
        thread = write_turn(other, "second engine")
        until(lambda: gate_of(database).waiting == 1, "the other engine's thread waiting")
        held.rollback()
        held.close()
        thread.join(WAIT)
        assert turns(engine) == ["second engine"]
    finally:
        other.dispose()
    assert WriteGate.of("tend.db") is gate_of(database)


@pytest.mark.parametrize("end", ["commit", "rollback", "close", "invalidate"])
def test_whatever_ends_a_transaction_lets_the_gate_go(
    engine: Engine, database: Path, end: str
) -> None:
    connection = engine.connect()
    connection.execute(text("INSERT INTO turn (who) VALUES ('first')"))
    getattr(connection, end)()
    thread = write_turn(engine, "next")
    thread.join(WAIT)
    assert not thread.is_alive()
    assert gate_of(database).waiting == 0
    connection.close()
    assert turns(engine) == (["first", "next"] if end == "commit" else ["next"])


def test_a_second_transaction_of_the_thread_holding_the_gate_gets_sqlites_busy_error(
    engine: Engine, database: Path
) -> None:
    """Not a wait for itself forever: SQLite's busy timeout answers it, as it did before the
    gate, and the first transaction is untouched."""
    first = engine.connect()
    first.execute(text("INSERT INTO turn (who) VALUES ('first')"))
    second = engine.connect()
    second.connection.dbapi_connection.execute("PRAGMA busy_timeout=50")  # type: ignore[union-attr]
    with pytest.raises(Busy, match="database is locked"):
        second.execute(text("SELECT 1"))
    second.close()
    first.commit()
    first.close()
    thread = write_turn(engine, "next")  # the gate is free again
    thread.join(WAIT)
    assert turns(engine) == ["first", "next"]


def test_a_begin_refused_by_another_process_lock_lets_the_gate_go(
    engine: Engine, database: Path
) -> None:
    """Another process (here a plain sqlite3 connection, which knows no gate) holds the write
    lock: the BEGIN fails after the busy timeout, and the next thread is not kept out."""
    outside = sqlite3.connect(database, isolation_level=None)
    outside.execute("BEGIN IMMEDIATE")
    connection = engine.connect()
    connection.connection.dbapi_connection.execute("PRAGMA busy_timeout=50")  # type: ignore[union-attr]
    with pytest.raises(Busy, match="database is locked"):
        connection.execute(text("SELECT 1"))
    connection.close()
    outside.execute("ROLLBACK")
    outside.close()
    thread = write_turn(engine, "next")
    thread.join(WAIT)
    assert not thread.is_alive()
    assert turns(engine) == ["next"]


def test_a_thread_that_waited_the_busy_timeout_at_the_gate_goes_on_to_sqlites_lock(
    database: Path, engine: Engine
) -> None:
    """A transaction held longer than the busy timeout: the waiting thread stops waiting at
    the gate and meets SQLite's lock, as every thread did before the gate."""
    gate = gate_of(database)
    held = engine.connect()
    held.execute(text("INSERT INTO turn (who) VALUES ('long')"))
    timeout, gate.timeout = gate.timeout, 0.05
    try:
        errors: list[BaseException] = []

        def run() -> None:
            try:
                with engine.connect() as connection:
                    raw = connection.connection.dbapi_connection
                    raw.execute("PRAGMA busy_timeout=50")  # type: ignore[union-attr]
                    connection.execute(text("SELECT 1"))
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=run)
        thread.start()
        thread.join(WAIT)
    finally:
        gate.timeout = timeout
    assert len(errors) == 1 and isinstance(errors[0], Busy)
    held.commit()
    held.close()
    assert turns(engine) == ["long"]
