"""The dispatcher's deliveries in the ledger (:mod:`scheduler.ledger.claims`), on both
databases: claims taken atomically and no more than asked, every outcome written only while
the claim is still as it was read, stale claims found, a message moved to the partner's next
channel once.

Rows come from the January couple's file through the planner: Alex (SMS, then e-mail) and
Sam (SMS only) each get the noon check-in on Monday 12, Tuesday 13 and Wednesday 14 January
2026 (UTC), two hours' grace; the deliveries are numbered in that order, Alex's first.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from january_couple import ALEX_PHONE, CHECK_IN, COUPLE, SAM, at, deliveries, one, plan
from query_plans import sqlite_plans
from ritual_files import couple_file, partner_table
from sqlalchemy import Engine, event, update
from sqlalchemy.exc import OperationalError

from scheduler.ledger import Ledger
from scheduler.ledger.claims import Claim, Claims, SentRecord
from scheduler.ledger.engine import make_engine
from scheduler.ledger.rows import DeliveryRow, PartnerRow


@pytest.fixture
def claims(engine: Engine) -> Claims:
    """The couple's file planned at 09:00 on Monday."""
    plan(engine, COUPLE, at(9))
    return Ledger(engine).claims


def claim_one(claims: Claims, worker: str = "w1") -> Claim:
    (found,) = claims.claim(worker, at(12), limit=1)
    return found


def sent(claim: Claim, provider_id: str) -> SentRecord:
    return SentRecord(claim, attempts=1, provider_id=provider_id, sent_at=at(12), last_error=None)


# ----------------------------------------------------------------------------- claiming


def test_a_claim_takes_the_oldest_due_deliveries_up_to_its_limit_and_marks_them_sending(
    engine: Engine, claims: Claims
) -> None:
    first = claims.claim("w1", at(12), limit=1)
    rest = claims.claim("w2", at(12), limit=5)
    again = claims.claim("w3", at(12), limit=5)

    assert [c.id for c in first] == [1]
    assert [c.id for c in rest] == [2]  # Tuesday's are not due yet
    assert again == []
    assert [(d["status"], d["claimed_by"]) for d in deliveries(engine)[:3]] == [
        ("sending", "w1"),
        ("sending", "w2"),
        ("pending", None),
    ]
    assert one(engine, id=1)["claimed_at"] == at(12)


def test_nothing_is_claimed_before_it_is_due(claims: Claims) -> None:
    assert claims.claim("w1", at(11, 59, 59), limit=10) == []
    assert [c.id for c in claims.claim("w1", at(12), limit=10)] == [1, 2]


def test_a_claim_reads_what_deciding_about_it_needs(engine: Engine, claims: Claims) -> None:
    Ledger(engine).completions.confirm(
        household="alex-sam", occurrence=1, partner="sam", at=at(11), source="sms"
    )

    alex, sam = sorted(claims.claim("w1", at(12), limit=2), key=lambda c: c.partner_key)

    assert (alex.partner_key, alex.role, alex.channel) == ("alex", "day_of", "sms")
    assert (alex.name, alex.phone, alex.email) == ("Alex", ALEX_PHONE, "alex@example.com")
    assert alex.channels == ("sms", "email") and sam.channels == ("sms",)
    assert (alex.due_at, alex.expires_at, alex.claimed_at) == (at(12), at(14), at(12))
    assert (alex.household_active, alex.partner_active, alex.paused_until) == (True, True, None)
    # Sam's confirmation made the occurrence confirmed; only Sam's claim says he did it.
    assert (alex.occurrence_status, alex.partner_done, sam.partner_done) == (
        "confirmed",
        False,
        True,
    )
    assert alex.key == "alex-sam/check-in/2026-01-12T12:00/alex/day_of/sms"


def test_on_postgresql_a_second_worker_skips_the_rows_another_is_claiming(
    pg_engine: Engine, postgres_url: str
) -> None:
    plan(pg_engine, COUPLE, at(9))
    # Without SKIP LOCKED the second claim would wait for the first transaction: it would
    # time out here (the test holds both) instead of hanging.
    other = make_engine(postgres_url, connect_args={"options": "-c lock_timeout=2000"})
    try:
        with Ledger(pg_engine).transaction() as tx:
            mine = tx.claims.claim("w1", at(12), limit=1)
            theirs = Ledger(other).claims.claim("w2", at(12), limit=5)
    finally:
        other.dispose()

    assert [c.id for c in mine] == [1]
    assert [c.id for c in theirs] == [2]
    assert [(d["id"], d["claimed_by"]) for d in deliveries(pg_engine)[:2]] == [
        (1, "w1"),
        (2, "w2"),
    ]


# ----------------------------------------------------------------------------- a claim's outcome


def test_an_outcome_is_written_only_by_the_worker_holding_the_claim_as_it_was_read(
    engine: Engine, claims: Claims
) -> None:
    claim = claim_one(claims)
    failed = {"status": "failed", "last_error": "21211", "claimed_by": None}

    assert not claims.finish(claim, "w2", at(12, 1), failed)  # not w2's
    assert not claims.finish(replace(claim, claimed_at=at(11)), "w1", at(12, 1), failed)
    assert one(engine, id=1)["status"] == "sending"

    assert claims.finish(claim, "w1", at(12, 1), failed)
    row = one(engine, id=1)
    assert (row["status"], row["last_error"], row["updated_at"]) == ("failed", "21211", at(12, 1))
    # Written once: it is no longer `sending`.
    assert not claims.finish(claim, "w1", at(12, 2), {"status": "pending"})
    assert one(engine, id=1)["status"] == "failed"


def test_the_reconciler_writes_whoever_holds_the_claim(engine: Engine, claims: Claims) -> None:
    claim = claim_one(claims, "crashed-worker")
    assert claims.finish(claim, None, at(12, 30), {"status": "pending", "claimed_by": None})
    assert (one(engine, id=1)["status"], one(engine, id=1)["claimed_by"]) == ("pending", None)


def test_a_renewed_claim_is_held_from_its_new_time_and_the_old_copy_no_longer_matches(
    engine: Engine, claims: Claims
) -> None:
    claim = claim_one(claims)

    assert claims.renew(claim, "w1", at(12, 5))
    assert one(engine, id=1)["claimed_at"] == at(12, 5)
    assert not claims.renew(claim, "w1", at(12, 6))  # read at 12:00: moved on since
    renewed = replace(claim, claimed_at=at(12, 5))
    assert not claims.renew(renewed, "w2", at(12, 6))
    assert claims.finish(renewed, "w1", at(12, 6), {"status": "cancelled"})
    assert not claims.renew(renewed, "w1", at(12, 7))  # no longer sending


def test_record_sent_writes_and_returns_only_the_claims_still_held(
    engine: Engine, claims: Claims
) -> None:
    alex, sam = claims.claim("w1", at(12), limit=2)
    # Sam's was found stale meanwhile, put back, and sent by another worker.
    assert claims.finish(sam, None, at(12, 10), {"status": "pending", "claimed_by": None})
    (again,) = claims.claim("w2", at(12, 10), limit=1)
    assert again.id == sam.id
    assert claims.record_sent("w2", at(12, 11), [sent(again, "SM9")]) == [sam.id]

    assert claims.record_sent("w2", at(12, 11), [sent(alex, "SM1")]) == []  # not w2's

    written = claims.record_sent("w1", at(12, 12), [sent(alex, "SM1"), sent(sam, "SM2")])

    assert written == [alex.id]
    mine, theirs = one(engine, id=alex.id), one(engine, id=sam.id)
    assert (mine["status"], mine["provider_id"], mine["claimed_by"]) == ("sent", "SM1", None)
    assert (mine["attempts"], mine["sent_at"], mine["updated_at"]) == (1, at(12), at(12, 12))
    assert (theirs["status"], theirs["provider_id"]) == ("sent", "SM9")


def test_record_sent_of_a_whole_batch_still_held_returns_every_id(
    engine: Engine, claims: Claims
) -> None:
    alex, sam = claims.claim("w1", at(12), limit=2)
    assert claims.record_sent("w1", at(12, 1), [sent(alex, "SM1"), sent(sam, "SM2")]) == [1, 2]

    # The same send recorded again (its provider id) is reported as recorded; nothing moves.
    assert claims.record_sent("w1", at(12, 2), [sent(alex, "SM1")]) == [1]
    assert claims.record_sent("w1", at(12, 2), [sent(alex, "SM7")]) == []
    row = one(engine, id=1)
    assert (row["status"], row["provider_id"], row["updated_at"]) == ("sent", "SM1", at(12, 1))


def test_stale_claims_are_those_claimed_longer_ago_than_the_timeout_or_all_without_one(
    claims: Claims,
) -> None:
    claim = claim_one(claims)
    five = timedelta(minutes=5)

    assert claims.stale(at(12, 10), five) == [claim]
    assert claims.stale(at(12, 5), five) == []  # exactly five minutes: not yet
    assert claims.stale(at(12, 0, 1), None) == [claim]
    assert claims.renew(claim, "w1", at(12, 8))
    assert claims.stale(at(12, 10), five) == []


# ----------------------------------------------------------------------------- the next channel


def test_fall_back_makes_the_message_again_on_the_next_channel_due_now_once(
    engine: Engine, claims: Claims
) -> None:
    claim = claim_one(claims)

    assert claims.fall_back(claim, at(12, 3)) == "email"
    assert claims.fall_back(claim, at(12, 4)) == "email"

    (moved,) = deliveries(engine, channel="email")
    assert (moved["fallback_of"], moved["status"], moved["partner_key"]) == (1, "pending", "alex")
    assert (moved["due_at"], moved["expires_at"], moved["next_attempt_at"]) == (
        at(12),
        at(14),
        at(12, 3),
    )
    # Worded for e-mail, as the planner wrote it beside the text: no "Reply DONE".
    assert claim.body.endswith(" Reply DONE when you've talked.")
    email_body = claim.body.removesuffix(" Reply DONE when you've talked.")
    assert claim.fallback_bodies == (("email", email_body),)
    assert (moved["body"], moved["attempts"]) == (email_body, 0)


def test_fall_back_has_nowhere_to_go_without_another_usable_channel_or_past_the_grace(
    engine: Engine, claims: Claims
) -> None:
    alex, sam = claims.claim("w1", at(12), limit=2)
    assert sam.partner_key == "sam"

    assert claims.fall_back(sam, at(12, 3)) is None  # SMS only
    assert claims.fall_back(alex, at(14, 0, 1)) is None  # past its grace
    assert claims.fall_back(replace(alex, email_opted_out_at=at(9)), at(12, 3)) is None
    assert claims.fall_back(replace(alex, email=None), at(12, 3)) is None
    assert deliveries(engine, channel="email") == []


def test_fall_back_passes_over_a_channel_the_partner_opted_out_of(engine: Engine) -> None:
    three = partner_table("alex", phone=True, email=True, channels=["sms", "email", "console"])
    plan(engine, couple_file(three, SAM, rituals=CHECK_IN), at(9))
    with engine.begin() as connection:
        connection.execute(
            update(PartnerRow).where(PartnerRow.key == "alex").values(email_opted_out_at=at(9))
        )
    claims = Ledger(engine).claims
    claim = claim_one(claims)

    assert claims.fall_back(claim, at(12, 3)) == "console"
    assert [d["channel"] for d in deliveries(engine, fallback_of=claim.id)] == ["console"]


def test_each_fallback_is_worded_for_its_own_channel_down_the_partners_list(
    engine: Engine,
) -> None:
    three = partner_table("alex", phone=True, email=True, channels=["email", "sms", "console"])
    walk = """
[[rituals]]
id = "walk"
kind = "custom"
schedule = "daily at 12:00"
message = "Walk, {{ partner }}.{% if channel == 'sms' %} Reply DONE after.{% endif %}"
"""
    plan(engine, couple_file(three, rituals=walk), at(9))
    claims = Ledger(engine).claims
    first = claim_one(claims)
    assert (first.channel, first.body) == ("email", "Walk, Alex.")

    assert claims.fall_back(first, at(12, 1)) == "sms"
    (texted,) = deliveries(engine, channel="sms")
    assert texted["body"] == "Walk, Alex. Reply DONE after."
    (by_sms,) = claims.read([texted["id"]])
    assert claims.fall_back(by_sms, at(12, 2)) == "console"
    (printed,) = deliveries(engine, channel="console")
    assert printed["body"] == "Walk, Alex."  # the console words it as the e-mail did


def test_move_on_settles_the_claim_and_makes_the_fallback_in_one_write_once(
    engine: Engine, claims: Claims
) -> None:
    claim = claim_one(claims)
    failed = {"status": "failed", "attempts": 5, "last_error": "gave up after 5 attempts: 503"}

    moved = claims.move_on(claim, "w1", at(12, 3), failed)

    assert (moved.written, moved.channel) == (True, "email")
    row = one(engine, id=claim.id)
    assert (row["status"], row["attempts"], row["claimed_by"]) == ("failed", 5, None)
    (fallback,) = deliveries(engine, channel="email")
    assert (fallback["fallback_of"], fallback["status"]) == (claim.id, "pending")
    # Settled once: the same claim again (a repeat, a second worker) writes nothing more.
    again = claims.move_on(claim, "w1", at(12, 4), failed)
    assert (again.written, again.channel) == (False, None)
    assert len(deliveries(engine, channel="email")) == 1


def test_move_on_makes_no_fallback_for_a_claim_no_longer_held(
    engine: Engine, claims: Claims
) -> None:
    claim = claim_one(claims)
    # A reconciler took it back meanwhile: the outcome is not this worker's to write.
    claims.finish(claim, None, at(12, 2), {"status": "pending", "claimed_by": None})

    moved = claims.move_on(claim, "w1", at(12, 3), {"status": "failed", "attempts": 5})

    assert (moved.written, moved.channel) == (False, None)
    assert one(engine, id=claim.id)["status"] == "pending"
    assert deliveries(engine, channel="email") == []


def test_move_on_whose_fallback_the_database_refuses_leaves_the_claim_as_it_was(
    engine: Engine, claims: Claims
) -> None:
    claim = claim_one(claims)

    def refuse(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("INSERT INTO delivery"):
            raise OperationalError(statement, {}, Exception("disk I/O error"))

    event.listen(engine, "before_cursor_execute", refuse)
    try:
        with pytest.raises(OperationalError):
            claims.move_on(claim, "w1", at(12, 3), {"status": "failed", "attempts": 5})
    finally:
        event.remove(engine, "before_cursor_execute", refuse)

    # Neither the give-up nor the fallback: still `sending`, for the reconciler, never a
    # failed delivery whose fallback was lost.
    row = one(engine, id=claim.id)
    assert (row["status"], row["claimed_by"]) == ("sending", "w1")
    assert deliveries(engine, channel="email") == []


# ----------------------------------------------------------------------------- due and missed


def test_next_due_is_the_earliest_pending_delivery(engine: Engine) -> None:
    claims = Ledger(engine).claims
    assert claims.next_due() is None  # an empty ledger
    plan(engine, COUPLE, at(9))
    assert claims.next_due() == at(12)
    claims.claim("w1", at(12), limit=2)
    assert claims.next_due() == at(12, day=1)  # a delivery being sent is not due


def test_marking_the_missed_ones_searches_indexes_and_never_scans_the_pending_ones(
    sqlite_engine: Engine,
) -> None:
    """At 100,000 households a look through every pending delivery took 7.9 s, before each
    batch the dispatcher claimed, holding SQLite's one writer. SQLite plans without
    statistics, so its choice of index is what runs."""
    plan(sqlite_engine, COUPLE, at(9))
    with sqlite_plans(sqlite_engine, "UPDATE delivery") as plans:
        Ledger(sqlite_engine).claims.mark_missed(at(14, 0, 1))
    assert len(plans) == 2
    assert "ix_delivery_status_next_attempt_at (status=? AND next_attempt_at<?)" in plans[0]
    assert "ix_delivery_retried_expires_at (status=? AND expires_at<?)" in plans[1]
    assert not any("SCAN" in p for p in plans), plans


def test_a_claim_takes_its_rows_by_id_not_through_every_pending_delivery(
    sqlite_engine: Engine,
) -> None:
    """The claim's UPDATE went through the status index over every pending delivery to
    find the few the batch had chosen: 0.29 s a batch at 100,000 households, holding SQLite's
    one writer; by their ids it is 2 ms."""
    plan(sqlite_engine, COUPLE, at(9))
    with sqlite_plans(sqlite_engine, "WITH due") as plans:
        claimed = Ledger(sqlite_engine).claims.claim("w1", at(12), limit=5)
    assert [c.id for c in claimed] == [1, 2]
    (found,) = plans
    assert "ix_delivery_status_next_attempt_at (status=? AND next_attempt_at<?)" in found
    assert "INTEGER PRIMARY KEY (rowid=?)" in found
    assert "ix_delivery_status_next_attempt_at (status=?)" not in found, found


def test_a_retry_put_after_its_grace_is_marked_missed_once_the_grace_is_over(
    engine: Engine, claims: Claims
) -> None:
    """The one kind of pending delivery that is not due when its grace ends."""
    [claim] = claims.claim("w1", at(12), limit=1)
    with engine.begin() as connection:
        connection.execute(
            update(DeliveryRow)
            .where(DeliveryRow.id == claim.id)
            .values(status="pending", attempts=1, next_attempt_at=at(15), claimed_by=None)
        )
    assert claims.mark_missed(at(14)) == 0
    assert claims.mark_missed(at(14, 0, 1)) == 2  # it, and the other one (due, not sent)
    assert one(engine, id=claim.id)["status"] == "missed"


def test_pending_deliveries_past_their_grace_are_marked_missed_and_others_left(
    engine: Engine, claims: Claims
) -> None:
    claim_one(claims)  # Alex's is being sent

    assert claims.mark_missed(at(14)) == 0  # at the end of the grace: still in time
    assert claims.mark_missed(at(14, 0, 1)) == 1

    sam, alex = one(engine, id=2), one(engine, id=1)
    assert (sam["status"], sam["last_error"]) == ("missed", "not sent within the ritual's grace")
    assert sam["updated_at"] == at(14, 0, 1)
    assert alex["status"] == "sending"
    assert [d["status"] for d in deliveries(engine)[2:]] == ["pending"] * 4
    assert claims.mark_missed(at(14, 0, 1)) == 0
