"""Partners, mirrored from the ritual file into the ledger by the planner's sync: an opt-out
belongs to the address it was made from and survives any other change, and a database
error during the mirror does not carry their phone numbers or addresses into the logs; and
the ledger's partners themselves (:mod:`scheduler.ledger.partners`): opt-outs recorded and
cleared, partners found by their number, when each was last texted.

Time is the scheduler tests' fake clock (Monday 12 January 2026, UTC); rows come from small
ritual files through the planner."""

from __future__ import annotations

import pytest
from january_couple import (
    ALEX_PHONE,
    CHECK_IN,
    COUPLE,
    SAM_PHONE,
    SOLO,
    at,
    deliveries,
    plan,
    set_delivery,
)
from ritual_files import couple_file, household_table, partner_table, ritual_file
from sqlalchemy import Engine, text

from scheduler.ledger import Ledger
from scheduler.ledger.engine import make_engine
from scheduler.planner import sync_file


def test_a_database_error_while_mirroring_partners_does_not_carry_their_phone_numbers(
    pg_engine: Engine, postgres_url: str
) -> None:
    # A database hiccup during planning (failover, lock timeout, restart) raises from the
    # partner upsert; APScheduler logs the exception, and SQLAlchemy puts the statement's
    # parameters in its text: every partner's phone number and email address.
    engine = make_engine(postgres_url, connect_args={"options": "-c lock_timeout=200"})
    holder = pg_engine.connect()
    try:
        holder.execute(text("LOCK TABLE partner IN ACCESS EXCLUSIVE MODE"))
        with pytest.raises(Exception) as raised:
            sync_file(Ledger(engine), ritual_file(COUPLE), at(9))
    finally:
        holder.rollback()
        holder.close()
        engine.dispose()
    message = str(raised.value)
    assert "+15551230001" not in message and "alex@example.com" not in message, message[:400]


def test_an_opt_out_belongs_to_the_address_and_a_new_address_starts_without_it(
    engine: Engine,
) -> None:
    from sqlalchemy import select, update

    from scheduler.ledger.rows import PartnerRow

    def opted() -> tuple[object, object]:
        with engine.connect() as connection:
            row = connection.execute(
                select(PartnerRow.sms_opted_out_at, PartnerRow.email_opted_out_at).where(
                    PartnerRow.key == "alex"
                )
            ).one()
        return row[0], row[1]

    plan(engine, SOLO, at(9))
    with engine.begin() as connection:
        connection.execute(
            update(PartnerRow)
            .where(PartnerRow.key == "alex")
            .values(sms_opted_out_at=at(9), email_opted_out_at=at(9))
        )
    # Any other change keeps both opt-outs.
    plan(engine, SOLO.replace('name = "Alex"', 'name = "Alexandra"'), at(10))
    assert opted() == (at(9), at(9))
    # A new number starts without the SMS opt-out; the e-mail address did not change.
    plan(engine, SOLO.replace(ALEX_PHONE, "+15551230009"), at(11))
    assert opted() == (None, at(9))
    # And a new e-mail address without the e-mail one.
    plan(
        engine,
        SOLO.replace(ALEX_PHONE, "+15551230009").replace("alex@example.com", "al@example.com"),
        at(12),
    )
    assert opted() == (None, None)


def test_an_opt_out_survives_a_change_of_case_or_the_address_removed_and_written_back(
    engine: Engine,
) -> None:
    from sqlalchemy import select, update

    from scheduler.ledger.rows import PartnerRow

    def email_opted() -> object:
        with engine.connect() as connection:
            return connection.execute(
                select(PartnerRow.email_opted_out_at).where(PartnerRow.key == "alex")
            ).scalar_one()

    plan(engine, SOLO, at(9))
    with engine.begin() as connection:
        connection.execute(
            update(PartnerRow).where(PartnerRow.key == "alex").values(email_opted_out_at=at(9))
        )
    plan(engine, SOLO.replace("alex@example.com", "Alex@Example.com"), at(10))
    assert email_opted() == at(9)
    without = SOLO.replace('email = "alex@example.com"\n', "").replace('"sms", "email"', '"sms"')
    assert "alex@example.com" not in without
    plan(engine, without, at(11))
    assert email_opted() == at(9)
    plan(engine, SOLO, at(12))
    assert email_opted() == at(9)


# ----------------------------------------------------------------------------- opt-outs


def test_an_opt_out_keeps_the_time_first_recorded_until_it_is_cleared(engine: Engine) -> None:
    plan(engine, SOLO, at(9))
    partners = Ledger(engine).partners

    assert partners.record_opt_out("alex-sam", "alex", "sms", at(10))
    assert partners.record_opt_out("alex-sam", "alex", "sms", at(11))  # a second STOP

    assert partners.opted_out_at("alex-sam", "alex", "sms") == at(10)
    assert partners.opted_out_at("alex-sam", "alex", "email") is None
    assert partners.clear_opt_out("alex-sam", "alex", "sms")
    assert not partners.clear_opt_out("alex-sam", "alex", "sms")  # not opted out any more
    assert partners.opted_out_at("alex-sam", "alex", "sms") is None
    assert partners.record_opt_out("alex-sam", "alex", "sms", at(12))
    assert partners.opted_out_at("alex-sam", "alex", "sms") == at(12)


def test_an_opt_out_of_an_unknown_partner_or_a_channel_without_one_records_nothing(
    engine: Engine,
) -> None:
    plan(engine, SOLO, at(9))
    partners = Ledger(engine).partners

    assert not partners.record_opt_out("alex-sam", "kim", "sms", at(10))
    assert not partners.record_opt_out("kim-lee", "alex", "email", at(10))
    assert not partners.record_opt_out("alex-sam", "alex", "console", at(10))
    assert not partners.clear_opt_out("alex-sam", "kim", "sms")
    assert not partners.clear_opt_out("alex-sam", "alex", "console")
    assert partners.opted_out_at("alex-sam", "alex", "console") is None
    assert partners.opted_out_at("alex-sam", "kim", "sms") is None
    assert partners.opted_out_at("alex-sam", "alex", "sms") is None


# ----------------------------------------------------------------------------- by number

TWO_HOUSEHOLDS = couple_file(
    partner_table("alex", phone=True),
    partner_table("sam", phone=True),
    households=household_table("alex-kim", partner_table("alex", phone=True), partner_table("kim")),
    rituals=CHECK_IN,
)


def test_a_number_finds_its_active_partners_and_an_opt_out_every_partner_with_it(
    engine: Engine,
) -> None:
    plan(engine, TWO_HOUSEHOLDS, at(9))
    # Alex leaves alex-kim: that partner is inactive, the number still theirs.
    without = TWO_HOUSEHOLDS.replace(
        partner_table("alex", phone=True) + partner_table("kim"), partner_table("kim")
    )
    assert without.count(ALEX_PHONE) == 1
    plan(engine, without, at(10))
    partners = Ledger(engine).partners

    assert partners.with_phone(ALEX_PHONE) == [("alex-sam", "alex")]
    assert sorted(partners.sharing_number(ALEX_PHONE)) == [
        ("alex-kim", "alex"),
        ("alex-sam", "alex"),
    ]
    assert partners.with_phone(SAM_PHONE) == [("alex-sam", "sam")]
    assert partners.with_phone("+15550000000") == []
    assert partners.sharing_number("+15550000000") == []


def test_last_texted_is_each_partners_latest_sms_and_leaves_out_those_never_texted(
    engine: Engine,
) -> None:
    plan(engine, COUPLE, at(9))
    alex = [d["id"] for d in deliveries(engine, partner_key="alex")]
    set_delivery(engine, alex[0], status="sent", sent_at=at(12))
    set_delivery(engine, alex[1], status="sent", sent_at=at(12, day=1))
    # A later e-mail is not a text.
    set_delivery(engine, alex[2], channel="email", status="sent", sent_at=at(12, day=2))
    partners = Ledger(engine).partners

    last = partners.last_texted([("alex-sam", "alex"), ("alex-sam", "sam"), ("kim-lee", "kim")])

    assert last == {("alex-sam", "alex"): at(12, day=1)}
    assert partners.last_texted([("alex-sam", "sam")]) == {}
