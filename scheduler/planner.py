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
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    and_,
    case,
    exists,
    func,
    or_,
    select,
    true,
    tuple_,
    update,
)

from config.loader import RitualFileError, parse_ritual_file
from config.model import RitualFile
from rituals.planning import Plan
from scheduler.ledger.engine import dialect_insert
from scheduler.ledger.rows import (
    SNOOZE_ROLE,
    ConfigStateRow,
    DeliveryRow,
    HouseholdRow,
    OccurrenceRow,
    PartnerRow,
)

__all__ = [
    "CONFIG_CANCELLED",
    "DEFAULT_HORIZON_DAYS",
    "PlanReport",
    "SyncResult",
    "SyncedFile",
    "file_hash",
    "last_good_file",
    "plan_horizon",
    "sync_file",
]

log = logging.getLogger(__name__)

DEFAULT_HORIZON_DAYS = 14
# The reason written on deliveries a file change cancelled; only these are revived when a
# later file makes them again (a delivery cancelled for another reason stays cancelled).
CONFIG_CANCELLED = "cancelled: the ritual file no longer makes this delivery"
CHUNK = 500  # households per transaction while planning
IN_LIST = 500  # values per `IN (...)`: far under any database's limit on bound parameters
REACHED = ("sending", "sent", "delivered")  # a delivery that (may have) reached its partner
MAIN_ROLES = ("day_of", "nudge")  # an occurrence's own message (not plan-ahead, not reminder)

OCCURRENCE = OccurrenceRow.__table__
DELIVERY = DeliveryRow.__table__


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


def sync_file(
    engine: Engine, file: RitualFile, now: datetime, *, text: str | None = None
) -> SyncResult:
    """Mirror the file's households and partners; count a generation when the file changed.

    `text`, the TOML as written, is kept as the last good file (see :func:`last_good_file`).
    """
    digest = file_hash(file)
    with engine.begin() as connection:
        state = connection.execute(
            select(ConfigStateRow.generation, ConfigStateRow.file_hash)
            .where(ConfigStateRow.id == 1)
            .with_for_update()
        ).first()
        if state is not None and state.file_hash == digest:
            return SyncResult(state.generation, changed=False)
        generation = 1 if state is None else state.generation + 1
        if state is None:
            connection.execute(
                dialect_insert(connection, ConfigStateRow.__table__)
                .values(
                    id=1, file_hash=digest, generation=generation, synced_at=now, file_text=text
                )
                .on_conflict_do_nothing()
            )
        else:
            connection.execute(
                update(ConfigStateRow)
                .where(ConfigStateRow.id == 1)
                .values(file_hash=digest, generation=generation, synced_at=now, file_text=text)
            )
        _mirror(connection, file, now)
    log.info("ritual file generation %d synced", generation)
    return SyncResult(generation, changed=True)


def last_good_file(engine: Engine) -> tuple[str, datetime] | None:
    """The text of the last ritual file the ledger synced, and when; None if there is none."""
    with engine.connect() as connection:
        row = connection.execute(
            select(ConfigStateRow.file_text, ConfigStateRow.synced_at).where(ConfigStateRow.id == 1)
        ).first()
    if row is None or not row.file_text:
        return None
    return row.file_text, row.synced_at


class SyncedFile:
    """The ritual file the worker last synced, for the web process: replies need the same
    rules (reply windows, freezes, who is in a household) that the plan was made from.

    Parsed once per generation, and the generation looked up at most every `ttl`; before any
    worker has synced, `fallback` (the file on disk, when there is one).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        fallback: RitualFile | None = None,
        ttl: timedelta = timedelta(seconds=5),
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.engine = engine
        self.fallback = fallback
        self.ttl = ttl
        self._clock = clock or (lambda: datetime.now(UTC))
        self._lock = threading.Lock()
        self._checked: datetime | None = None
        self._generation: int | None = None
        self._file: RitualFile | None = None

    def __call__(self) -> RitualFile | None:
        now = self._clock()
        with self._lock:
            if self._checked is not None and now - self._checked < self.ttl:
                return self._file or self.fallback
            self._checked = now
            with self.engine.connect() as connection:
                row = connection.execute(
                    select(
                        ConfigStateRow.generation,
                        ConfigStateRow.file_text,
                        ConfigStateRow.synced_at,
                    ).where(ConfigStateRow.id == 1)
                ).first()
            if row is None or not row.file_text:
                return self.fallback
            if row.generation != self._generation:
                self._generation = row.generation  # tried once per generation
                try:
                    # Judged as of its sync: a check that depends on the day (a ritual that
                    # has ended) must not turn a file the worker accepted into a bad one.
                    parsed = parse_ritual_file(
                        row.file_text, name="ledger", today=row.synced_at
                    ).file
                except RitualFileError:
                    log.error("the ritual file in the ledger does not validate; using the last one")
                else:
                    self._file = parsed
            return self._file or self.fallback


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
    stmt = dialect_insert(connection, HouseholdRow.__table__)
    connection.execute(
        stmt.on_conflict_do_update(
            index_elements=["id"],
            set_={"timezone": stmt.excluded.timezone, "active": True, "updated_at": now},
        ),
        households,
    )
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
    connection.execute(
        stmt.on_conflict_do_update(
            index_elements=["household_id", "key"],
            set_={
                **opt_outs,  # SET reads the old row: the old address against the new
                **{
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
            },
        ),
        partners,
    )
    # Households and partners gone from the file: found by difference here, not by
    # `NOT IN (every id in the file)`, which is one bound parameter per household (more than
    # PostgreSQL's 65,535 at 100,000 households), or a statement per household.
    in_file = {h.id for h in file.households}
    gone = sorted(
        set(
            connection.execute(
                select(HouseholdRow.id).where(HouseholdRow.active.is_(True))
            ).scalars()
        )
        - in_file
    )
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
    file now says and pending deliveries it no longer makes are cancelled.
    """
    file = plan.file
    if not changed:
        # A change whose planning failed part way (a crash, a lost database) is finished now:
        # otherwise no later run would update or cancel what the old file planned.
        with engine.connect() as connection:
            changed = _unfinished(connection, file, now, generation)
    chosen = [h for h in file.households if households is None or h.id in households]
    occurrences = deliveries = 0
    for start in range(0, len(chosen), CHUNK):
        chunk = [h.id for h in chosen[start : start + CHUNK]]
        # Computed before the transaction: on SQLite it holds the write lock.
        candidates = _candidates(plan, chunk, now, generation, days)
        if not candidates:
            continue
        with engine.begin() as connection:
            o, d = _write_chunk(connection, chunk, candidates, now, generation, changed)
        occurrences += o
        deliveries += d
    cancelled = 0
    if changed:
        with engine.begin() as connection:
            cancelled = _cancel_stale(connection, file, now, generation, households)
        if cancelled:
            log.info("cancelled %d pending deliveries the ritual file no longer makes", cancelled)
    return PlanReport(occurrences, deliveries, cancelled, generation)


@dataclass
class _Candidate:
    key: tuple[str, str, datetime, str]
    row: dict[str, Any]
    deliveries: list[dict[str, Any]]
    main_in_time: bool  # the day-of message or nudge can still be sent in its grace


def _candidates(
    plan: Plan, household_ids: Sequence[str], now: datetime, generation: int, days: int
) -> list[_Candidate]:
    """What the file makes for these households, pure: rows not yet written."""
    found = []
    for household_id in household_ids:
        zone = plan.zone_of(household_id)
        for ritual in plan.rituals_for(household_id):
            # Back far enough to see again every occurrence with a delivery still pending:
            # its follow-up (after `remind_after`, maybe moved a day by quiet hours) can be
            # due until its grace runs out.
            back = ritual.grace + (ritual.remind_after or timedelta()) + timedelta(days=1)
            first = (now - back).astimezone(zone).date() - timedelta(days=1)
            ahead = ritual.plan_ahead.days + 1 if ritual.plan_ahead else 0
            # One day more than asked: an hourly plan must reach past the next midnight.
            after = now.astimezone(zone).date() + timedelta(days=days + 1 + ahead)
            for occurrence in plan.occurrences(household_id, ritual, first, after):
                rows = []
                main_in_time = False
                # Those past their grace were never planned in time to be sent: not planned.
                for delivery in plan.deliveries(occurrence, expired_before=now):
                    expires = delivery.due_at + ritual.grace
                    main_in_time |= delivery.role in ("day_of", "nudge")
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
                recipient = occurrence.recipient or ""
                found.append(
                    _Candidate(
                        key=(household_id, ritual.id, occurrence.slot, recipient),
                        row={
                            "household_id": household_id,
                            "ritual_id": ritual.id,
                            "slot": occurrence.slot,
                            "recipient": recipient,
                            "kind": occurrence.kind,
                            "at": occurrence.at,
                            "status": "open",
                            "item": occurrence.item,
                            "planners": ",".join(occurrence.planners),
                            "generation": generation,
                            "created_at": now,
                            "updated_at": now,
                        },
                        deliveries=rows,
                        main_in_time=main_in_time,
                    )
                )
    return found


def _write_chunk(
    connection: Connection,
    household_ids: Sequence[str],
    candidates: Sequence[_Candidate],
    now: datetime,
    generation: int,
    changed: bool,
) -> tuple[int, int]:
    # Looked up by key; `at` only narrows the search. A row the upsert leaves alone (confirmed,
    # skipped) keeps the instant of an earlier file, and a changed zone moves a slot's instant
    # by up to 26 hours (UTC-12 to UTC+14): look that much further back.
    earliest = min(c.row["at"] for c in candidates) - timedelta(days=2)
    in_chunk = and_(OccurrenceRow.household_id.in_(household_ids), OccurrenceRow.at >= earliest)

    def existing() -> dict[tuple[str, str, datetime, str], tuple[int, str]]:
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
                ).where(in_chunk)
            )
        }

    before = existing()
    # What this chunk already has: each delivery's status; which messages (occurrence,
    # partner, role) went out or were given up on, and which wait unsent; and, per partner
    # and local day, whose main message of a ritual (day-of or nudge) reached them.
    known: dict[tuple[int, str, str, str], str] = {}
    settled: set[tuple[int, str, str]] = set()
    unsent: set[tuple[int, str, str]] = set()
    reached: set[tuple[str, str, date, str]] = set()
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
        .where(in_chunk)
    ):
        message = (found.occurrence_id, found.partner_key, found.role)
        known[(*message, found.channel)] = found.status
        if found.status == "pending":
            unsent.add(message)
        elif found.status != "cancelled":
            settled.add(message)
            if found.status in REACHED and found.role in MAIN_ROLES:
                day = (found.household_id, found.ritual_id, found.slot.date())
                reached.add((*day, found.partner_key))

    # Nothing new is made in the past once the ledger has planned before (and nothing
    # cancelled in the past is revived): a ritual added at 19:30 starts with its next slot,
    # a partner added at noon does not get the morning's messages late, and a change undone
    # does not send again what went out meanwhile. The first plan of a new ledger does make
    # what is still inside its grace (DESIGN.md: late by at most grace is sent), provided the
    # occurrence's own message is among it.
    first_plan = generation <= 1
    # A day whose occurrence the couple skipped or confirmed is settled: a ritual moved to
    # another time that day makes no new occurrence (a skip would come back and break the
    # streak; a DONE would be asked for again).
    settled_days = {
        (household, ritual, slot.date(), recipient)
        for (household, ritual, slot, recipient), (_, status) in before.items()
        if status in ("skipped", "confirmed")
    }
    chosen: list[_Candidate] = []
    lost_days: set[tuple[str, str, date, str]] = set()
    for candidate in candidates:
        status = before.get(candidate.key, (0, None))[1]
        if status is not None and status != "cancelled":
            chosen.append(candidate)
            continue
        household, ritual, slot, recipient = candidate.key
        if (household, ritual, slot.date(), recipient) in settled_days:
            continue  # that day's occurrence was skipped or done at its old time
        if candidate.row["at"] < now and not (first_plan and candidate.main_in_time):
            lost_days.add((household, ritual, slot.date(), recipient))
            continue
        # A ritual moved on a day whose message already reached a partner is not sent to
        # them again that day (to whom it did not reach yet, it still goes).
        keep = [
            d
            for d in candidate.deliveries
            if (household, ritual, slot.date(), d["partner_key"]) not in reached
        ]
        if any(d["role"] in MAIN_ROLES for d in keep) or not any(
            d["role"] in MAIN_ROLES for d in candidate.deliveries
        ):
            chosen.append(replace(candidate, deliveries=keep))
    if changed and lost_days:
        _keep_days(connection, before, candidates, lost_days, now, generation)
    if not chosen:
        return 0, 0

    # Unless the file changed, a row that exists and is not cancelled would be left as it
    # is by the upsert below: not sent at all (the hourly re-plan then writes only what is
    # new). A cancelled one may be revived, so it goes.
    upserted = [
        c.row for c in chosen if changed or before.get(c.key, (0, "cancelled"))[1] == "cancelled"
    ]
    if upserted:
        stmt = dialect_insert(connection, OCCURRENCE)
        ex = stmt.excluded
        revive = OCCURRENCE.c.status == "cancelled"
        # No RETURNING: with it SQLAlchemy writes one huge multi-row INSERT per page, which
        # psycopg then parses in Python (measured: 40% slower planning on PostgreSQL).
        connection.execute(
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
            ),
            upserted,
        )
    ids = existing() if upserted else before
    written = sum(
        1 for c in chosen if c.key not in before or before[c.key][1] == "cancelled" or changed
    )
    delivery_rows = []
    for candidate in chosen:
        occurrence_id = ids[candidate.key][0]
        for made in candidate.deliveries:
            message = (occurrence_id, made["partner_key"], made["role"])
            status = known.get((*message, made["channel"]))
            if status is None or status == "cancelled":  # a new row, or one to revive
                if message in settled:
                    continue  # sent already (by the channel the partner preferred then)
                if made["due_at"] < now and not first_plan and message not in unsent:
                    continue  # overdue; unless it moves an unsent one to another channel
            elif not changed:
                continue  # the upsert would leave it as it is (see above)
            delivery_rows.append({**made, "occurrence_id": occurrence_id})
    if not delivery_rows:
        return written, 0
    stmt = dialect_insert(connection, DELIVERY)
    ex = stmt.excluded
    current = DELIVERY.c
    revive = and_(current.status == "cancelled", current.last_error == CONFIG_CANCELLED)
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
                "subject": ex.subject,
                "generation": ex.generation,
                "updated_at": ex.updated_at,
            },
            where=or_(revive, current.status == "pending") if changed else revive,
        ),
        delivery_rows,
    )
    # Rows inserted, revived, or (after a change) brought up to date: new work to announce.
    delivered = 0
    for row in delivery_rows:
        status = known.get((row["occurrence_id"], row["partner_key"], row["role"], row["channel"]))
        if status is None or status == "cancelled" or (changed and status == "pending"):
            delivered += 1
    return written, delivered


def _keep_days(
    connection: Connection,
    before: dict[tuple[str, str, datetime, str], tuple[int, str]],
    candidates: Sequence[_Candidate],
    lost_days: set[tuple[str, str, date, str]],
    now: datetime,
    generation: int,
) -> None:
    """A change whose new slot for a day is already past (a random draw moved by new quiet
    hours, a ritual moved earlier than now) keeps the day's old slot rather than losing the
    day, when that slot is still to come or still has a message inside its grace (due a
    moment ago, not sent yet): it is marked as planned by this generation, so not cancelled."""
    made = {c.key for c in candidates}
    keep = [
        occurrence_id
        for (household, ritual, slot, recipient), (occurrence_id, status) in before.items()
        if status == "open"
        and (household, ritual, slot.date(), recipient) in lost_days
        and (household, ritual, slot, recipient) not in made
    ]
    if not keep:
        return
    still_sendable = exists().where(
        DeliveryRow.occurrence_id == OccurrenceRow.id,
        DeliveryRow.status == "pending",
        DeliveryRow.expires_at >= now,
    )
    future = and_(OccurrenceRow.id.in_(keep), or_(OccurrenceRow.at >= now, still_sendable))
    connection.execute(update(OccurrenceRow).where(future).values(generation=generation))
    connection.execute(
        update(DeliveryRow)
        .where(
            DeliveryRow.occurrence_id.in_(select(OccurrenceRow.id).where(future)),
            DeliveryRow.status == "pending",
        )
        .values(generation=generation)
    )


def _unfinished(connection: Connection, file: RitualFile, now: datetime, generation: int) -> bool:
    """Whether an older generation's work is still live: a finished change leaves none."""
    ritual_ids = [r.id for r in file.rituals]
    stale = or_(
        exists().where(
            OccurrenceRow.at >= _lookback(file, now),
            OccurrenceRow.generation < generation,
            OccurrenceRow.status == "open",
            or_(OccurrenceRow.at >= now, OccurrenceRow.ritual_id.not_in(ritual_ids)),
        ),
        exists().where(
            DeliveryRow.generation < generation,
            DeliveryRow.status == "pending",
            DeliveryRow.fallback_of.is_(None),
            DeliveryRow.role.not_like(f"{SNOOZE_ROLE}%"),
            DeliveryRow.expires_at >= now,
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
    """After a change: cancel what the new generation did not plan again.

    Every pending delivery the new file still makes was just written with the new
    generation, so an older one still pending is not made any more. A fallback delivery (the
    dispatcher moved a delivery to the partner's next channel) is not the planner's to
    judge: it is kept unless its ritual, household or partner is gone. Deliveries already
    past their grace are left to be marked missed.
    """
    occurrence_scope = OccurrenceRow.household_id.in_(households) if households else true()
    delivery_scope = DeliveryRow.household_id.in_(households) if households else true()
    ritual_ids = [r.id for r in file.rituals]
    # Rituals gone from the file, or no longer for this household (`households = [...]`).
    gone = or_(
        OccurrenceRow.ritual_id.not_in(ritual_ids),
        *(
            and_(OccurrenceRow.ritual_id == r.id, OccurrenceRow.household_id.not_in(r.households))
            for r in file.rituals
            if r.households is not None
        ),
    )
    gone_partners = select(PartnerRow.household_id, PartnerRow.key).where(
        PartnerRow.active.is_(False)
    )
    result = connection.execute(
        update(DeliveryRow)
        .where(
            delivery_scope,
            DeliveryRow.status == "pending",  # few rows: the horizon's, and the overdue
            DeliveryRow.generation < generation,
            or_(
                # Not made again; the expired are left to be marked missed. A snoozed
                # nudge is the partner's, not the file's: kept.
                and_(
                    DeliveryRow.fallback_of.is_(None),
                    DeliveryRow.role.not_like(f"{SNOOZE_ROLE}%"),
                    DeliveryRow.expires_at >= now,
                ),
                DeliveryRow.occurrence_id.in_(select(OccurrenceRow.id).where(gone)),
                DeliveryRow.household_id.in_(
                    select(HouseholdRow.id).where(HouseholdRow.active.is_(False))
                ),
                tuple_(DeliveryRow.household_id, DeliveryRow.partner_key).in_(gone_partners),
            ),
        )
        .values(status="cancelled", last_error=CONFIG_CANCELLED, updated_at=now)
    )
    # An occurrence goes with its deliveries: cancelled when the file no longer makes it and
    # it is still to come, or its ritual is gone, or everything it would have sent was just
    # cancelled (one that reached someone stays open for their reply).
    mine = DeliveryRow.occurrence_id == OccurrenceRow.id
    connection.execute(
        update(OccurrenceRow)
        .where(
            occurrence_scope,
            OccurrenceRow.at >= _lookback(file, now),  # the planner's reach: older ones stay
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
    return int(result.rowcount or 0)


def _lookback(file: RitualFile, now: datetime) -> datetime:
    """How far back a plan reaches: an occurrence older than this has nothing left to send."""
    longest = max(
        (r.grace + (r.remind_after or timedelta()) for r in file.rituals), default=timedelta()
    )
    return now - longest - timedelta(days=2)
