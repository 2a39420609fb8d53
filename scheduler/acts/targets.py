"""Which occurrence a partner's reply is about: pure functions over what Tend told them.

What a reply applies to: the occurrences a message reached this partner about within the
ritual's reply window, the one the last message was about first, then the most recent. A
DONE applies only to occurrences that have happened (or start within :data:`EARLY`); a SKIP
can skip one still to come. Tested from tables in ``tests/scheduler/test_reply_targets.py``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from config.model import Ritual
from scheduler.ledger.occurrences import Told

__all__ = [
    "EARLY",
    "Open",
    "Pick",
    "button_target",
    "confirm_target",
    "latest_per_occurrence",
    "open_for",
    "rate_target",
    "skip_target",
    "skippable",
    "snooze_target",
    "tell_target",
    "to_confirm",
]

# A reply to a message about an occurrence that has not happened yet (a plan-ahead nudge)
# does not confirm it; a few minutes early is close enough.
EARLY = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class Open:
    """An occurrence a message reached this partner about, inside its reply window."""

    occurrence: int
    ritual: Ritual
    recipient: str
    slot: datetime
    at: datetime
    status: str
    last_sent: datetime
    last_due: datetime
    last_body: str
    last_channel: str
    last_subject: str | None
    confirmed_by: frozenset[str]
    skipped_by: frozenset[str]


@dataclass(frozen=True, slots=True)
class Pick:
    """A numbered pick (``DONE 3``) with no such number among `listed`."""

    number: int
    listed: tuple[Open, ...]


def latest_per_occurrence(
    rows: Sequence[Told], rituals: Mapping[str, Ritual], now: datetime
) -> dict[int, Told]:
    """The latest message about each occurrence (rows come latest first), for rituals still
    in the file, inside each ritual's reply window; in the order of `rows`."""
    latest: dict[int, Told] = {}
    for row in rows:
        ritual = rituals.get(row.ritual)
        if ritual is None or row.occurrence in latest:
            continue
        if row.sent_at < now - ritual.reply_window:
            continue
        latest[row.occurrence] = row
    return latest


def open_for(
    latest: Mapping[int, Told],
    rituals: Mapping[str, Ritual],
    confirmed: Mapping[int, set[str]],
    skipped: Mapping[int, set[str]],
) -> list[Open]:
    """`latest` with the rituals and who has done or skipped each: the one the last message
    was about first, then the most recent."""
    told = [
        Open(
            occurrence=occurrence,
            ritual=rituals[row.ritual],
            recipient=row.recipient,
            slot=row.slot,
            at=row.at,
            status=row.status,
            last_sent=row.sent_at,
            last_due=row.due_at,
            last_body=row.body,
            last_channel=row.channel,
            last_subject=row.subject,
            confirmed_by=frozenset(confirmed.get(occurrence, ())),
            skipped_by=frozenset(skipped.get(occurrence, ())),
        )
        for occurrence, row in latest.items()
    ]
    if not told:
        return []
    first = told[0]  # rows came newest message first
    rest = sorted(told[1:], key=lambda t: (t.at, t.occurrence), reverse=True)
    return [first, *rest]


def to_confirm(told: Sequence[Open], partner: str, now: datetime) -> list[Open]:
    """Still to be done: not confirmed (a "both" ritual: not by this partner), not skipped,
    not called off, and not still to come."""
    return [
        t
        for t in told
        if t.status == "open" and partner not in t.confirmed_by and t.at <= now + EARLY
    ]


def _pick(listed: Sequence[Open], number: int) -> Open | Pick:
    if 1 <= number <= len(listed):
        return listed[number - 1]
    return Pick(number, tuple(listed))


def confirm_target(
    told: Sequence[Open], partner: str, now: datetime, pick: int | None
) -> Open | Pick | None:
    """What a DONE (``DONE 2``: `pick`) confirms; None: nothing to confirm."""
    open_ = to_confirm(told, partner, now)
    # Done by the other partner already ("either"): this partner's DONE is recorded too.
    theirs = [
        t
        for t in told
        if t.status == "confirmed" and partner not in t.confirmed_by and t.at <= now + EARLY
    ]
    if pick is not None and open_:
        return _pick(open_, pick)
    if pick is None and told and (told[0] in open_ or told[0] in theirs):
        return told[0]  # what the latest message was about
    if pick is None and (open_ or theirs):
        return (open_ or theirs)[0]
    return None


def skippable(told: Sequence[Open], partner: str) -> list[Open]:
    """What a SKIP may skip: not done by anyone, not skipped by this partner; one still to
    come too (the plan-ahead message's date night)."""
    return [
        t
        for t in told
        if t.status in ("open", "skipped") and partner not in t.skipped_by and not t.confirmed_by
    ]


def skip_target(
    told: Sequence[Open], partner: str, now: datetime, pick: int | None
) -> Open | Pick | None:
    """What a SKIP (``SKIP 2``: `pick`) is about; None: nothing open. A pick names what is
    open now, as answers list it (see :func:`to_confirm`), which may be done already (see
    :func:`skippable`)."""
    if pick is not None:
        listed = to_confirm(told, partner, now)
        return _pick(listed, pick) if listed else None
    choices = skippable(told, partner)
    if told and told[0] in choices:
        return told[0]  # what the latest message was about
    return choices[0] if choices else None


def snooze_target(told: Sequence[Open], partner: str) -> Open | None:
    """What a SNOOZE brings back: the open message heard last."""
    open_ = [
        t
        for t in told
        if t.status == "open" and partner not in t.confirmed_by and partner not in t.skipped_by
    ]
    return max(open_, key=lambda t: t.last_sent) if open_ else None


def tell_target(told: Sequence[Open], partner: str, now: datetime) -> Open | None:
    """What a TELL counts as done: the partner's open appreciation nudge, the one the last
    message was about first; None when there is none."""
    open_ = [t for t in to_confirm(told, partner, now) if t.ritual.kind == "appreciation"]
    return open_[0] if open_ else None


def rate_target(told: Sequence[Open], partner: str, now: datetime) -> Open | None:
    """What a rating rates: a pulse check-in that has happened (or starts within
    :data:`EARLY`), not skipped or called off, the one the last message was about first;
    one this partner rated or confirmed already too (a second rating replaces the first)."""
    rateable = [
        t
        for t in told
        if t.ritual.asks_pulse
        and t.status in ("open", "confirmed")
        and partner not in t.skipped_by
        and t.at <= now + EARLY
    ]
    return rateable[0] if rateable else None


def button_target(
    told: Sequence[Open], partner: str, now: datetime, occurrence: int, action: str
) -> Open | None:
    """What a DONE or SKIP button on the couple's page (about `occurrence`) applies to:
    that occurrence when a DONE (``action`` "done") or a SKIP ("skip") by SMS could pick it
    (see :func:`confirm_target` and :func:`skippable`); None when it could not (done
    already by this partner, not open, or not this partner's)."""
    found = next((t for t in told if t.occurrence == occurrence), None)
    if found is None:
        return None
    if action == "skip":
        return found if found in skippable(told, partner) else None
    theirs = found.status == "confirmed" and partner not in found.confirmed_by
    if (found in to_confirm(told, partner, now) or theirs) and found.at <= now + EARLY:
        return found
    return None
