"""What ``tend status`` reads (:func:`scheduler.reports.status.ledger_status`), on both
databases: deliveries counted by status, the next due ones in order and no more than asked,
the workers newest first; and a database not at the code's schema says what to run.

Rows come from the January couple's file through the planner: Alex's and Sam's noon
check-in on Monday 12, Tuesday 13 and Wednesday 14 January 2026 (UTC), deliveries 1 to 6.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from january_couple import CHECK_IN, COUPLE, at, plan, set_delivery
from ledger_setup import reset_postgres
from ritual_files import couple_file, household_table, partner_table
from sqlalchemy import Engine

from scheduler.ledger import Ledger, SchemaBehind
from scheduler.ledger.engine import make_engine
from scheduler.ledger.reports import Due
from scheduler.ledger.schema import head_revision
from scheduler.ledger.workers import Beat
from scheduler.reports.status import due_text, ledger_status


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
        Due(at(12), "alex-sam", "check-in", "alex", "day_of", "sms", "sending", "UTC"),
        Due(at(11, day=1), "alex-sam", "check-in", "sam", "day_of", "sms", "pending", "UTC"),
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


# Kim lives in Berlin (UTC+1 in January), Sam in New York (UTC-5): each check-in at noon
# on the household's own clock (UTC for alex-sam, Berlin for kim-lee).
ZONES = couple_file(
    partner_table("alex", phone=True),
    partner_table("sam", phone=True, timezone="America/New_York"),
    households=household_table(
        "kim-lee", partner_table("kim", phone=True), timezone="Europe/Berlin"
    ),
    rituals=CHECK_IN,
)


def test_the_next_due_carry_the_recipients_own_zone(engine: Engine) -> None:
    plan(engine, ZONES, at(9))

    due = ledger_status(Ledger(engine), at(9), limit=3).next_due

    # Those due at the same time in any order.
    assert sorted((d.next_attempt_at, d.partner_key, d.timezone) for d in due) == [
        (at(11), "kim", "Europe/Berlin"),
        (at(12), "alex", "UTC"),
        (at(12), "sam", "America/New_York"),
    ]


def test_a_household_narrows_the_counts_and_the_next_due_to_its_own(engine: Engine) -> None:
    plan(engine, ZONES, at(9))
    ledger = Ledger(engine)
    set_delivery(engine, 1, status="sent", sent_at=at(12))

    everyone = ledger_status(ledger, at(9))
    kim = ledger_status(ledger, at(9), household="kim-lee")

    assert everyone.counts == {"pending": 8, "sent": 1}
    assert kim.counts == {"pending": 3}
    assert {d.household_id for d in kim.next_due} == {"kim-lee"}
    assert [d.next_attempt_at for d in kim.next_due] == [at(11), at(11, day=1), at(11, day=2)]
    assert ledger_status(ledger, at(9), household="nobody").next_due == []


@pytest.mark.parametrize(
    ("instant", "zone", "text"),
    [
        pytest.param(at(12), "UTC", "2026-01-12 12:00 UTC", id="utc-says-it-once"),
        pytest.param(
            at(11), "Europe/Berlin", "2026-01-12 11:00 UTC (12:00 Europe/Berlin)", id="same-day"
        ),
        pytest.param(
            at(23, 30),
            "Europe/Berlin",
            "2026-01-12 23:30 UTC (Tue 13 Jan 00:30 Europe/Berlin)",
            id="the-next-day-there",
        ),
        pytest.param(
            at(2),
            "America/New_York",
            "2026-01-12 02:00 UTC (Sun 11 Jan 21:00 America/New_York)",
            id="the-day-before-there",
        ),
        pytest.param(
            datetime(2026, 3, 29, 9, tzinfo=UTC),
            "Europe/Berlin",
            "2026-03-29 09:00 UTC (11:00 Europe/Berlin)",
            id="summer-time-from-the-day-it-starts",
        ),
        pytest.param(at(12), "Not/AZone", "2026-01-12 12:00 UTC", id="a-zone-unknown-here"),
    ],
)
def test_a_due_time_is_shown_in_utc_and_on_the_recipients_clock(
    instant: datetime, zone: str, text: str
) -> None:
    assert due_text(instant, zone) == text


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
