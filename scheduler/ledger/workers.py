"""The worker processes as the ledger knows them: one heartbeat row each (``tend status``
and ``/healthz`` read the newest), the planner's lock (PostgreSQL: the one worker holding a
session-level advisory lock plans), and the wake-up the planner sends the others (PostgreSQL
``NOTIFY``/``LISTEN``)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import Connection, Engine, func, select, update

from scheduler.ledger.base import Bound
from scheduler.ledger.engine import dialect_insert
from scheduler.ledger.rows import WorkerHeartbeatRow

__all__ = ["NOTIFY_CHANNEL", "Beat", "PlannerLock", "Workers"]

log = logging.getLogger("scheduler.service")

# pg_try_advisory_lock key for "the planner": any fixed 64-bit number, Tend's own.
PLANNER_LOCK_KEY = 0x74656E64_706C616E  # b"tendplan"
NOTIFY_CHANNEL = "tend_planned"
_NEWEST = select(func.max(WorkerHeartbeatRow.beat_at)).where(
    WorkerHeartbeatRow.stopped_at.is_(None)
)


@dataclass(frozen=True, slots=True)
class Beat:
    worker_id: str
    beat_at: datetime
    stopped_at: datetime | None
    leader: bool


class Workers(Bound):
    """The workers' heartbeats."""

    __slots__ = ()

    def beat(self, values: dict[str, Any], now: datetime, leader: bool) -> None:
        """Insert the worker's row, or note that it is still alive (and whether it plans)."""
        with self._writing() as connection:
            insert = dialect_insert(connection, WorkerHeartbeatRow)
            connection.execute(
                insert.values(values).on_conflict_do_update(
                    index_elements=["worker_id"], set_={"beat_at": now, "leader": leader}
                )
            )

    def stopped(self, worker_id: str, at: datetime) -> None:
        with self._writing() as connection:
            connection.execute(
                update(WorkerHeartbeatRow)
                .where(WorkerHeartbeatRow.worker_id == worker_id)
                .values(stopped_at=at, leader=False)
            )

    def newest_beat(self) -> datetime | None:
        """The newest heartbeat of a worker that has not stopped."""
        with self._reading() as connection:
            last: datetime | None = connection.execute(_NEWEST).scalar_one()
            return last

    def latest(self, limit: int = 10) -> list[Beat]:
        with self._reading() as connection:
            rows = connection.execute(
                select(
                    WorkerHeartbeatRow.worker_id,
                    WorkerHeartbeatRow.beat_at,
                    WorkerHeartbeatRow.stopped_at,
                    WorkerHeartbeatRow.leader,
                )
                .order_by(WorkerHeartbeatRow.beat_at.desc())
                .limit(limit)
            )
            return [Beat(r.worker_id, r.beat_at, r.stopped_at, r.leader) for r in rows]

    def announce(self, worker_id: str) -> None:
        """PostgreSQL: wake the other workers, whose next wake-up may be later than new work."""
        with self._writing() as connection:
            connection.execute(select(func.pg_notify(NOTIFY_CHANNEL, worker_id)))


class PlannerLock:
    """PostgreSQL's session-level advisory lock for "the planner", on a connection of its
    own (a lock held by a pooled connection would outlive its release)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._connection: Connection | None = None

    @property
    def held(self) -> bool:
        return self._connection is not None

    def hold(self) -> tuple[bool, bool]:
        """Whether this process holds the lock (trying to take it if not), and whether it
        was just taken."""
        if self._connection is not None:
            try:
                self._connection.exec_driver_sql("SELECT 1")
                self._connection.commit()
                return True, False
            except Exception:
                log.warning("lost the planner lock's connection; trying to take it again")
                self.release()
        connection = self._engine.connect()
        got = connection.execute(select(func.pg_try_advisory_lock(PLANNER_LOCK_KEY))).scalar_one()
        connection.commit()
        if got:
            self._connection = connection
        else:
            connection.close()
        return bool(got), bool(got)

    def release(self) -> None:
        connection, self._connection = self._connection, None
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


def listen(
    engine: Engine,
    stopping: threading.Event,
    woken: Callable[[], None],
    *,
    timeout: float,
) -> None:
    """PostgreSQL: call `woken` whenever the planner (in any process) announces new work,
    until `stopping` is set; a lost connection is tried again after 5 s."""
    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    while not stopping.is_set():
        try:
            with psycopg.connect(url, autocommit=True) as connection:
                connection.execute(f"LISTEN {NOTIFY_CHANNEL}")
                while not stopping.is_set():
                    for _ in connection.notifies(timeout=timeout, stop_after=1):
                        woken()
        except psycopg.Error as exc:
            log.warning("listening for new work failed (%s); the 30 s poll covers it", exc)
            stopping.wait(5)
