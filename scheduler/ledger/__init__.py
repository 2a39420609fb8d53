"""The ledger: every statement Tend runs and every transaction it opens, in one place.

The ritual file is the truth for who and what; the ledger's rows are the truth for what was
planned, what was sent and what the couple did. Nothing above this package runs SQL or
holds a connection: it asks a :class:`Ledger` for records, by kind, each call its own short
transaction::

    ledger.claims.claim(worker, now, limit)
    ledger.partners.record_opt_out(household, partner, "sms", now)

or, where several must commit together (a reply: its answer, the completion it records and
the message as received), inside one::

    with ledger.transaction() as tx:
        tx.completions.confirm(...)
        tx.inbound.record(...)

A module per kind of record: :mod:`~scheduler.ledger.claims` and
:mod:`~scheduler.ledger.plans` (deliveries, as the dispatcher and the planner see them),
:mod:`~scheduler.ledger.occurrences`, :mod:`~scheduler.ledger.completions` (and pauses),
:mod:`~scheduler.ledger.partners` (and opt-outs), :mod:`~scheduler.ledger.inbound`,
:mod:`~scheduler.ledger.receipts`, :mod:`~scheduler.ledger.streaks`,
:mod:`~scheduler.ledger.workers` (heartbeats, the planner's lock),
:mod:`~scheduler.ledger.synced` (the ritual file last synced), :mod:`~scheduler.ledger.tells`
(a partner's TELL passed on), :mod:`~scheduler.ledger.ratings` (pulse ratings and how each
pulse check-in went out), :mod:`~scheduler.ledger.pages` (the couple's page URLs'
generations) and
:mod:`~scheduler.ledger.reports`; the rows themselves in :mod:`~scheduler.ledger.rows`, the
schema's migrations in :mod:`~scheduler.ledger.schema`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    IntegrityError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)

from scheduler.ledger import schema
from scheduler.ledger.claims import Claims
from scheduler.ledger.completions import Completions
from scheduler.ledger.engine import ahead, make_engine
from scheduler.ledger.inbound import Inbound
from scheduler.ledger.occurrences import Occurrences
from scheduler.ledger.pages import Pages
from scheduler.ledger.partners import Partners
from scheduler.ledger.plans import Plans
from scheduler.ledger.ratings import Ratings
from scheduler.ledger.receipts import Receipts
from scheduler.ledger.reports import Reports
from scheduler.ledger.rows import (
    REACHED,
    DeliveryStatus,
    OccurrenceStatus,
    is_follow_up,
)
from scheduler.ledger.schema import SchemaBehind
from scheduler.ledger.streaks import Streaks
from scheduler.ledger.synced import Synced
from scheduler.ledger.tells import Tells
from scheduler.ledger.workers import PlannerLock, Workers, listen

__all__ = [
    "REACHED",
    "Busy",
    "Conflict",
    "DatabaseError",
    "DeliveryStatus",
    "Ledger",
    "LedgerError",
    "OccurrenceStatus",
    "Records",
    "SchemaBehind",
    "is_follow_up",
]

#: Anything the ledger raises.
LedgerError = SQLAlchemyError
#: The database refused a statement, or could not be reached.
DatabaseError = DBAPIError
#: A passing failure (a lost connection, a lock that timed out): worth trying again.
Busy = OperationalError
#: A unique key another transaction took meanwhile: everything in this one was rolled back.
Conflict = IntegrityError


class Records:
    """The ledger's records by kind, bound to the engine (each call its own transaction)
    or to one open transaction."""

    def __init__(self, bind: Engine | Connection) -> None:
        self.claims = Claims(bind)
        self.completions = Completions(bind)
        self.inbound = Inbound(bind)
        self.occurrences = Occurrences(bind)
        self.pages = Pages(bind)
        self.partners = Partners(bind)
        self.plans = Plans(bind)
        self.ratings = Ratings(bind)
        self.receipts = Receipts(bind)
        self.reports = Reports(bind)
        self.streaks = Streaks(bind)
        self.synced = Synced(bind)
        self.tells = Tells(bind)
        self.workers = Workers(bind)


class Ledger(Records):
    """The ledger of one database."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self._engine = engine

    @classmethod
    def at(cls, url: str, **engine_options: Any) -> Ledger:
        """The ledger at a SQLAlchemy URL: ``ValueError`` for one Tend cannot use,
        ``ImportError`` for a database whose driver it does not ship."""
        try:
            return cls(make_engine(url, **engine_options))
        except (ArgumentError, NoSuchModuleError) as exc:
            raise ValueError(str(exc)) from exc

    # ------------------------------------------------------------------ transactions

    @contextmanager
    def transaction(self) -> Iterator[Records]:
        """Several calls that commit together, or not at all."""
        with self._engine.begin() as connection:
            yield Records(connection)

    @contextmanager
    def ahead(self) -> Iterator[None]:
        """Within the block, this thread's transactions begin before those of the process's
        other threads waiting for SQLite's one writer (someone's edit before the
        dispatcher's next batch). PostgreSQL's writers do not queue: nothing changes there."""
        with ahead():
            yield

    # ------------------------------------------------------------------ the database

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @property
    def url(self) -> str:
        """The database's URL, its password hidden."""
        return self._engine.url.render_as_string(hide_password=True)

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file (None on another database)."""
        database = self._engine.url.database
        return Path(database or "tend.db") if self.is_sqlite else None

    def missing_sqlite_file(self) -> bool:
        """An SQLite ledger whose file is not there yet (connecting would create it)."""
        database = self._engine.url.database
        return self.is_sqlite and not (database and Path(database).exists())

    def connections(self) -> int:
        """How many connections the ledger lets one process hold at once: one writer on
        SQLite; the pool's size and overflow on PostgreSQL."""
        if self.is_sqlite:
            return 1
        size = getattr(self._engine.pool, "size", None)
        overflow = getattr(self._engine.pool, "_max_overflow", 0)
        if not callable(size):
            return 8
        return max(1, int(size()) + max(0, int(overflow)))

    def dispose(self) -> None:
        self._engine.dispose()

    # ------------------------------------------------------------------ the schema

    def upgrade(self, revision: str = "head") -> None:
        schema.upgrade(self._engine, revision)

    def downgrade(self, revision: str) -> None:
        schema.downgrade(self._engine, revision)

    def current_revision(self) -> str | None:
        return schema.current_revision(self._engine)

    def check_schema(self) -> None:
        schema.check_schema(self._engine)

    def ensure_schema(self) -> None:
        schema.ensure_schema(self._engine)

    def wait_for_schema(
        self, pause: Callable[[float], bool], waiting: Callable[[SchemaBehind], None]
    ) -> bool:
        """:meth:`ensure_schema`, waiting on PostgreSQL for ``tend db upgrade`` (see
        :func:`scheduler.ledger.schema.wait_for_schema`); False when `pause` gave up."""
        return schema.wait_for_schema(self._engine, pause, waiting)

    # ------------------------------------------------------------------ the workers

    def planner_lock(self) -> PlannerLock:
        return PlannerLock(self._engine)

    def listen(self, stopping: threading.Event, woken: Callable[[], None], timeout: float) -> None:
        """PostgreSQL: call `woken` when the planner announces new work (see
        :func:`scheduler.ledger.workers.listen`)."""
        listen(self._engine, stopping, woken, timeout=timeout)
