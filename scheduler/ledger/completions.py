"""What a partner did about an occurrence: confirmed it (a DONE text, the e-mail's confirm
link, ``tend reply``) or skipped it (SKIP); and the household's pauses (PAUSE 2w, RESUME),
which decide whether a skip needs a freeze."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import Connection, bindparam, exists, func, insert, select, update

from scheduler.ledger.base import Bound
from scheduler.ledger.rows import (
    UNINDEXED_STATUS,
    CompletionRow,
    DeliveryRow,
    HouseholdRow,
    OccurrenceRow,
    PartnerRow,
    PauseRow,
)
from scheduler.ledger.streaks import forget_settled

__all__ = ["Completions", "Confirmed", "Skipped"]

# "open": what look_before_confirming says when confirm would record (confirm never does).
Outcome = Literal["confirmed", "open", "already", "unknown", "cancelled"]


@dataclass(frozen=True, slots=True)
class Confirmed:
    outcome: Outcome
    ritual: str | None = None
    slot: datetime | None = None  # the occurrence's local wall-clock time (naive)
    confirmed_by: frozenset[str] = field(default_factory=frozenset)  # everyone, after this


def _locked(
    connection: Connection, household: str, occurrence: int
) -> tuple[str, datetime, str, str, datetime] | None:
    """Ritual, slot, status, recipient and instant of the occurrence, its row locked first
    (PostgreSQL), so two replies at once record one row."""
    found = connection.execute(
        _LOCKED, {"occurrence": occurrence, "household": household}
    ).one_or_none()
    return None if found is None else tuple(found)


def _known(connection: Connection, household: str, partner: str) -> bool:
    return bool(
        connection.execute(_KNOWN, {"household": household, "partner": partner}).scalar_one()
    )


def _by(connection: Connection, occurrence: int, action: str) -> frozenset[str]:
    return frozenset(
        connection.execute(_BY, {"occurrence": occurrence, "action": action}).scalars()
    )


# Built once: a reply's statements (a DONE runs each of these) cost more to build and to
# find in SQLAlchemy's cache than to run, measured in bench/webhook.py.
_LOCKED = (
    select(
        OccurrenceRow.ritual_id,
        OccurrenceRow.slot,
        OccurrenceRow.status,
        OccurrenceRow.recipient,
        OccurrenceRow.at,
    )
    .where(
        OccurrenceRow.id == bindparam("occurrence"),
        OccurrenceRow.household_id == bindparam("household"),
    )
    .with_for_update()
)
_FOUND = select(OccurrenceRow.ritual_id, OccurrenceRow.slot, OccurrenceRow.status).where(
    OccurrenceRow.id == bindparam("occurrence"),
    OccurrenceRow.household_id == bindparam("household"),
)
_KNOWN = (
    select(func.count())
    .select_from(PartnerRow)
    .where(
        PartnerRow.household_id == bindparam("household"), PartnerRow.key == bindparam("partner")
    )
)
_BY = select(CompletionRow.partner_key).where(
    CompletionRow.occurrence_id == bindparam("occurrence"),
    CompletionRow.action == bindparam("action"),
)
_RECORD = insert(CompletionRow)
_CONFIRMED = (
    update(OccurrenceRow)
    .where(OccurrenceRow.id == bindparam("occurrence"), OccurrenceRow.status != "confirmed")
    .values(status="confirmed", updated_at=bindparam("now"))
)


def _confirm(
    connection: Connection,
    *,
    household: str,
    occurrence: int,
    partner: str,
    at: datetime,
    source: str,
    raw_text: str | None = None,
    needs: Collection[str] = (),
) -> Confirmed:
    """Record that `partner` of `household` did `occurrence`, once.

    The occurrence becomes ``confirmed`` when everyone in `needs` has confirmed it (a
    ``streak = "both"`` ritual), or at the first confirmation when `needs` is empty.
    ``unknown``: no such occurrence in that household, or no such partner; ``cancelled``:
    the ritual was called off, nothing recorded; ``already``: this partner had confirmed it.
    """
    found = _locked(connection, household, occurrence)
    if found is None or not _known(connection, household, partner):
        return Confirmed("unknown")
    ritual, slot, status, recipient, due = found
    if status == "cancelled":
        return Confirmed("cancelled", ritual, slot)
    before = _by(connection, occurrence, "confirm")
    if partner in before:
        return Confirmed("already", ritual, slot, before)
    connection.execute(
        _RECORD,
        {
            "occurrence_id": occurrence,
            "partner_key": partner,
            "action": "confirm",
            "at": at,
            "source": source,
            "raw_text": raw_text,
        },
    )
    everyone = before | {partner}
    if set(needs) <= everyone:
        connection.execute(_CONFIRMED, {"occurrence": occurrence, "now": at})
    forget_settled(connection, household, ritual, recipient, due)
    return Confirmed("confirmed", ritual, slot, everyone)


def _look_before_confirming(
    connection: Connection, *, household: str, occurrence: int, partner: str
) -> Confirmed:
    """What :func:`confirm` would answer now, reading only (nothing locked, nothing written):
    the page a confirm link opens on, which link scanners fetch too. ``open``: it would
    record this partner's confirmation; the other outcomes as :func:`confirm` gives them."""
    found = connection.execute(
        _FOUND, {"occurrence": occurrence, "household": household}
    ).one_or_none()
    if found is None or not _known(connection, household, partner):
        return Confirmed("unknown")
    ritual, slot, status = found
    if status == "cancelled":
        return Confirmed("cancelled", ritual, slot)
    before = _by(connection, occurrence, "confirm")
    if partner in before:
        return Confirmed("already", ritual, slot, before)
    return Confirmed("open", ritual, slot, before)


SkipOutcome = Literal["skipped", "already", "done", "unknown", "cancelled"]


@dataclass(frozen=True, slots=True)
class Skipped:
    outcome: SkipOutcome
    ritual: str | None = None
    slot: datetime | None = None
    cancelled: int = 0  # messages about it that will not be sent now
    froze: bool = False  # the skip used one of the month's freezes: the streak holds
    paused: bool = False  # inside a pause: neutral without a freeze
    freezes_left: int = 0  # in the occurrence's month, after this skip


def _skip(
    connection: Connection,
    *,
    household: str,
    occurrence: int,
    partner: str,
    at: datetime,
    source: str,
    reason: str | None = None,
    freezes_per_month: int = 0,
) -> Skipped:
    """Record that `partner` skips `occurrence`: it is marked skipped and its messages still
    to be sent are cancelled. ``done``: it was confirmed already, nothing changed.

    Whether the skip uses a freeze is decided now and kept with it (``froze``): one of the
    `freezes_per_month` of the occurrence's month when one is left (an occurrence already
    skipped with a freeze keeps it; one inside a pause needs none)."""
    found = _locked(connection, household, occurrence)
    if found is None or not _known(connection, household, partner):
        return Skipped("unknown")
    ritual, slot, status, recipient, due = found
    if status == "cancelled":
        return Skipped("cancelled", ritual, slot)
    if status == "confirmed":
        return Skipped("done", ritual, slot)
    if partner in _by(connection, occurrence, "skip"):
        return Skipped("already", ritual, slot)
    paused = bool(
        connection.execute(
            select(func.count())
            .select_from(PauseRow)
            .where(
                PauseRow.household_id == household,
                PauseRow.starts_at <= due,
                PauseRow.ends_at > due,
            )
        ).scalar_one()
    )
    froze = not paused and _freeze(
        connection, household, ritual, recipient, occurrence, slot, freezes_per_month
    )
    connection.execute(
        insert(CompletionRow).values(
            occurrence_id=occurrence,
            partner_key=partner,
            action="skip",
            at=at,
            source=source,
            raw_text=reason,
            froze=froze,
        )
    )
    connection.execute(
        update(OccurrenceRow)
        .where(OccurrenceRow.id == occurrence, OccurrenceRow.status == "open")
        .values(status="skipped", updated_at=at)
    )
    dropped = connection.execute(
        update(DeliveryRow)
        .where(DeliveryRow.occurrence_id == occurrence, UNINDEXED_STATUS == "pending")
        .values(status="cancelled", last_error=f"skipped by {partner}", updated_at=at)
    )
    forget_settled(connection, household, ritual, recipient, due)
    left = freezes_per_month - _freezes_used(connection, household, ritual, recipient, slot)
    return Skipped("skipped", ritual, slot, int(dropped.rowcount or 0), froze, paused, max(0, left))


def _freeze(
    connection: Connection,
    household: str,
    ritual: str,
    recipient: str,
    occurrence: int,
    slot: datetime,
    per_month: int,
) -> bool:
    """Whether a skip of `occurrence` gets a freeze: its own already did, or one of the
    month's is left."""
    already = connection.execute(
        select(func.count())
        .select_from(CompletionRow)
        .where(
            CompletionRow.occurrence_id == occurrence,
            CompletionRow.action == "skip",
            CompletionRow.froze.is_(True),
        )
    ).scalar_one()
    if already:
        return True
    return _freezes_used(connection, household, ritual, recipient, slot) < per_month


def _freezes_used(
    connection: Connection, household: str, ritual: str, recipient: str, slot: datetime
) -> int:
    """Freezes used in the (local) month of `slot`: occurrences skipped with a freeze that
    were not done after all and that no pause covers (a paused one needs none)."""
    first = slot.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (first + timedelta(days=32)).replace(day=1)
    paused = exists().where(
        PauseRow.household_id == OccurrenceRow.household_id,
        PauseRow.starts_at <= OccurrenceRow.at,
        PauseRow.ends_at > OccurrenceRow.at,
    )
    used: int = connection.execute(
        select(func.count(func.distinct(CompletionRow.occurrence_id)))
        .join(OccurrenceRow, OccurrenceRow.id == CompletionRow.occurrence_id)
        .where(
            CompletionRow.action == "skip",
            CompletionRow.froze.is_(True),
            OccurrenceRow.household_id == household,
            OccurrenceRow.ritual_id == ritual,
            OccurrenceRow.recipient == recipient,
            OccurrenceRow.slot >= first,
            OccurrenceRow.slot < following,
            OccurrenceRow.status != "confirmed",
            ~paused,
        )
    ).scalar_one()
    return used


def _unpaused(
    connection: Connection,
    household: str,
    start: datetime,
    end: datetime,
    freezes_per_month: Callable[[str], int],
) -> None:
    """A pause was cut short (RESUME): skips of occurrences due in ``[start, end)``, which
    it no longer covers, get the freeze they did not need while paused, when one is left."""
    skipped = connection.execute(
        select(
            CompletionRow.id,
            OccurrenceRow.id.label("occurrence"),
            OccurrenceRow.ritual_id,
            OccurrenceRow.recipient,
            OccurrenceRow.slot,
        )
        .join(OccurrenceRow, OccurrenceRow.id == CompletionRow.occurrence_id)
        .where(
            OccurrenceRow.household_id == household,
            OccurrenceRow.at >= start,
            OccurrenceRow.at < end,
            OccurrenceRow.status == "skipped",
            CompletionRow.action == "skip",
            CompletionRow.froze.is_(False),
        )
        .order_by(CompletionRow.at, CompletionRow.id)
    ).all()
    for row in skipped:
        froze = _freeze(
            connection,
            household,
            row.ritual_id,
            row.recipient,
            row.occurrence,
            row.slot,
            freezes_per_month(row.ritual_id),
        )
        if froze:
            connection.execute(
                update(CompletionRow).where(CompletionRow.id == row.id).values(froze=True)
            )


_PAUSED_UNTIL = (
    select(HouseholdRow.paused_until)
    .where(HouseholdRow.id == bindparam("household"))
    .with_for_update()
)


class Completions(Bound):
    """Completions (confirm, skip) and the household's pauses."""

    __slots__ = ()

    def confirm(
        self,
        *,
        household: str,
        occurrence: int,
        partner: str,
        at: datetime,
        source: str,
        raw_text: str | None = None,
        needs: Collection[str] = (),
    ) -> Confirmed:
        """Record that `partner` of `household` did `occurrence`, once.

        The occurrence becomes ``confirmed`` when everyone in `needs` has confirmed it (a
        ``streak = "both"`` ritual), or at the first confirmation when `needs` is empty.
        ``unknown``: no such occurrence in that household, or no such partner;
        ``cancelled``: the ritual was called off, nothing recorded; ``already``: this
        partner had confirmed it."""
        with self._writing() as connection:
            return _confirm(
                connection,
                household=household,
                occurrence=occurrence,
                partner=partner,
                at=at,
                source=source,
                raw_text=raw_text,
                needs=needs,
            )

    def look_before_confirming(self, *, household: str, occurrence: int, partner: str) -> Confirmed:
        """What :meth:`confirm` would answer now, reading only (see the function)."""
        with self._reading() as connection:
            return _look_before_confirming(
                connection, household=household, occurrence=occurrence, partner=partner
            )

    def skip(
        self,
        *,
        household: str,
        occurrence: int,
        partner: str,
        at: datetime,
        source: str,
        reason: str | None = None,
        freezes_per_month: int = 0,
    ) -> Skipped:
        """Record that `partner` skips `occurrence` (see :func:`_skip`)."""
        with self._writing() as connection:
            return _skip(
                connection,
                household=household,
                occurrence=occurrence,
                partner=partner,
                at=at,
                source=source,
                reason=reason,
                freezes_per_month=freezes_per_month,
            )

    def freezes_used(self, household: str, ritual: str, recipient: str, slot: datetime) -> int:
        with self._reading() as connection:
            return _freezes_used(connection, household, ritual, recipient, slot)

    def unpaused(
        self,
        household: str,
        start: datetime,
        end: datetime,
        freezes_per_month: Callable[[str], int],
    ) -> None:
        """Skips in ``[start, end)``, which a pause no longer covers (see :func:`_unpaused`)."""
        with self._writing() as connection:
            _unpaused(connection, household, start, end, freezes_per_month)

    # ------------------------------------------------------------------ pauses

    def paused_until(self, household: str) -> datetime | None:
        """The end of the pause in force (or of the last one), its row locked for a change."""
        with self._writing() as connection:
            until: datetime | None = connection.execute(
                _PAUSED_UNTIL, {"household": household}
            ).scalar_one_or_none()
            return until

    def extend_pause(self, household: str, now: datetime, end: datetime) -> None:
        """The pause in force now ends at `end` (later, or sooner)."""
        with self._writing() as connection:
            connection.execute(
                update(PauseRow)
                .where(PauseRow.household_id == household, PauseRow.ends_at > now)
                .values(ends_at=end)
            )

    def start_pause(self, household: str, partner: str, now: datetime, end: datetime) -> None:
        with self._writing() as connection:
            connection.execute(
                insert(PauseRow).values(
                    household_id=household,
                    starts_at=now,
                    ends_at=end,
                    partner_key=partner,
                    created_at=now,
                )
            )

    def set_paused_until(self, household: str, until: datetime | None, now: datetime) -> None:
        with self._writing() as connection:
            connection.execute(
                update(HouseholdRow)
                .where(HouseholdRow.id == household)
                .values(paused_until=until, updated_at=now)
            )
