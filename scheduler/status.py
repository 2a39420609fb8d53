"""What ``tend status`` shows: workers, counts by status, the next due deliveries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select

from scheduler.ledger.rows import DeliveryRow, OccurrenceRow, WorkerHeartbeatRow
from scheduler.ledger.schema import check_schema

__all__ = ["LedgerStatus", "ledger_status"]


@dataclass(frozen=True)
class LedgerStatus:
    now: datetime
    workers: list[Any]
    counts: dict[str, int]
    next_due: list[Any]


def ledger_status(engine: Engine, now: datetime, *, limit: int = 10) -> LedgerStatus:
    check_schema(engine)
    with engine.connect() as connection:
        workers = list(
            connection.execute(
                select(
                    WorkerHeartbeatRow.worker_id,
                    WorkerHeartbeatRow.beat_at,
                    WorkerHeartbeatRow.stopped_at,
                    WorkerHeartbeatRow.leader,
                )
                .order_by(WorkerHeartbeatRow.beat_at.desc())
                .limit(10)
            )
        )
        counts = {
            status: int(count)
            for status, count in connection.execute(
                select(DeliveryRow.status, func.count()).group_by(DeliveryRow.status)
            )
        }
        next_due = list(
            connection.execute(
                select(
                    DeliveryRow.next_attempt_at,
                    DeliveryRow.household_id,
                    OccurrenceRow.ritual_id,
                    DeliveryRow.partner_key,
                    DeliveryRow.role,
                    DeliveryRow.channel,
                    DeliveryRow.status,
                )
                .join(OccurrenceRow, OccurrenceRow.id == DeliveryRow.occurrence_id)
                .where(DeliveryRow.status.in_(("pending", "sending")))
                .order_by(DeliveryRow.next_attempt_at)
                .limit(limit)
            )
        )
    return LedgerStatus(now=now, workers=workers, counts=counts, next_due=next_due)
