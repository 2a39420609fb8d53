"""What streaks read from the ledger (a household's due occurrences with their completions,
its pauses, the checkpoints folded over settled history) and the checkpoints they write.

The maths is :mod:`rituals.streaks`'; :mod:`scheduler.reports.streaks` puts the two together.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, Select, bindparam, delete, func, or_, select, type_coerce
from sqlalchemy.dialects import postgresql, sqlite

from rituals.streaks import Entry, Pause
from scheduler.ledger.base import Bound
from scheduler.ledger.rows import (
    REACHED,
    CompletionRow,
    DeliveryRow,
    HouseholdRow,
    OccurrenceRow,
    PauseRow,
    StreakCheckpointRow,
    UTCDateTime,
)

__all__ = ["Checkpoint", "Streaks", "forget_settled"]


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A streak's state folded over its settled history, as stored."""

    ritual: str
    recipient: str  # "" for the couple
    rules: str  # the fingerprint of the rules it was folded with
    state: str  # rituals.streaks.State as JSON


def _entries_statement() -> Select[Any]:
    """One statement for a household's due occurrences and their completions (one row per
    completion, or one without), built once: the streak's hot path."""
    # MAX() of the column, typed as the column: an aware UTC instant, like the others.
    reached = type_coerce(
        select(func.max(DeliveryRow.sent_at))
        .where(DeliveryRow.occurrence_id == OccurrenceRow.id, DeliveryRow.status.in_(REACHED))
        .scalar_subquery(),
        UTCDateTime(),
    )
    return (
        select(
            OccurrenceRow.id,
            OccurrenceRow.ritual_id,
            OccurrenceRow.recipient,
            OccurrenceRow.slot,
            OccurrenceRow.at,
            reached.label("reached_at"),
            CompletionRow.partner_key,
            CompletionRow.action,
            CompletionRow.froze,
        )
        .outerjoin(CompletionRow, CompletionRow.occurrence_id == OccurrenceRow.id)
        .where(
            OccurrenceRow.household_id == bindparam("household"),
            OccurrenceRow.at >= bindparam("since"),
            # Due; or skipped ahead (next Friday's date night: its freeze is taken now); or
            # asked for (a DONE a few minutes early).
            or_(
                OccurrenceRow.at <= bindparam("now"),
                OccurrenceRow.status == "skipped",
                OccurrenceRow.id.in_(bindparam("include", expanding=True)),
            ),
            OccurrenceRow.status != "cancelled",
        )
        .order_by(OccurrenceRow.at, OccurrenceRow.id)
    )


_ENTRIES = _entries_statement()
_ZONE = select(HouseholdRow.timezone).where(HouseholdRow.id == bindparam("household"))
_PAUSES = select(PauseRow.starts_at, PauseRow.ends_at).where(
    PauseRow.household_id == bindparam("household")
)
_CHECKPOINTS = select(
    StreakCheckpointRow.ritual_id,
    StreakCheckpointRow.recipient,
    StreakCheckpointRow.rules,
    StreakCheckpointRow.state,
).where(StreakCheckpointRow.household_id == bindparam("household"))
_FORGET = delete(StreakCheckpointRow).where(
    StreakCheckpointRow.household_id == bindparam("household"),
    StreakCheckpointRow.ritual_id == bindparam("ritual"),
    StreakCheckpointRow.recipient == bindparam("recipient"),
    StreakCheckpointRow.through > bindparam("at"),
)


@lru_cache(maxsize=4)
def _upsert_checkpoint(dialect: str) -> Any:
    """The checkpoint's upsert for a database (by its dialect's name), built once."""
    table: Any = StreakCheckpointRow.__table__
    stmt = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    return stmt.on_conflict_do_update(
        index_elements=["household_id", "ritual_id", "recipient"],
        set_={k: stmt.excluded[k] for k in ("rules", "through", "state", "updated_at")},
    )


class Streaks(Bound):
    """The reads and writes behind a household's streaks."""

    __slots__ = ()

    def zone(self, household: str) -> str | None:
        """The household's zone as the ledger has it; None for a household it does not know."""
        with self._reading() as connection:
            found: str | None = connection.execute(
                _ZONE, {"household": household}
            ).scalar_one_or_none()
            return found

    def pauses(self, household: str) -> list[Pause]:
        with self._reading() as connection:
            rows = connection.execute(_PAUSES, {"household": household})
            return [Pause(row.starts_at, row.ends_at) for row in rows]

    def checkpoints(self, household: str) -> list[Checkpoint]:
        with self._reading() as connection:
            return [
                Checkpoint(row.ritual_id, row.recipient, row.rules, row.state)
                for row in connection.execute(_CHECKPOINTS, {"household": household})
            ]

    def save_checkpoint(
        self,
        household: str,
        ritual: str,
        recipient: str,
        fingerprint: str,
        *,
        through: datetime,
        state: str,
        now: datetime,
    ) -> None:
        with self._writing() as connection:
            connection.execute(
                _upsert_checkpoint(connection.dialect.name),
                {
                    "household_id": household,
                    "ritual_id": ritual,
                    "recipient": recipient,
                    "rules": fingerprint,
                    "through": through,
                    "state": state,
                    "updated_at": now,
                },
            )

    def entries(
        self, household: str, since: datetime, now: datetime, include: Collection[int]
    ) -> dict[tuple[str, str], list[tuple[int, Entry]]]:
        """The household's due occurrences from `since`, per (ritual, recipient), by time."""
        with self._reading() as connection:
            rows = connection.execute(
                _ENTRIES,
                {"household": household, "since": since, "now": now, "include": list(include)},
            ).all()
        confirmed: dict[int, set[str]] = defaultdict(set)
        skipped: set[int] = set()
        froze: set[int] = set()
        for row in rows:
            if row.action == "confirm":
                confirmed[row.id].add(row.partner_key)
            elif row.action == "skip":
                skipped.add(row.id)
                if row.froze:
                    froze.add(row.id)
        found: dict[tuple[str, str], list[tuple[int, Entry]]] = defaultdict(list)
        last = None
        for row in rows:
            if row.id == last:
                continue  # the same occurrence again, with its next completion
            last = row.id
            found[(row.ritual_id, row.recipient)].append(
                (
                    row.id,
                    Entry(
                        slot=row.slot,
                        at=row.at,
                        confirmed_by=frozenset(confirmed.get(row.id, ())),
                        skipped=row.id in skipped,
                        froze=row.id in froze,
                        reached_at=row.reached_at,
                    ),
                )
            )
        return found

    def forget_settled(self, household: str, ritual: str, recipient: str, at: datetime) -> None:
        with self._writing() as connection:
            forget_settled(connection, household, ritual, recipient, at)


def forget_settled(
    connection: Connection, household: str, ritual: str, recipient: str, at: datetime
) -> None:
    """An occurrence due at `at` changed (a confirmation, a skip): a checkpoint that had
    already settled it is thrown away, to be folded again. Used inside a completion's own
    transaction, hence on a connection."""
    connection.execute(
        _FORGET,
        {"household": household, "ritual": ritual, "recipient": recipient, "at": at},
    )
