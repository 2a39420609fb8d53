"""Engines for the ledger: SQLite for one couple, PostgreSQL for many.

SQLite gets WAL, a 5 s busy timeout and foreign keys on every connection. Measured while
planning the ledger: a web and a worker process writing one SQLite file without a busy
timeout got about 3,800 "database is locked" errors in 6,000 transactions, with or without
WAL; with WAL and 5 s, none.

Within one process, SQLite's transactions also queue at a :class:`WriteGate`, so that a
thread can be put ahead of the others (:func:`ahead`): a household's edit before the
dispatcher's next batch.
"""

from __future__ import annotations

import os
import sqlite3 as _sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

__all__ = [
    "BUSY_TIMEOUT_MS",
    "WriteGate",
    "ahead",
    "dialect_insert",
    "is_postgres",
    "is_sqlite",
    "make_engine",
    "session_factory",
]

BUSY_TIMEOUT_MS = 5000


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url` with Tend's connection settings."""
    # Statement parameters stay out of exception texts, which reach the logs: they carry
    # partners' phone numbers and addresses.
    kwargs.setdefault("hide_parameters", True)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database in ("", ":memory:"):
            raise ValueError(
                "an in-memory SQLite database cannot be shared by the web and the worker; "
                "use a file, e.g. sqlite:///tend.db"
            )
        # One connection per thread: the dispatcher's senders and the scheduler's jobs each
        # write. `timeout` is the sqlite3 module's own wait; busy_timeout is set below too.
        connect_args: dict[str, Any] = {
            "check_same_thread": False,
            "timeout": BUSY_TIMEOUT_MS / 1000,
            "factory": _GatedConnection,
        }
        connect_args.update(kwargs.pop("connect_args", {}))
        engine = create_engine(url, connect_args=connect_args, **kwargs)
        gate = WriteGate.of(database)
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN and never issues it before a
        # SELECT; emit BEGIN ourselves so a transaction is one (SQLAlchemy's documented recipe).
        event.listen(engine, "begin", lambda connection: _sqlite_begin(connection, gate))
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def _sqlite_pragmas(dbapi_connection: _sqlite3.Connection, _record: object) -> None:
    dbapi_connection.isolation_level = None  # autocommit at the driver; SQLAlchemy BEGINs
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")  # safe with WAL: durable at checkpoints
    finally:
        cursor.close()


def _sqlite_begin(connection: Any, gate: WriteGate) -> None:
    raw = connection.connection.dbapi_connection
    if isinstance(raw, _GatedConnection):
        raw.take(gate)
    try:
        # IMMEDIATE takes the write lock at BEGIN, so two writers wait on busy_timeout
        # instead of one failing at its first write with "database is locked" (a deferred
        # transaction that read first cannot be upgraded while another holds the lock).
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    except BaseException:
        if isinstance(raw, _GatedConnection):
            raw.let_go()
        raise


class WriteGate:
    """Whose transaction on one SQLite file begins next, among this process's threads.

    SQLite has one writer, and every Tend transaction takes the write lock at BEGIN. A
    thread that finds it taken sleeps in SQLite's busy handler and looks again (after 1, 2,
    5, ... up to 100 ms), so a steady run of short transactions from other threads (the
    dispatcher's claims and records) can keep it out for seconds, past the busy timeout.
    Here the threads wait on a condition instead, and the next begins as soon as the last
    one ends. A thread inside :func:`ahead` goes before every thread waiting outside one.

    Other processes on the file (a ``tend web`` beside the worker) still meet at SQLite's
    lock and its busy timeout. A thread that begins a second transaction while it holds one
    is not made to wait for itself: SQLite's busy timeout answers it, as before.
    """

    _gates: ClassVar[dict[str, WriteGate]] = {}
    _gates_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, timeout: float = BUSY_TIMEOUT_MS / 1000) -> None:
        self.timeout = timeout
        self._condition = threading.Condition()
        self._holder: int | None = None
        self._ahead_waiting = 0
        self.waiting = 0  # threads waiting for their turn now

    @classmethod
    def of(cls, database: str) -> WriteGate:
        """The gate of this SQLite file: one for every engine of the process on it."""
        key = os.path.realpath(database)
        with cls._gates_lock:
            gate = cls._gates.get(key)
            if gate is None:
                gate = cls._gates[key] = cls()
            return gate

    def take(self) -> bool:
        """Wait for this thread's turn; False when it begins without one (it already holds
        the gate, or waited the busy timeout in vain: SQLite's own lock decides then)."""
        me = threading.get_ident()
        urgent = is_ahead()
        deadline = time.monotonic() + self.timeout
        with self._condition:
            if self._holder == me:
                return False
            if urgent:
                self._ahead_waiting += 1
            self.waiting += 1
            try:
                while self._holder is not None or (not urgent and self._ahead_waiting):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return False
                    self._condition.wait(left)
                self._holder = me
                return True
            finally:
                self.waiting -= 1
                if urgent:
                    self._ahead_waiting -= 1
                    self._condition.notify_all()

    def let_go(self) -> None:
        with self._condition:
            self._holder = None
            self._condition.notify_all()


_ahead = threading.local()


def is_ahead() -> bool:
    """Whether this thread is inside :func:`ahead`."""
    return getattr(_ahead, "depth", 0) > 0


@contextmanager
def ahead() -> Iterator[None]:
    """This thread's SQLite transactions go before those of the process's threads waiting
    outside one (:class:`WriteGate`). PostgreSQL's transactions do not queue at BEGIN:
    nothing changes there."""
    _ahead.depth = getattr(_ahead, "depth", 0) + 1
    try:
        yield
    finally:
        _ahead.depth -= 1


class _GatedConnection(_sqlite3.Connection):
    """A sqlite3 connection that lets its :class:`WriteGate` go once its transaction ends
    (committed, rolled back, or the connection closed)."""

    _gate: WriteGate | None = None

    def take(self, gate: WriteGate) -> None:
        if gate.take():
            self._gate = gate

    def let_go(self) -> None:
        gate, self._gate = self._gate, None
        if gate is not None:
            gate.let_go()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            if not self.in_transaction:
                self.let_go()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            if not self.in_transaction:
                self.let_go()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.let_go()


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def dialect_insert(connection: Connection | Engine, target: Any) -> Any:
    """``INSERT`` with ``ON CONFLICT`` support for this connection's database.

    PostgreSQL and SQLite both have ``ON CONFLICT DO NOTHING / DO UPDATE ... WHERE``; their
    SQLAlchemy constructs differ only by module. Typed ``Any``: the two classes share the
    methods used here but no common base declares them.
    """
    if connection.dialect.name == "postgresql":
        return postgresql.insert(target)
    return sqlite.insert(target)
