"""The ritual file as the ledger keeps it: the last good file synced (its hash, its text,
and a generation that counts its changes), and the households and partners mirrored from it.

The file is the truth for who and what; the mirror is what the ledger's other rows refer
to (an opt-out, a pause), and where the web finds a partner by their number.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, case, func, select, tuple_, update

from config.model import RitualFile
from scheduler.ledger.base import Bound
from scheduler.ledger.engine import dialect_insert
from scheduler.ledger.rows import ConfigStateRow, HouseholdRow, PartnerRow

__all__ = ["IN_LIST", "Synced", "SyncedState"]

IN_LIST = 500  # values per `IN (...)`: far under any database's limit on bound parameters


@dataclass(frozen=True, slots=True)
class SyncedState:
    """The last good file the ledger has: its generation, its text, when it was synced."""

    generation: int
    text: str | None
    synced_at: datetime


_STATE = select(
    ConfigStateRow.generation, ConfigStateRow.file_text, ConfigStateRow.synced_at
).where(ConfigStateRow.id == 1)


class Synced(Bound):
    """The synced ritual file, and the households and partners mirrored from it."""

    __slots__ = ()

    def state(self) -> SyncedState | None:
        with self._reading() as connection:
            row = connection.execute(_STATE).first()
        return None if row is None else SyncedState(row.generation, row.file_text, row.synced_at)

    def sync(
        self, file: RitualFile, digest: str, now: datetime, text: str | None
    ) -> tuple[int, bool]:
        """Keep `file` (hashed `digest`; `text` as written) as the last good one and mirror
        its households and partners, unless it is the one synced already. Its generation,
        and whether it changed."""
        with self._writing() as connection:
            state = connection.execute(
                select(ConfigStateRow.generation, ConfigStateRow.file_hash)
                .where(ConfigStateRow.id == 1)
                .with_for_update()
            ).first()
            if state is not None and state.file_hash == digest:
                return state.generation, False
            generation = 1 if state is None else state.generation + 1
            values = {"file_hash": digest, "generation": generation, "synced_at": now}
            if state is None:
                connection.execute(
                    dialect_insert(connection, ConfigStateRow.__table__)
                    .values(id=1, file_text=text, **values)
                    .on_conflict_do_nothing()
                )
            else:
                connection.execute(
                    update(ConfigStateRow)
                    .where(ConfigStateRow.id == 1)
                    .values(file_text=text, **values)
                )
            _mirror(connection, file, now)
        return generation, True


def _mirror(connection: Connection, file: RitualFile, now: datetime) -> None:
    households, partners = _rows(file, now)
    _upsert_households(connection, households, now)
    _upsert_partners(connection, partners)
    _deactivate_gone(connection, file, now)


def _rows(file: RitualFile, now: datetime) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
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
    return households, partners


def _upsert_households(
    connection: Connection, households: list[dict[str, Any]], now: datetime
) -> None:
    stmt = dialect_insert(connection, HouseholdRow.__table__)
    connection.execute(
        stmt.on_conflict_do_update(
            index_elements=["id"],
            set_={"timezone": stmt.excluded.timezone, "active": True, "updated_at": now},
        ),
        households,
    )


def _upsert_partners(connection: Connection, partners: list[dict[str, Any]]) -> None:
    stmt = dialect_insert(connection, PartnerRow.__table__)
    table = PartnerRow.__table__.c
    # An opt-out belongs to the address it came from: a new number or e-mail address in the
    # file starts without it (an unchanged one keeps it, whatever else changes).
    # Case does not make another mailbox, and an address removed and written back is the
    # same address: only a different one in place of the old one lifts the opt-out. (One
    # removed and later replaced keeps it: the safe side; `tend opt-in` lifts it.)
    opt_outs = {
        f"{channel}_opted_out_at": case(
            (
                and_(
                    stmt.excluded[address].is_not(None),
                    func.lower(table[address]).is_distinct_from(func.lower(stmt.excluded[address])),
                    table[address].is_not(None),
                ),
                None,
            ),
            else_=table[f"{channel}_opted_out_at"],
        )
        for channel, address in (("sms", "phone"), ("email", "email"))
    }
    mirrored = ("name", "phone", "email", "channels", "timezone", "quiet_hours", "active")
    connection.execute(
        stmt.on_conflict_do_update(
            index_elements=["household_id", "key"],
            set_={
                **opt_outs,  # SET reads the old row: the old address against the new
                **{name: stmt.excluded[name] for name in mirrored},
            },
        ),
        partners,
    )


def _deactivate_gone(connection: Connection, file: RitualFile, now: datetime) -> None:
    # Households and partners gone from the file: found by difference here, not by
    # `NOT IN (every id in the file)`, which is one bound parameter per household (more than
    # PostgreSQL's 65,535 at 100,000 households), or a statement per household.
    in_file = {h.id for h in file.households}
    active_households = select(HouseholdRow.id).where(HouseholdRow.active.is_(True))
    gone = sorted(set(connection.execute(active_households).scalars()) - in_file)
    partners_in_file = {(h.id, p.id) for h in file.households for p in h.partners}
    active = connection.execute(
        select(PartnerRow.household_id, PartnerRow.key).where(PartnerRow.active.is_(True))
    )
    gone_partners = sorted({(h, k) for h, k in active} - partners_in_file)
    for start in range(0, len(gone), IN_LIST):
        connection.execute(
            update(HouseholdRow)
            .where(HouseholdRow.id.in_(gone[start : start + IN_LIST]))
            .values(active=False, updated_at=now)
        )
    for start in range(0, len(gone_partners), IN_LIST):
        connection.execute(
            update(PartnerRow)
            .where(
                tuple_(PartnerRow.household_id, PartnerRow.key).in_(
                    gone_partners[start : start + IN_LIST]
                )
            )
            .values(active=False)
        )
