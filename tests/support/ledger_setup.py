"""Ledger set-up: the machine's PostgreSQL emptied, a household put in directly, a ritual
file planned as the worker plans it."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, text, update

from config.loader import load_ritual_file
from config.model import RitualFile
from rituals.planning import Plan
from scheduler.ledger import Ledger
from scheduler.ledger.rows import DeliveryRow, HouseholdRow, PartnerRow
from scheduler.planner import plan_horizon, sync_file


def planned_file(
    engine: Engine, path: Path, planned: datetime, days: int, *, sent_before: datetime | None = None
) -> RitualFile:
    """The ritual file at `path`, synced and planned `days` ahead at `planned` as the worker
    would; with `sent_before`, every delivery due by then marked sent on time."""
    file = load_ritual_file(path, today=planned).file
    synced = sync_file(Ledger(engine), file, planned)
    plan_horizon(
        Ledger(engine),
        Plan(file),
        planned,
        generation=synced.generation,
        changed=synced.changed,
        days=days,
    )
    if sent_before is not None:
        with engine.begin() as connection:
            connection.execute(
                update(DeliveryRow)
                .where(DeliveryRow.due_at <= sent_before)
                .values(status="sent", sent_at=DeliveryRow.due_at)
            )
    return file


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
