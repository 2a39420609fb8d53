"""Ledger set-up by hand: the machine's PostgreSQL emptied, a household put in directly."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, text

from scheduler.ledger.rows import HouseholdRow, PartnerRow


def reset_postgres(engine: Engine) -> None:
    """An empty ``public`` schema: the CI database is Tend's own."""
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))


def add_household(
    engine: Engine, household: str, partners: dict[str, dict[str, Any]], now: datetime
) -> None:
    """A household and its partners (key -> column values beyond the required ones)."""
    with engine.begin() as connection:
        connection.execute(
            insert(HouseholdRow).values(
                id=household, timezone="UTC", created_at=now, updated_at=now
            )
        )
        for key, values in partners.items():
            connection.execute(
                insert(PartnerRow).values(
                    {
                        "household_id": household,
                        "key": key,
                        "name": key.title(),
                        "channels": "email",
                        "timezone": "UTC",
                        **values,
                    }
                )
            )
