"""The planner: the ritual file into ledger rows, idempotently.

Two steps, both safe to run twice or from two processes at once:

- :func:`sync_file` mirrors households and partners, and counts *generations*: each change
  of the file (by the hash of its validated content) is a new generation.
- :func:`plan_horizon` inserts the occurrences and deliveries of the next days with
  insert-or-ignore on their unique keys. After a change it also updates what is still
  pending, and cancels what the new file no longer makes (a removed or changed ritual's
  future deliveries), keeping every row that has history.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, exists, or_, select, true, tuple_, update

from config.model import RitualFile
from rituals.planning import Plan
from scheduler.db import dialect_insert
from scheduler.models import ConfigState, Delivery, Household, Occurrence, Partner

__all__ = [
    "CONFIG_CANCELLED",
    "DEFAULT_HORIZON_DAYS",
    "PlanReport",
    "SyncResult",
    "file_hash",
    "plan_horizon",
    "sync_file",
]

log = logging.getLogger(__name__)

DEFAULT_HORIZON_DAYS = 14
# The reason written on deliveries a file change cancelled; only these are revived when a
# later file makes them again (a delivery cancelled for another reason stays cancelled).
CONFIG_CANCELLED = "cancelled: the ritual file no longer makes this delivery"
CHUNK = 500  # households per transaction while planning

OCCURRENCE = Occurrence.__table__
DELIVERY = Delivery.__table__


def file_hash(file: RitualFile) -> str:
    """The hash of the file's validated content: comments and layout do not count."""
    return hashlib.sha256(file.model_dump_json().encode()).hexdigest()


@dataclass(frozen=True)
class SyncResult:
    generation: int
    changed: bool


@dataclass(frozen=True)
class PlanReport:
    occurrences: int  # rows inserted or updated
    deliveries: int
    cancelled: int  # pending deliveries cancelled because the file no longer makes them
    generation: int


def sync_file(engine: Engine, file: RitualFile, now: datetime) -> SyncResult:
    """Mirror the file's households and partners; count a generation when the file changed."""
    digest = file_hash(file)
    with engine.begin() as connection:
        state = connection.execute(
            select(ConfigState.generation, ConfigState.file_hash)
            .where(ConfigState.id == 1)
            .with_for_update()
        ).first()
        if state is not None and state.file_hash == digest:
            return SyncResult(state.generation, changed=False)
        generation = 1 if state is None else state.generation + 1
        if state is None:
            connection.execute(
                dialect_insert(connection, ConfigState.__table__)
                .values(id=1, file_hash=digest, generation=generation, synced_at=now)
                .on_conflict_do_nothing()
            )
        else:
            connection.execute(
                update(ConfigState)
                .where(ConfigState.id == 1)
                .values(file_hash=digest, generation=generation, synced_at=now)
            )
        _mirror(connection, file, now)
    log.info("ritual file generation %d synced", generation)
    return SyncResult(generation, changed=True)


def _mirror(connection: Connection, file: RitualFile, now: datetime) -> None:
    households, partners = [], []
    for household in file.households:
        zone, zones = household.zones(file.timezone)
        households.append(
            {
                "id": household.id,
                "timezone": zone.key,
                "active": True,
                "created_at": now,
                "updated_at": now,
            }
        )
        for partner in household.partners:
            partners.append(
                {
                    "household_id": household.id,
                    "key": partner.id,
                    "name": partner.name,
                    "phone": partner.phone,
                    "email": partner.email,
                    "channels": ",".join(partner.channels),
                    "timezone": zones[partner.id].key,
                    "quiet_hours": str(partner.quiet_hours) if partner.quiet_hours else None,
                    "active": True,
                }
            )
    stmt = dialect_insert(connection, Household.__table__)
    connection.execute(
        stmt.on_conflict_do_update(
            index_elements=["id"],
            set_={"timezone": stmt.excluded.timezone, "active": True, "updated_at": now},
        ),
        households,
    )
    stmt = dialect_insert(connection, Partner.__table__)
    connection.execute(
        stmt.on_conflict_do_update(
            index_elements=["household_id", "key"],
            set_={
                name: stmt.excluded[name]
                for name in (
                    "name",
                    "phone",
                    "email",
                    "channels",
                    "timezone",
                    "quiet_hours",
                    "active",
                )
            },
        ),
        partners,
    )
    ids = [h.id for h in file.households]
    connection.execute(
        update(Household).where(Household.id.not_in(ids)).values(active=False, updated_at=now)
    )
    connection.execute(update(Partner).where(Partner.household_id.not_in(ids)).values(active=False))
    for household in file.households:
        keys = [p.id for p in household.partners]
        connection.execute(
            update(Partner)
            .where(Partner.household_id == household.id, Partner.key.not_in(keys))
            .values(active=False)
        )


def plan_horizon(
    engine: Engine,
    plan: Plan,
    now: datetime,
    *,
    generation: int,
    changed: bool,
    days: int = DEFAULT_HORIZON_DAYS,
    households: Sequence[str] | None = None,
) -> PlanReport:
    """Insert the occurrences and deliveries of the next `days` local days of each household.

    With ``changed`` (the file is a new generation), pending rows are updated to what the
    file now says and future pending deliveries it no longer makes are cancelled.
    """
    file = plan.file
    if not changed:
        # A change whose planning failed part way (a crash, a lost database) is finished now:
        # otherwise no later run would update or cancel what the old file planned.
        with engine.connect() as connection:
            changed = _unfinished(connection, now, generation)
    chosen = [h for h in file.households if households is None or h.id in households]
    occurrences = deliveries = 0
    for start in range(0, len(chosen), CHUNK):
        chunk = [h.id for h in chosen[start : start + CHUNK]]
        with engine.begin() as connection:
            o, d = _plan_chunk(connection, plan, chunk, now, generation, changed, days)
        occurrences += o
        deliveries += d
    cancelled = 0
    if changed:
        with engine.begin() as connection:
            cancelled = _cancel_stale(connection, file, now, generation, households)
        if cancelled:
            log.info("cancelled %d pending deliveries the ritual file no longer makes", cancelled)
    return PlanReport(occurrences, deliveries, cancelled, generation)


def _plan_chunk(
    connection: Connection,
    plan: Plan,
    household_ids: Sequence[str],
    now: datetime,
    generation: int,
    changed: bool,
    days: int,
) -> tuple[int, int]:
    rituals = {r.id: r for r in plan.file.rituals}
    occurrence_rows: list[dict[str, Any]] = []
    made: list[tuple[tuple[str, str, datetime, str], list[dict[str, Any]]]] = []
    for household_id in household_ids:
        # From yesterday: a ritual just before local midnight may still be inside its grace.
        today = now.astimezone(plan.zone_of(household_id)).date() - timedelta(days=1)
        for ritual in plan.rituals_for(household_id):
            ahead = ritual.plan_ahead.days + 1 if ritual.plan_ahead else 0
            after = today + timedelta(days=1 + days + ahead)
            for occurrence in plan.occurrences(household_id, ritual, today, after):
                rows = []
                for delivery in plan.deliveries(occurrence):
                    expires = delivery.due_at + rituals[occurrence.ritual].grace
                    if expires < now:
                        continue  # never planned in time to be sent: not planned at all
                    rows.append(
                        {
                            "household_id": household_id,
                            "partner_key": delivery.partner,
                            "role": delivery.role,
                            "channel": delivery.channel,
                            "status": "pending",
                            "due_at": delivery.due_at,
                            "next_attempt_at": delivery.due_at,
                            "expires_at": expires,
                            "attempts": 0,
                            "body": delivery.text,
                            "subject": f"Tend: {ritual.display_name}",
                            "generation": generation,
                            "created_at": now,
                            "updated_at": now,
                        }
                    )
                if not rows and occurrence.at < now:
                    continue  # all in the past: a fresh start does not invent missed rituals
                key = (household_id, ritual.id, occurrence.slot, occurrence.recipient or "")
                made.append((key, rows))
                occurrence_rows.append(
                    {
                        "household_id": household_id,
                        "ritual_id": ritual.id,
                        "slot": occurrence.slot,
                        "recipient": occurrence.recipient or "",
                        "kind": occurrence.kind,
                        "at": occurrence.at,
                        "status": "open",
                        "item": occurrence.item,
                        "planners": ",".join(occurrence.planners),
                        "generation": generation,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
    if not occurrence_rows:
        return 0, 0

    stmt = dialect_insert(connection, OCCURRENCE)
    ex = stmt.excluded
    revive = OCCURRENCE.c.status == "cancelled"
    # RETURNING counts the rows inserted or updated; skipped conflicts return nothing.
    written = connection.execute(
        stmt.on_conflict_do_update(
            index_elements=["household_id", "ritual_id", "slot", "recipient"],
            set_={
                "status": "open",
                "kind": ex.kind,
                "at": ex.at,
                "item": ex.item,
                "planners": ex.planners,
                "generation": ex.generation,
                "updated_at": ex.updated_at,
            },
            where=or_(revive, OCCURRENCE.c.status == "open") if changed else revive,
        ).returning(OCCURRENCE.c.id),
        occurrence_rows,
    ).all()
    # Looked up by key; `at` only narrows the search. A row the upsert left alone (confirmed,
    # skipped) keeps the instant of an earlier file, and a changed zone moves a slot's instant
    # by up to 26 hours (UTC-12 to UTC+14): look that much further back.
    earliest = min(row["at"] for row in occurrence_rows) - timedelta(days=2)
    ids = {
        (row.household_id, row.ritual_id, row.slot, row.recipient): row.id
        for row in connection.execute(
            select(
                Occurrence.id,
                Occurrence.household_id,
                Occurrence.ritual_id,
                Occurrence.slot,
                Occurrence.recipient,
            ).where(Occurrence.household_id.in_(household_ids), Occurrence.at >= earliest)
        )
    }
    delivery_rows = []
    delivered: Sequence[Any] = []
    for key, rows in made:
        for row in rows:
            row["occurrence_id"] = ids[key]
            delivery_rows.append(row)
    if delivery_rows:
        stmt = dialect_insert(connection, DELIVERY)
        ex = stmt.excluded
        revive = and_(DELIVERY.c.status == "cancelled", DELIVERY.c.last_error == CONFIG_CANCELLED)
        delivered = connection.execute(
            stmt.on_conflict_do_update(
                index_elements=["occurrence_id", "partner_key", "role", "channel"],
                set_={
                    "status": "pending",
                    "due_at": ex.due_at,
                    "next_attempt_at": ex.next_attempt_at,
                    "expires_at": ex.expires_at,
                    "attempts": 0,
                    "last_error": None,
                    "body": ex.body,
                    "subject": ex.subject,
                    "generation": ex.generation,
                    "updated_at": ex.updated_at,
                },
                where=or_(revive, DELIVERY.c.status == "pending") if changed else revive,
            ).returning(DELIVERY.c.id),
            delivery_rows,
        ).all()
    return len(written), len(delivered)


def _unfinished(connection: Connection, now: datetime, generation: int) -> bool:
    """Whether an older generation's future work is still live: a changed plan leaves none."""
    future = select(Occurrence.id).where(Occurrence.at >= now)
    stale = or_(
        exists().where(
            Occurrence.generation < generation,
            Occurrence.status == "open",
            Occurrence.at >= now,
        ),
        exists().where(
            Delivery.generation < generation,
            Delivery.status == "pending",
            Delivery.fallback_of.is_(None),
            Delivery.occurrence_id.in_(future),
        ),
    )
    return bool(connection.execute(select(stale)).scalar())


def _cancel_stale(
    connection: Connection,
    file: RitualFile,
    now: datetime,
    generation: int,
    households: Sequence[str] | None,
) -> int:
    """After a change: cancel pending work the new generation did not plan again.

    A fallback delivery (the dispatcher moved a delivery to the partner's next channel) is
    not something the planner makes, so it is kept unless its ritual, household or partner
    is gone.
    """
    future = select(Occurrence.id).where(Occurrence.at >= now)
    occurrence_scope = Occurrence.household_id.in_(households) if households else true()
    delivery_scope = Delivery.household_id.in_(households) if households else true()
    ritual_ids = [r.id for r in file.rituals]
    # Future occurrences the new file does not make; and every pending delivery of a ritual,
    # household or partner that is gone, whenever its occurrence was.
    connection.execute(
        update(Occurrence)
        .where(
            occurrence_scope,
            Occurrence.generation < generation,
            Occurrence.status == "open",
            Occurrence.at >= now,
        )
        .values(status="cancelled", updated_at=now)
    )
    gone_partners = select(Partner.household_id, Partner.key).where(Partner.active.is_(False))
    result = connection.execute(
        update(Delivery)
        .where(
            delivery_scope,
            Delivery.status == "pending",
            Delivery.generation < generation,
            or_(
                and_(Delivery.fallback_of.is_(None), Delivery.occurrence_id.in_(future)),
                Delivery.occurrence_id.in_(
                    select(Occurrence.id).where(Occurrence.ritual_id.not_in(ritual_ids))
                ),
                Delivery.household_id.in_(select(Household.id).where(Household.active.is_(False))),
                tuple_(Delivery.household_id, Delivery.partner_key).in_(gone_partners),
            ),
        )
        .values(status="cancelled", last_error=CONFIG_CANCELLED, updated_at=now)
    )
    return int(result.rowcount or 0)
