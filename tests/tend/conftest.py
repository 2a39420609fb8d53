"""A migrated SQLite ledger for the web and CLI tests, and a way to put households in it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert

from scheduler.ledger.engine import make_engine
from scheduler.ledger.rows import HouseholdRow, PartnerRow
from scheduler.ledger.schema import upgrade


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'tend.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


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
