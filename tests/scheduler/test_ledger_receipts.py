"""What a provider says after a send (:mod:`scheduler.ledger.receipts`), on both databases:
only a final word counts, and only the first; a failure moves the message to the partner's
next channel; a word that came before the send was recorded is held, then applied.

Rows come from the January couple's file through the planner: Monday's noon check-in is
claimed and recorded sent, Alex's (delivery 1, SMS then e-mail) as SM1 and Sam's (delivery 2,
SMS only) as SM2.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from january_couple import COUPLE, at, deliveries, one, plan
from june_couple import rows_of
from query_plans import sqlite_plans
from sqlalchemy import Engine

from scheduler.ledger import Ledger
from scheduler.ledger.claims import SentRecord
from scheduler.ledger.receipts import Receipt, Receipts
from scheduler.ledger.rows import ProviderReceiptRow


@pytest.fixture
def receipts(engine: Engine) -> Receipts:
    plan(engine, COUPLE, at(9))
    return Ledger(engine).receipts


def send(engine: Engine, *provider_ids: str) -> None:
    """Monday's deliveries claimed at noon and recorded as sent with these ids, in order."""
    claims = Ledger(engine).claims
    claimed = claims.claim("w1", at(12), limit=len(provider_ids))
    records = [
        SentRecord(c, attempts=1, provider_id=p, sent_at=at(12), last_error=None)
        for c, p in zip(claimed, provider_ids, strict=True)
    ]
    assert claims.record_sent("w1", at(12), records) == [c.id for c in claimed]


def say(
    receipts: Receipts, provider_id: str, status: str, now: datetime, code: str | None = None
) -> Receipt:
    return receipts.record(
        channel="sms", provider_id=provider_id, status=status, error_code=code, now=now
    )


def held(engine: Engine) -> dict[str, str]:
    return {r["provider_id"]: r["status"] for r in rows_of(engine, ProviderReceiptRow)}


def test_only_a_final_word_is_recorded(engine: Engine, receipts: Receipts) -> None:
    send(engine, "SM1")
    for status in ("queued", "sending", "sent", "accepted", "read"):
        assert say(receipts, "SM1", status, at(12, 1)) == Receipt("not final")
    assert say(receipts, "SM-unknown", "queued", at(12, 1)) == Receipt("not final")

    assert one(engine, id=1)["provider_status"] is None
    assert held(engine) == {}


def test_delivered_is_noted_once_and_the_first_final_word_counts(
    engine: Engine, receipts: Receipts
) -> None:
    send(engine, "SM1")

    assert say(receipts, "SM1", "DELIVERED", at(12, 1)) == Receipt("recorded", 1)
    assert say(receipts, "SM1", "delivered", at(12, 2)) == Receipt("repeat", 1)
    assert say(receipts, "SM1", "undelivered", at(12, 3), "30003") == Receipt("repeat", 1)

    row = one(engine, id=1)
    assert (row["status"], row["provider_status"], row["updated_at"]) == (
        "sent",
        "delivered",
        at(12, 1),
    )
    assert deliveries(engine, channel="email") == []


def test_a_failed_message_moves_to_the_partners_next_channel(
    engine: Engine, receipts: Receipts
) -> None:
    send(engine, "SM1", "SM2")

    alex = say(receipts, "SM1", "undelivered", at(12, 5), "30003")
    sam = say(receipts, "SM2", "failed", at(12, 5))

    assert alex == Receipt("recorded", 1, "email")
    assert sam == Receipt("recorded", 2, None)  # Sam has no other channel
    first, second = one(engine, id=1), one(engine, id=2)
    assert (first["status"], first["provider_status"], first["last_error"]) == (
        "failed",
        "undelivered",
        "undelivered (provider error 30003)",
    )
    assert (second["status"], second["last_error"]) == (
        "failed",
        "failed (provider error not given)",
    )
    (moved,) = deliveries(engine, channel="email")
    assert (moved["fallback_of"], moved["status"], moved["next_attempt_at"]) == (
        1,
        "pending",
        at(12, 5),
    )
    # The repeat of the failure makes no second fallback.
    assert say(receipts, "SM1", "failed", at(12, 6), "30003") == Receipt("repeat", 1)
    assert len(deliveries(engine, channel="email")) == 1


def test_a_failure_after_the_grace_fails_the_message_without_moving_it(
    engine: Engine, receipts: Receipts
) -> None:
    send(engine, "SM1")
    assert say(receipts, "SM1", "undelivered", at(14, 0, 1), "30003") == Receipt("recorded", 1)
    assert one(engine, id=1)["status"] == "failed"
    assert deliveries(engine, channel="email") == []


def test_a_word_before_the_send_is_recorded_is_held_then_applied_once(
    engine: Engine, receipts: Receipts
) -> None:
    assert say(receipts, "SM1", "undelivered", at(12, 0, 1), "30003") == Receipt("held")
    assert say(receipts, "SM1", "delivered", at(12, 0, 2)) == Receipt("held")
    assert held(engine) == {"SM1": "undelivered"}  # the first final word counts
    send(engine, "SM1")

    assert receipts.apply_held(channel="email", provider_id="SM1", now=at(12, 1)) is None
    applied = receipts.apply_held(channel="sms", provider_id="SM1", now=at(12, 1))

    assert applied == Receipt("recorded", 1, "email")
    assert (one(engine, id=1)["status"], one(engine, id=1)["provider_status"]) == (
        "failed",
        "undelivered",
    )
    assert held(engine) == {}
    assert receipts.apply_held(channel="sms", provider_id="SM1", now=at(12, 2)) is None


def test_apply_matched_applies_the_held_words_whose_message_is_now_recorded_sent(
    engine: Engine, receipts: Receipts
) -> None:
    say(receipts, "SM1", "delivered", at(11, 59))
    say(receipts, "SM-not-ours", "delivered", at(11, 59))
    assert receipts.apply_matched(at(12)) == 0  # neither is recorded yet
    send(engine, "SM1")  # recorded without looking at what was held

    assert receipts.apply_matched(at(12, 1)) == 1

    assert one(engine, id=1)["provider_status"] == "delivered"
    assert held(engine) == {"SM-not-ours": "delivered"}
    assert receipts.apply_matched(at(12, 2)) == 0


def test_apply_matched_goes_from_the_held_words_to_their_messages(sqlite_engine: Engine) -> None:
    """The held words are few; the messages ever sent, millions in a year at 100,000
    households. Joined, SQLite read every sent message (the status index) or every delivery
    for them."""
    plan(sqlite_engine, COUPLE, at(9))
    receipts = Ledger(sqlite_engine).receipts
    say(receipts, "SM1", "delivered", at(11, 59))
    send(sqlite_engine, "SM1")
    with sqlite_plans(sqlite_engine, "SELECT provider_receipt") as plans:
        assert receipts.apply_matched(at(12, 1)) == 1
    (found,) = plans
    assert "SCAN provider_receipt" in found
    assert "ix_delivery_provider_id (provider_id=?)" in found
    assert "SCAN delivery" not in found and "ix_delivery_status" not in found, found


def test_a_held_word_no_delivery_claimed_in_two_days_is_dropped(
    engine: Engine, receipts: Receipts
) -> None:
    say(receipts, "SM-old", "delivered", at(9))
    say(receipts, "SM-recent", "delivered", at(9, 0, 1))
    two_days = at(9) + timedelta(days=2)

    say(receipts, "SM-new", "delivered", two_days)  # SM-old is exactly two days old: kept
    assert set(held(engine)) == {"SM-old", "SM-recent", "SM-new"}
    say(receipts, "SM-newer", "delivered", two_days + timedelta(seconds=1))
    assert set(held(engine)) == {"SM-recent", "SM-new", "SM-newer"}


def test_a_failure_and_its_fallback_are_written_together_or_not_at_all(
    engine: Engine, receipts: Receipts, monkeypatch: pytest.MonkeyPatch
) -> None:
    import scheduler.ledger.claims as claims_module

    send(engine, "SM1")
    real_insert = claims_module._insert_fallback

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("the process died while writing the fallback")

    monkeypatch.setattr(claims_module, "_insert_fallback", crash)
    with pytest.raises(RuntimeError):
        say(receipts, "SM1", "undelivered", at(12, 5), "30003")

    # Nothing of the failure was kept: the provider's retry finds the message as it was.
    row = one(engine, id=1)
    assert (row["status"], row["provider_status"]) == ("sent", None)
    assert deliveries(engine, channel="email") == []

    monkeypatch.setattr(claims_module, "_insert_fallback", real_insert)
    assert say(receipts, "SM1", "undelivered", at(12, 6), "30003") == Receipt(
        "recorded", 1, "email"
    )
    assert one(engine, id=1)["status"] == "failed"
    (moved,) = deliveries(engine, channel="email")
    assert (moved["fallback_of"], moved["status"]) == (1, "pending")
