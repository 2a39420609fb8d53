"""What ``tend status`` reads (:func:`scheduler.reports.status.ledger_status`), on both
databases: deliveries counted by status, the next due ones in order and no more than asked,
the workers newest first; and a database not at the code's schema says what to run.

Rows come from the January couple's file through the planner: Alex's and Sam's noon
check-in on Monday 12, Tuesday 13 and Wednesday 14 January 2026 (UTC), deliveries 1 to 6.
"""

from __future__ import annotations

from datetime import datetime

import pytest
from january_couple import COUPLE, at, plan, set_delivery
from ledger_setup import reset_postgres
from sqlalchemy import Engine

from scheduler.ledger import Ledger, SchemaBehind
from scheduler.ledger.engine import make_engine
from scheduler.ledger.schema import head_revision
from scheduler.ledger.reports import Due
from scheduler.ledger.workers import Beat
from scheduler.reports.status import ledger_status


def beat(ledger: Ledger, worker: str, now: datetime, *, leader: bool = False) -> None:
    values = {
        "worker_id": worker,
        "hostname": "host",
        "pid": 1,
        "started_at": now,
        "beat_at": now,
        "leader": leader,
    }
    ledger.workers.beat(values, now, leader)


def test_an_empty_ledger_has_nothing_to_show(engine: Engine) -> None:
    status = ledger_status(Ledger(engine), at(9))
    assert (status.now, status.workers, status.counts, status.next_due) == (at(9), [], {}, [])


def test_deliveries_are_counted_by_status(engine: Engine) -> None:
    plan(engine, COUPLE, at(9))
    ledger = Ledger(engine)
    ledger.claims.claim("w1", at(12), limit=1)
    set_delivery(engine, 2, status="sent", sent_at=at(12))
    set_delivery(engine, 3, status="cancelled")

    assert ledger_status(ledger, at(12)).counts == {
        "pending": 3,
        "sending": 1,
        "sent": 1,
        "cancelled": 1,
    }


def test_the_next_due_are_those_still_to_send_soonest_first_up_to_the_limit(
    engine: Engine,
) -> None:
    plan(engine, COUPLE, at(9))
    ledger = Ledger(engine)
    ledger.claims.claim("w1", at(12), limit=1)  # Alex's Monday one is being sent
    set_delivery(engine, 2, status="sent", sent_at=at(12))
    # Sam's Wednesday one failed once and waits to be tried again before Tuesday's.
    set_delivery(engine, 6, next_attempt_at=at(11, day=1))

    status = ledger_status(ledger, at(12, 1), limit=2)

    assert status.next_due == [
        Due(at(12), "alex-sam", "check-in", "alex", "day_of", "sms", "sending"),
        Due(at(11, day=1), "alex-sam", "check-in", "sam", "day_of", "sms", "pending"),
    ]
    # The default limit (10) shows all five; those due at the same time in any order.
    every = ledger_status(ledger, at(12, 1)).next_due
    assert [d.next_attempt_at for d in every] == [
        at(12),
        at(11, day=1),
        at(12, day=1),
        at(12, day=1),
        at(12, day=2),
    ]


def test_workers_are_shown_newest_beat_first_with_who_plans_and_who_stopped(
    engine: Engine,
) -> None:
    ledger = Ledger(engine)
    beat(ledger, "w-old", at(8))
    beat(ledger, "w-leader", at(9), leader=True)
    beat(ledger, "w-new", at(9, 30))
    beat(ledger, "w-old", at(9, 45))  # still alive: its beat moves on
    ledger.workers.stopped("w-old", at(9, 50))

    workers = ledger_status(ledger, at(10)).workers

    assert workers == [
        Beat("w-old", at(9, 45), at(9, 50), False),
        Beat("w-new", at(9, 30), None, False),
        Beat("w-leader", at(9), None, True),
    ]
    assert ledger.workers.newest_beat() == at(9, 30)  # of a worker still running


def test_a_database_without_tends_tables_says_to_run_tend_db_upgrade(
    backend: str, request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite":
        engine = make_engine(request.getfixturevalue("sqlite_url"))
    else:
        engine = request.getfixturevalue("pg_engine")
        reset_postgres(engine)
    try:
        with pytest.raises(SchemaBehind, match=r"no Tend tables yet.*Run `tend db upgrade`"):
            ledger_status(Ledger(engine), at(9))
    finally:
        if backend == "sqlite":
            engine.dispose()


def test_a_database_at_an_older_revision_says_which_it_is_and_which_is_needed(
    engine: Engine,
) -> None:
    ledger = Ledger(engine)
    ledger.downgrade("0003")

    with pytest.raises(SchemaBehind) as raised:
        ledger_status(ledger, at(9))

    assert str(raised.value).startswith(
        f"the database is at revision 0003; this Tend needs revision {head_revision()}."
    )
    ledger.upgrade()
    assert ledger_status(ledger, at(9)).counts == {}
