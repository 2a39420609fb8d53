"""Alex and Sam on UTC, Monday 12 January 2026: the dispatcher tests' couple, its ritual
files, its instants and message keys, and the ledger rows its tests read and change.

Rows come from these files through the real planner (`plan`), as the worker makes them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ritual_files import couple_file, partner_table, ritual_file
from sqlalchemy import Engine, select, update

from rituals.planning import Plan
from scheduler.ledger import Ledger
from scheduler.ledger.rows import DeliveryRow, OccurrenceRow, PartnerRow
from scheduler.planner import plan_horizon, sync_file

ALEX = partner_table("alex", phone=True, email=True, channels=["sms", "email"])
SAM = partner_table("sam", phone=True, email=True, channels=["sms"])

CHECK_IN = """
[[rituals]]
id = "check-in"
kind = "check_in"
schedule = "daily at 12:00"
"""

# Alex falls back to email; Sam, who has an email address, does not use it.
COUPLE = couple_file(ALEX, SAM, rituals=CHECK_IN)
SOLO = couple_file(ALEX, rituals=CHECK_IN)

WITH_REMINDER = COUPLE + 'remind_after = "2h"\n'

DOWNTIME = couple_file(
    ALEX,
    SAM,
    rituals="""
[[rituals]]
id = "lunch"
kind = "check_in"
schedule = "daily at 12:00"

[[rituals]]
id = "breakfast"
kind = "check_in"
schedule = "daily at 07:00"

[[rituals]]
id = "quick"
kind = "check_in"
schedule = "daily at 12:00"
grace = "30m"
""",
)

# Alex lives in New York (UTC-5 in January): quiet 22:00-08:00 there is 03:00-13:00 UTC.
# The household runs on UTC, so the ritual at 02:50 UTC is 21:50 for Alex: not quiet yet.
QUIET = couple_file(
    partner_table("alex", phone=True, timezone="America/New_York", quiet_hours="22:00-08:00"),
    rituals="""
[[rituals]]
id = "late"
kind = "check_in"
schedule = "daily at 02:50"
grace = "{grace}"
""",
)

ALEX_PHONE = "+15551230001"
ALEX_MASKED = "+1*******001"
SAM_PHONE = "+15551230002"
SAM_MASKED = "+1*******002"


def at(hour: int, minute: int = 0, second: int = 0, *, day: int = 0) -> datetime:
    """An instant on Monday 12 January 2026 (UTC), or `day` days later."""
    return datetime(2026, 1, 12, hour, minute, second, tzinfo=UTC) + timedelta(days=day)


def key(
    partner: str,
    *,
    ritual: str = "check-in",
    role: str = "day_of",
    channel: str = "sms",
    slot: str = "2026-01-12T12:00",
) -> str:
    """The message key the dispatcher gives a delivery of household alex-sam."""
    return f"alex-sam/{ritual}/{slot}/{partner}/{role}/{channel}"


# ---------------------------------------------------------------------------- ledger helpers


def plan(engine: Engine, text: str, now: datetime, *, days: int = 2) -> None:
    """Sync the file and plan its next days, as the service does at `now`."""
    file = ritual_file(text)
    synced = sync_file(Ledger(engine), file, now)
    plan_horizon(
        Ledger(engine),
        Plan(file),
        now,
        generation=synced.generation,
        changed=synced.changed,
        days=days,
    )


def deliveries(engine: Engine, **where: Any) -> list[dict[str, Any]]:
    """Delivery rows (with their occurrence's ritual and status) matching column=value."""
    table = DeliveryRow.__table__
    query = (
        select(
            *table.c,
            OccurrenceRow.ritual_id,
            OccurrenceRow.status.label("occurrence_status"),
        )
        .join(OccurrenceRow, OccurrenceRow.id == DeliveryRow.occurrence_id)
        .order_by(DeliveryRow.id)
    )
    for name, value in where.items():
        column = OccurrenceRow.ritual_id if name == "ritual_id" else table.c[name]
        query = query.where(column == value)
    with engine.connect() as connection:
        return [dict(row) for row in connection.execute(query).mappings()]


def one(engine: Engine, **where: Any) -> dict[str, Any]:
    found = deliveries(engine, **where)
    assert len(found) == 1, f"expected one delivery for {where}, found {len(found)}"
    return found[0]


def set_delivery(engine: Engine, delivery_id: int, **values: Any) -> None:
    with engine.begin() as connection:
        connection.execute(
            update(DeliveryRow).where(DeliveryRow.id == delivery_id).values(**values)
        )


def interrupt(engine: Engine, delivery_id: int, claimed_at: datetime) -> None:
    """What a worker killed during the provider call leaves behind."""
    set_delivery(
        engine, delivery_id, status="sending", claimed_by="crashed-worker", claimed_at=claimed_at
    )


def partner(engine: Engine, key: str) -> dict[str, Any]:
    with engine.connect() as connection:
        row = connection.execute(select(*PartnerRow.__table__.c).where(PartnerRow.key == key)).one()
        return dict(row._mapping)
