"""The planner's reads and writes of occurrences and deliveries: what a chunk of households
already has (the snapshot the change rules judge by), the upserts of what the file makes,
and, after a change of the file, the cancellation of what it no longer makes.

The rules themselves are :mod:`scheduler.planner.rules`; this module only runs statements.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    case,
    exists,
    or_,
    select,
    text,
    true,
    tuple_,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from scheduler.ledger import fresh
from scheduler.ledger.base import Bound
from scheduler.ledger.engine import dialect_insert
from scheduler.ledger.rows import (
    MAY_HAVE_REACHED,
    SNOOZE_ROLE,
    UNINDEXED_STATUS,
    DeliveryRow,
    HouseholdRow,
    OccurrenceRow,
    PartnerRow,
)
from scheduler.ledger.synced import IN_LIST

__all__ = ["CONFIG_CANCELLED", "MAIN_ROLES", "OccurrenceKey", "Plans", "Snapshot"]

# The reason written on deliveries a file change cancelled; only these are revived when a
# later file makes them again (a delivery cancelled for another reason stays cancelled).
CONFIG_CANCELLED = "cancelled: the ritual file no longer makes this delivery"
MAIN_ROLES = ("day_of", "nudge")  # an occurrence's own message (not plan-ahead, not reminder)

#: PostgreSQL's statistics of a planned table are refreshed once it is at least this many
#: pages (8 kB) and twice its size at its last ANALYZE (or it never had one).
ANALYZE_FROM_PAGES = 16

OCCURRENCE = OccurrenceRow.__table__
DELIVERY = DeliveryRow.__table__

#: An occurrence's identity: household, ritual, local slot, recipient ("" for the couple).
OccurrenceKey = tuple[str, str, datetime, str]
Message = tuple[int, str, str]  # occurrence id, partner, role


@dataclass
class Snapshot:
    """What a chunk of households already has in the ledger, as the change rules need it."""

    #: Each occurrence's id and status, by key.
    occurrences: dict[OccurrenceKey, tuple[int, str]]
    #: Each delivery's status, by (occurrence id, partner, role, channel).
    deliveries: dict[tuple[int, str, str, str], str] = field(default_factory=dict)
    #: Messages that went out or were given up on (any channel but cancelled ones).
    settled: set[Message] = field(default_factory=set)
    #: Messages waiting unsent.
    unsent: set[Message] = field(default_factory=set)
    #: (household, ritual, local day, partner): whose main message of a ritual that day
    #: reached them (or may have: being sent).
    reached: set[tuple[str, str, date, str]] = field(default_factory=set)


def _in_chunk(household_ids: Sequence[str], earliest: datetime) -> ColumnElement[bool]:
    return and_(OccurrenceRow.household_id.in_(household_ids), OccurrenceRow.at >= earliest)


def _occurrences(connection: Connection, where: ColumnElement[bool]) -> dict[Any, Any]:
    return {
        (row.household_id, row.ritual_id, row.slot, row.recipient): (row.id, row.status)
        for row in connection.execute(
            select(
                OccurrenceRow.id,
                OccurrenceRow.status,
                OccurrenceRow.household_id,
                OccurrenceRow.ritual_id,
                OccurrenceRow.slot,
                OccurrenceRow.recipient,
            ).where(where)
        )
    }


class Plans(Bound):
    """The planner's side of occurrences and deliveries. Used inside the one transaction a
    chunk of households is planned in (see :mod:`scheduler.planner`)."""

    __slots__ = ()

    def with_occurrences(self, household_ids: Sequence[str]) -> set[str]:
        """Those of these households the ledger has any occurrence of (a plan made before)."""
        found: set[str] = set()
        with self._reading() as connection:
            for start in range(0, len(household_ids), IN_LIST):
                chunk = household_ids[start : start + IN_LIST]
                found.update(
                    connection.execute(
                        select(OccurrenceRow.household_id)
                        .where(OccurrenceRow.household_id.in_(chunk))
                        .distinct()
                    ).scalars()
                )
        return found

    def refresh_statistics(self) -> list[str]:
        """PostgreSQL: ANALYZE the occurrence and delivery tables where they grew to twice
        their size at their last ANALYZE (or never had one); return the tables analyzed.

        A first plan fills them from empty. Without statistics PostgreSQL guesses that a
        chunk's 500 households match much of the table, and reads a chunk's snapshot by a
        sequential scan that checks each row against the 500 ids, so every chunk costs more
        than the last: 12 s a chunk at 100,000 households, measured. Autovacuum, which
        would analyze them, may be off or a minute behind. Refreshed as the tables double,
        it is some twenty ANALYZEs over a whole first plan, and none once they stop growing.
        The sizes are the files' own (``pg_relation_size``), exact at once.
        """
        if self._dialect != "postgresql":
            return []
        with self._reading() as connection:
            grown = sorted(
                connection.execute(
                    text(
                        "SELECT c.relname FROM pg_class c "
                        "WHERE c.relnamespace = current_schema()::regnamespace "
                        "AND c.relname IN ('occurrence', 'delivery') "
                        "AND pg_relation_size(c.oid) > GREATEST(2 * c.relpages, :least) "
                        "* current_setting('block_size')::int"
                    ),
                    {"least": ANALYZE_FROM_PAGES},
                ).scalars()
            )
        for table in grown:
            with self._writing() as connection:
                connection.execute(text(f"ANALYZE {table}"))
        return grown

    def snapshot(self, household_ids: Sequence[str], earliest: datetime) -> Snapshot:
        """The occurrences of these households from `earliest` on, with their deliveries."""
        where = _in_chunk(household_ids, earliest)
        with self._reading() as connection:
            snapshot = Snapshot(_occurrences(connection, where))
            for found in connection.execute(
                select(
                    DeliveryRow.occurrence_id,
                    DeliveryRow.partner_key,
                    DeliveryRow.role,
                    DeliveryRow.channel,
                    DeliveryRow.status,
                    OccurrenceRow.household_id,
                    OccurrenceRow.ritual_id,
                    OccurrenceRow.slot,
                )
                .join(OccurrenceRow, OccurrenceRow.id == DeliveryRow.occurrence_id)
                .where(where)
            ):
                message = (found.occurrence_id, found.partner_key, found.role)
                snapshot.deliveries[(*message, found.channel)] = found.status
                if found.status == "pending":
                    snapshot.unsent.add(message)
                elif found.status != "cancelled":
                    snapshot.settled.add(message)
                    if found.status in MAY_HAVE_REACHED and found.role in MAIN_ROLES:
                        day = (found.household_id, found.ritual_id, found.slot.date())
                        snapshot.reached.add((*day, found.partner_key))
        return snapshot

    def occurrence_ids(
        self, household_ids: Sequence[str], earliest: datetime
    ) -> dict[OccurrenceKey, tuple[int, str]]:
        """The occurrences' ids and statuses again (after an upsert), by key."""
        with self._reading() as connection:
            return _occurrences(connection, _in_chunk(household_ids, earliest))

    def new_occurrence_ids(self, count: int) -> list[int]:
        """Ids for `count` new occurrences, in order, for :meth:`insert_new` (inside the
        planner's transaction)."""
        with self._writing() as connection:
            return fresh.new_ids(connection, fresh.OCCURRENCE, count)

    def insert_new(
        self, occurrences: Sequence[dict[str, Any]], deliveries: Sequence[dict[str, Any]]
    ) -> bool:
        """Insert the rows of a chunk whose snapshot had no occurrences: plain inserts (on
        PostgreSQL with ``COPY``), the occurrences with the ids :meth:`new_occurrence_ids`
        gave. False, with nothing written, when a key exists after all (another planner
        wrote the chunk meanwhile), or with a driver other than psycopg's or sqlite3's: the
        chunk is then planned again with the upserts."""
        with self._writing() as connection:
            if connection.dialect.name == "postgresql":
                if connection.dialect.driver != "psycopg":
                    return False  # COPY is psycopg 3's
                from psycopg.errors import UniqueViolation

                try:
                    with connection.begin_nested():
                        fresh.copy_rows(connection, fresh.OCCURRENCE, occurrences)
                        if deliveries:
                            fresh.copy_rows(connection, fresh.DELIVERY, deliveries)
                except UniqueViolation:
                    return False
                return True
            try:
                with connection.begin_nested():
                    fresh.insert_rows(connection, fresh.OCCURRENCE, occurrences)
                    if deliveries:
                        fresh.insert_rows(connection, fresh.DELIVERY, deliveries)
            except IntegrityError as error:
                if "UNIQUE" not in str(error.orig):
                    raise
                return False
            return True

    def upsert_occurrences(self, rows: Sequence[dict[str, Any]], *, changed: bool) -> None:
        """Insert occurrences; revive cancelled ones; after a change, update open ones."""
        stmt = dialect_insert(self._bind, OCCURRENCE)
        ex = stmt.excluded
        revive = OCCURRENCE.c.status == "cancelled"
        with self._writing() as connection:
            # No RETURNING: with it SQLAlchemy writes one huge multi-row INSERT per page,
            # which psycopg then parses in Python (measured: 40% slower planning on
            # PostgreSQL).
            connection.execute(
                stmt.on_conflict_do_update(
                    index_elements=["household_id", "ritual_id", "slot", "recipient"],
                    set_={
                        "status": "open",
                        "kind": ex.kind,
                        "at": ex.at,
                        "item": ex.item,
                        "deck": ex.deck,
                        "planners": ex.planners,
                        "generation": ex.generation,
                        "updated_at": ex.updated_at,
                    },
                    where=or_(revive, OCCURRENCE.c.status == "open") if changed else revive,
                ),
                rows,
            )

    def upsert_deliveries(self, rows: Sequence[dict[str, Any]], *, changed: bool) -> None:
        """Insert deliveries; revive those a file change cancelled; after a change, bring
        pending ones up to date (keeping a retry's backoff and count)."""
        stmt = dialect_insert(self._bind, DELIVERY)
        ex = stmt.excluded
        current = DELIVERY.c
        revive = and_(current.status == "cancelled", current.last_error == CONFIG_CANCELLED)
        with self._writing() as connection:
            connection.execute(
                stmt.on_conflict_do_update(
                    index_elements=["occurrence_id", "partner_key", "role", "channel"],
                    set_={
                        "status": "pending",
                        "due_at": ex.due_at,
                        # A pending delivery waiting to retry keeps its backoff and its count.
                        "next_attempt_at": case(
                            (or_(revive, current.attempts == 0), ex.next_attempt_at),
                            else_=current.next_attempt_at,
                        ),
                        "expires_at": ex.expires_at,
                        "attempts": case((revive, 0), else_=current.attempts),
                        "last_error": case((revive, None), else_=current.last_error),
                        "body": ex.body,
                        "fallback_bodies": ex.fallback_bodies,
                        "pulse": ex.pulse,
                        "subject": ex.subject,
                        "generation": ex.generation,
                        "updated_at": ex.updated_at,
                    },
                    where=or_(revive, current.status == "pending") if changed else revive,
                ),
                rows,
            )

    def keep(self, occurrence_ids: Sequence[int], now: datetime, generation: int) -> None:
        """Mark these occurrences (those still to come, or with a message still inside its
        grace) and their pending deliveries as planned by `generation`."""
        still_sendable = exists().where(
            DeliveryRow.occurrence_id == OccurrenceRow.id,
            UNINDEXED_STATUS == "pending",
            DeliveryRow.expires_at >= now,
        )
        future = and_(
            OccurrenceRow.id.in_(occurrence_ids),
            or_(OccurrenceRow.at >= now, still_sendable),
        )
        with self._writing() as connection:
            connection.execute(update(OccurrenceRow).where(future).values(generation=generation))
            connection.execute(
                update(DeliveryRow)
                .where(
                    DeliveryRow.occurrence_id.in_(select(OccurrenceRow.id).where(future)),
                    UNINDEXED_STATUS == "pending",
                )
                .values(generation=generation)
            )

    def unfinished(
        self, ritual_ids: Sequence[str], since: datetime, now: datetime, generation: int
    ) -> bool:
        """Whether an older generation's work is still live: a finished change leaves none."""
        stale = or_(
            exists().where(
                OccurrenceRow.at >= since,
                OccurrenceRow.generation < generation,
                OccurrenceRow.status == "open",
                or_(OccurrenceRow.at >= now, OccurrenceRow.ritual_id.not_in(ritual_ids)),
            ),
            exists().where(
                DeliveryRow.generation < generation,
                DeliveryRow.status == "pending",
                DeliveryRow.occurrence_id.is_not(None),  # a TELL is the partner's
                DeliveryRow.fallback_of.is_(None),
                DeliveryRow.role.not_like(f"{SNOOZE_ROLE}%"),
                DeliveryRow.expires_at >= now,
            ),
        )
        with self._reading() as connection:
            return bool(connection.execute(select(stale)).scalar())

    def cancel_stale(
        self,
        *,
        rituals: Sequence[tuple[str, Sequence[str] | None]],
        since: datetime,
        now: datetime,
        generation: int,
        households: Sequence[str] | None,
    ) -> int:
        """After a change: cancel what the new generation did not plan again; return how
        many deliveries.

        Every pending delivery the new file still makes was just written with the new
        generation, so an older one still pending is not made any more. A fallback
        delivery (the dispatcher moved a delivery to the partner's next channel) is not the
        planner's to judge: it is kept unless its ritual, household or partner is gone.
        Deliveries already past their grace are left to be marked missed. `rituals`: each
        ritual's id and the households it is limited to (None: all); `since`: how far back
        the planner reaches.
        """
        ritual_ids = [r for r, _ in rituals]
        # Rituals gone from the file, or no longer for this household (`households = [...]`).
        gone = or_(
            OccurrenceRow.ritual_id.not_in(ritual_ids),
            *(
                and_(OccurrenceRow.ritual_id == r, OccurrenceRow.household_id.not_in(only))
                for r, only in rituals
                if only is not None
            ),
        )
        with self._writing() as connection:
            cancelled = _cancel_deliveries(connection, gone, now, generation, households)
            _cancel_occurrences(connection, gone, since, now, generation, households)
        return cancelled


def _cancel_deliveries(
    connection: Connection,
    gone: ColumnElement[bool],
    now: datetime,
    generation: int,
    households: Sequence[str] | None,
) -> int:
    scope = DeliveryRow.household_id.in_(households) if households else true()
    gone_partners = select(PartnerRow.household_id, PartnerRow.key).where(
        PartnerRow.active.is_(False)
    )
    # A few households (a ritual directory's edit): found by their own index.
    status = DeliveryRow.status if not households else UNINDEXED_STATUS
    result = connection.execute(
        update(DeliveryRow)
        .where(
            scope,
            status == "pending",  # few rows: the horizon's, and the overdue
            DeliveryRow.generation < generation,
            or_(
                # Not made again; the expired are left to be marked missed. A snoozed nudge
                # and a TELL are the partner's, not the file's: kept.
                and_(
                    DeliveryRow.occurrence_id.is_not(None),
                    DeliveryRow.fallback_of.is_(None),
                    DeliveryRow.role.not_like(f"{SNOOZE_ROLE}%"),
                    DeliveryRow.expires_at >= now,
                ),
                # Correlated, not `IN (SELECT ...)`: SQLite would read every occurrence for
                # it (seconds at 2 million), where a few pending deliveries are in scope.
                exists().where(OccurrenceRow.id == DeliveryRow.occurrence_id, gone),
                DeliveryRow.household_id.in_(
                    select(HouseholdRow.id).where(HouseholdRow.active.is_(False))
                ),
                tuple_(DeliveryRow.household_id, DeliveryRow.partner_key).in_(gone_partners),
            ),
        )
        .values(status="cancelled", last_error=CONFIG_CANCELLED, updated_at=now)
    )
    return int(result.rowcount or 0)


def _cancel_occurrences(
    connection: Connection,
    gone: ColumnElement[bool],
    since: datetime,
    now: datetime,
    generation: int,
    households: Sequence[str] | None,
) -> None:
    """An occurrence goes with its deliveries: cancelled when the file no longer makes it
    and it is still to come, or its ritual is gone, or everything it would have sent was
    just cancelled (one that reached someone stays open for their reply)."""
    scope = OccurrenceRow.household_id.in_(households) if households else true()
    mine = DeliveryRow.occurrence_id == OccurrenceRow.id
    connection.execute(
        update(OccurrenceRow)
        .where(
            scope,
            OccurrenceRow.at >= since,  # the planner's reach: older ones stay
            OccurrenceRow.generation < generation,
            OccurrenceRow.status == "open",
            or_(
                OccurrenceRow.at >= now,
                gone,
                and_(
                    exists().where(mine, DeliveryRow.last_error == CONFIG_CANCELLED),
                    ~exists().where(mine, DeliveryRow.status != "cancelled"),
                ),
            ),
        )
        .values(status="cancelled", updated_at=now)
    )
