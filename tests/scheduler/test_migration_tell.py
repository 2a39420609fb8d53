"""Migration 0006 (TELL) on both databases: a delivery may be about no occurrence and
carries its inbound message's id, unique with the recipient and the channel; going back to
0005 drops the TELLs (the older schema needs an occurrence for every delivery) and keeps the
rest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from ledger_setup import add_household
from sqlalchemy import Engine, func, insert, select, text
from sqlalchemy.exc import IntegrityError

from scheduler.ledger.rows import DeliveryRow, OccurrenceRow
from scheduler.ledger.schema import downgrade, upgrade

NOW = datetime(2026, 1, 13, 12, 0, tzinfo=UTC)


def delivery(**values: object) -> dict[str, object]:
    return {
        "household_id": "h",
        "partner_key": "sam",
        "channel": "sms",
        "status": "pending",
        "due_at": NOW,
        "next_attempt_at": NOW,
        "expires_at": NOW + timedelta(hours=12),
        "attempts": 0,
        "body": "Alex: thank you",
        "generation": 0,
        "created_at": NOW,
        "updated_at": NOW,
        **values,
    }


def test_a_tell_is_unique_per_inbound_message_recipient_and_channel(engine: Engine) -> None:
    add_household(engine, "h", {"sam": {"phone": "+15551230002", "channels": "sms"}}, NOW)
    with engine.begin() as connection:
        connection.execute(insert(DeliveryRow).values(delivery(role="tell", inbound_id="SM1")))
        connection.execute(
            insert(DeliveryRow).values(delivery(role="tell", inbound_id="SM1", channel="email"))
        )
    with pytest.raises(IntegrityError), engine.begin() as connection:
        connection.execute(insert(DeliveryRow).values(delivery(role="tell", inbound_id="SM1")))


def test_downgrading_to_0005_drops_the_tells_and_keeps_the_other_deliveries(
    engine: Engine,
) -> None:
    add_household(engine, "h", {"sam": {"phone": "+15551230002", "channels": "sms"}}, NOW)
    with engine.begin() as connection:
        occurrence = connection.execute(
            insert(OccurrenceRow)
            .values(
                household_id="h",
                ritual_id="check-in",
                slot=datetime(2026, 1, 13, 12),
                kind="check_in",
                at=NOW,
                created_at=NOW,
                updated_at=NOW,
            )
            .returning(OccurrenceRow.id)
        ).scalar_one()
        connection.execute(
            insert(DeliveryRow).values(delivery(role="day_of", occurrence_id=occurrence))
        )
        connection.execute(insert(DeliveryRow).values(delivery(role="tell", inbound_id="SM1")))

    downgrade(engine, "0005")
    with engine.connect() as connection:
        roles = connection.execute(text("SELECT role FROM delivery")).scalars().all()
    assert roles == ["day_of"]

    upgrade(engine)
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(DeliveryRow)).scalar() == 1
