"""What ``tend status`` shows: workers, counts by status, the next due deliveries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select

from scheduler.migrate import check_schema
from scheduler.models import Delivery, Occurrence, WorkerHeartbeat

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
                    WorkerHeartbeat.worker_id,
                    WorkerHeartbeat.beat_at,
                    WorkerHeartbeat.stopped_at,
                    WorkerHeartbeat.leader,
                )
                .order_by(WorkerHeartbeat.beat_at.desc())
                .limit(10)
            )
        )
        counts = {
            status: int(count)
            for status, count in connection.execute(
                select(Delivery.status, func.count()).group_by(Delivery.status)
            )
        }
        next_due = list(
            connection.execute(
                select(
                    Delivery.next_attempt_at,
                    Delivery.household_id,
                    Occurrence.ritual_id,
                    Delivery.partner_key,
                    Delivery.role,
                    Delivery.channel,
                    Delivery.status,
                )
                .join(Occurrence, Occurrence.id == Delivery.occurrence_id)
                .where(Delivery.status.in_(("pending", "sending")))
                .order_by(Delivery.next_attempt_at)
                .limit(limit)
            )
        )
    return LedgerStatus(now=now, workers=workers, counts=counts, next_due=next_due)
