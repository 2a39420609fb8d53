"""The ritual file as the ledger keeps it: the last good file synced (its hash, its text,
and a generation that counts its changes), and the households and partners mirrored from it.

The file is the truth for who and what; the mirror is what the ledger's other rows refer
to (an opt-out, a pause), and where the web finds a partner by their number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, case, func, select, tuple_, update

from config.model import RitualFile
from scheduler.ledger.base import Bound
from scheduler.ledger.engine import dialect_insert
from scheduler.ledger.rows import ConfigStateRow, HouseholdRow, PartnerRow

__all__ = ["DIRECTORY", "IN_LIST", "KeptHousehold", "Synced", "SyncedState"]

IN_LIST = 500  # values per `IN (...)`: far under any database's limit on bound parameters
PROBLEMS_KEPT = 50  # problem lines the ledger keeps for `tend status`; the rest are counted


@dataclass(frozen=True, slots=True)
class SyncedState:
    """The last good file the ledger has: its generation, its text, when it was synced, and
    its layout ("directory": the text is a ritual directory's rituals.toml; None: one file)."""

    generation: int
    text: str | None
    synced_at: datetime
    layout: str | None = None


@dataclass(frozen=True, slots=True)
class KeptHousehold:
    """A ritual directory's household as the ledger keeps it."""

    id: str
    timezone: str
    config_hash: str | None  # of its file's content
    planned_hash: str | None  # the hash its plan was last finished for


_STATE = select(
    ConfigStateRow.generation,
    ConfigStateRow.file_text,
    ConfigStateRow.synced_at,
    ConfigStateRow.layout,
).where(ConfigStateRow.id == 1)

DIRECTORY = "directory"


class Synced(Bound):
    """The synced ritual file, and the households and partners mirrored from it."""

    __slots__ = ()

    def state(self) -> SyncedState | None:
        with self._reading() as connection:
            row = connection.execute(_STATE).first()
        if row is None:
            return None
        return SyncedState(row.generation, row.file_text, row.synced_at, row.layout)

    def note_problems(self, lines: Sequence[str]) -> None:
        """The problems of the files as the planner read them now (none: every file good),
        the first ``PROBLEMS_KEPT`` of them and how many more, for ``tend status``."""
        kept = list(lines[:PROBLEMS_KEPT])
        if len(lines) > PROBLEMS_KEPT:
            kept.append(f"... and {len(lines) - PROBLEMS_KEPT} more")
        with self._writing() as connection:
            connection.execute(
                update(ConfigStateRow)
                .where(ConfigStateRow.id == 1)
                .values(problems="\n".join(kept) if kept else None)
            )

    def problems(self) -> list[str]:
        """The problems the planner last noted (:meth:`note_problems`)."""
        with self._reading() as connection:
            text = connection.execute(
                select(ConfigStateRow.problems).where(ConfigStateRow.id == 1)
            ).scalar()
        return text.split("\n") if text else []

    def sync(
        self, file: RitualFile, digest: str, now: datetime, text: str | None
    ) -> tuple[int, bool]:
        """Keep `file` (hashed `digest`; `text` as written) as the last good one and mirror
        its households and partners, unless it is the one synced already. Its generation,
        and whether it changed."""
        with self._writing() as connection:
            generation, changed = _generation(connection, digest, now, text, None, False)
            if changed:
                _mirror(connection, file, now)
        return generation, changed

    def sync_shared(
        self, digest: str, now: datetime, text: str, *, households_changed: bool
    ) -> tuple[int, bool]:
        """A ritual directory's rituals.toml (hashed `digest`, `text` as written): kept as the
        last good one. A new generation when it changed, or when `households_changed` (their
        rows are then written with it, so that what their old files planned is told apart).
        The generation, and whether rituals.toml changed."""
        with self._writing() as connection:
            before = connection.execute(
                select(ConfigStateRow.file_hash, ConfigStateRow.layout).where(
                    ConfigStateRow.id == 1
                )
            ).first()
            shared_changed = before is None or (before.file_hash, before.layout) != (
                digest,
                DIRECTORY,
            )
            generation, _ = _generation(
                connection, digest, now, text, DIRECTORY, households_changed
            )
        return generation, shared_changed

    def sync_households(self, file: RitualFile, hashes: Mapping[str, str], now: datetime) -> None:
        """Mirror the households of `file` (a ritual directory's, some of its households),
        each with its file's content hash (`hashes`, by id) and its validated self as JSON,
        the last good version a restart or a `tend web` falls back on."""
        households, partners = _rows(file, now)
        for row, household in zip(households, file.households, strict=True):
            row["config_hash"] = hashes[household.id]
            row["config_json"] = household.model_dump_json()
        ids = [h.id for h in file.households]
        with self._writing() as connection:
            stmt = dialect_insert(connection, HouseholdRow.__table__)
            connection.execute(
                stmt.on_conflict_do_update(
                    index_elements=["id"],
                    set_={
                        name: stmt.excluded[name]
                        for name in ("timezone", "active", "config_hash", "config_json")
                    }
                    | {"updated_at": now},
                ),
                households,
            )
            _upsert_partners(connection, partners)
            kept = {(p["household_id"], p["key"]) for p in partners}
            _deactivate_partners(connection, ids, kept)

    def deactivate(self, households: Sequence[str], now: datetime) -> None:
        """Households whose file is gone: inactive, and their partners (their history
        stays; a file added back makes them active again)."""
        with self._writing() as connection:
            _deactivate(connection, sorted(households), [], now)
            _deactivate_partners(connection, sorted(households), set())

    def kept(self) -> list[KeptHousehold]:
        """The active households of a ritual directory as the ledger keeps them."""
        query = select(
            HouseholdRow.id,
            HouseholdRow.timezone,
            HouseholdRow.config_hash,
            HouseholdRow.planned_hash,
        ).where(HouseholdRow.active.is_(True))
        with self._reading() as connection:
            return [KeptHousehold(*row) for row in connection.execute(query)]

    def household_configs(self, households: Sequence[str]) -> dict[str, str]:
        """The last good version (JSON) of each of these households that is active and
        has one."""
        found: dict[str, str] = {}
        with self._reading() as connection:
            for start in range(0, len(households), IN_LIST):
                rows = connection.execute(
                    select(HouseholdRow.id, HouseholdRow.config_json).where(
                        HouseholdRow.id.in_(households[start : start + IN_LIST]),
                        HouseholdRow.config_json.is_not(None),
                        HouseholdRow.active.is_(True),
                    )
                )
                found.update({row.id: row.config_json for row in rows})
        return found

    def planned(self, hashes: Mapping[str, str]) -> None:
        """Each household's plan is finished for its hash (by id)."""
        if not hashes:
            return
        with self._writing() as connection:
            connection.execute(
                update(HouseholdRow)
                .where(HouseholdRow.id == bindparam("household"))
                .values(planned_hash=bindparam("planned")),
                [{"household": k, "planned": v} for k, v in hashes.items()],
            )


def _generation(
    connection: Connection,
    digest: str,
    now: datetime,
    text: str | None,
    layout: str | None,
    force: bool,
) -> tuple[int, bool]:
    """The generation of the file hashed `digest`: a new one (kept, with `text`) unless it
    is the one synced already and not `force`d. The generation, and whether it is new."""
    state = connection.execute(
        select(ConfigStateRow.generation, ConfigStateRow.file_hash, ConfigStateRow.layout)
        .where(ConfigStateRow.id == 1)
        .with_for_update()
    ).first()
    if state is not None and (state.file_hash, state.layout) == (digest, layout) and not force:
        return state.generation, False
    generation = 1 if state is None else state.generation + 1
    values = {
        "file_hash": digest,
        "generation": generation,
        "synced_at": now,
        "file_text": text,
        "layout": layout,
    }
    if state is None:
        connection.execute(
            dialect_insert(connection, ConfigStateRow.__table__)
            .values(id=1, **values)
            .on_conflict_do_nothing()
        )
    else:
        connection.execute(update(ConfigStateRow).where(ConfigStateRow.id == 1).values(**values))
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
    _deactivate(connection, gone, gone_partners, now)


def _deactivate_partners(
    connection: Connection, households: Sequence[str], kept: set[tuple[str, str]]
) -> None:
    """The partners of these households that are not `kept`: inactive."""
    gone: list[tuple[str, str]] = []
    for start in range(0, len(households), IN_LIST):
        active = connection.execute(
            select(PartnerRow.household_id, PartnerRow.key).where(
                PartnerRow.active.is_(True),
                PartnerRow.household_id.in_(households[start : start + IN_LIST]),
            )
        )
        gone += [(h, k) for h, k in active if (h, k) not in kept]
    _deactivate(connection, [], sorted(gone), None)


def _deactivate(
    connection: Connection,
    gone: Sequence[str],
    gone_partners: Sequence[tuple[str, str]],
    now: datetime | None,
) -> None:
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
