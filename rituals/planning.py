"""From a validated ritual file to occurrences and the deliveries they make.

Pure: every function takes the dates it works on. The ledger (scheduler/) stores what this
module computes; ``tend plan`` prints it. Both agree because nothing here reads the clock or
draws an unseeded random number.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo

from rituals.clock import QuietHours, TimeWindow, resolve
from rituals.decks import DEFAULT_DECKS, builtin_decks, item_at, topic_at, topic_title
from rituals.pulse import CONVERSATION_DECK, PULSE_LINE
from rituals.schedule import FixedSchedule, RandomWindow
from rituals.templates import default_message, names_in, render

if TYPE_CHECKING:
    from config.model import Household, Partner, Ritual, RitualFile

__all__ = ["PLANNING_RULES", "Delivery", "Occurrence", "Plan", "Role", "file_hash"]

#: The version of the rules that turn a file into occurrences. A release that plans the same
#: file otherwise raises it (2: a random window for one partner is drawn on their own clock,
#: decks space their items across passes, and a delivery carries its later channels'
#: wordings; 3: an occurrence records the deck its item came from), so every ledger counts a
#: new generation once and updates what it had planned, as after an edit, rather than keeping
#: both plans (or a fallback in the first channel's words, or occurrences with no deck).
PLANNING_RULES = 3


def file_hash(file: RitualFile) -> str:
    """The hash of the file's validated content (comments and layout do not count) under
    these :data:`PLANNING_RULES`."""
    content = f"planning rules {PLANNING_RULES}\n{file.model_dump_json()}"
    return hashlib.sha256(content.encode()).hexdigest()


Role = Literal["plan_ahead", "day_of", "reminder", "nudge"]


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One time a ritual happens for a household (or, with ``to = "each"``, for one partner)."""

    household: str
    ritual: str
    kind: str
    slot: datetime  # naive, in the household's zone: the identity
    recipient: str | None  # the partner of a ``to = "each"`` occurrence
    index: int  # counts from the schedule's epoch; drives planner turns and deck rotation
    at: datetime  # the slot resolved to UTC
    planners: tuple[str, ...]
    item: str | None
    deck: str | None = None  # the deck `item` was drawn from (one of the ritual's topics)

    @property
    def key(self) -> str:
        """Stable identity: household, ritual, local slot (and recipient for ``each``)."""
        key = f"{self.household}/{self.ritual}/{self.slot:%Y-%m-%dT%H:%M}"
        return f"{key}/{self.recipient}" if self.recipient else key


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message to one partner about one occurrence."""

    occurrence: Occurrence
    partner: str
    role: Role
    channel: str
    due_at: datetime  # UTC, after quiet hours
    due_local: datetime  # aware, in the partner's zone
    text: str  # worded for `channel`
    # The message as the partner's later channels word it, where that differs from `text`
    # (an e-mail asks for no reply): what a fallback to one of them sends.
    fallback_texts: tuple[tuple[str, str], ...] = ()
    # A pulse check-in's main message: each of the partner's channels' wording with the
    # "longer conversation" question in place of the deck's (what the dispatcher sends
    # when the household's ratings slip), and the ritual's support message.
    conversation_texts: tuple[tuple[str, str], ...] = ()
    support: str | None = None


@dataclass(frozen=True, slots=True)
class _Context:
    household: Household
    zone: ZoneInfo
    partners: dict[str, Partner]
    zones: dict[str, ZoneInfo]


class Plan:
    """Computes occurrences and deliveries for a validated :class:`RitualFile`."""

    def __init__(self, file: RitualFile) -> None:
        self.file = file
        self._decks: dict[str, Sequence[str]] = dict(builtin_decks())
        self._decks.update({name: deck.items for name, deck in file.decks.items()})
        self._contexts = {h.id: self._context(h) for h in file.households}
        self._rituals = {r.id: r for r in file.rituals}

    def _context(self, household: Household) -> _Context:
        zone, zones = household.zones(self.file.timezone)
        return _Context(
            household=household,
            zone=zone,
            partners={p.id: p for p in household.partners},
            zones=zones,
        )

    def zone_of(self, household: str) -> ZoneInfo:
        return self._contexts[household].zone

    def rituals_for(self, household: str) -> list[Ritual]:
        return [r for r in self.file.rituals if r.households is None or household in r.households]

    # ------------------------------------------------------------------ occurrences

    def occurrences(
        self, household: str, ritual: Ritual, first: date, after: date
    ) -> list[Occurrence]:
        """Occurrences whose local slot falls on the household's days ``[first, after)``."""
        ctx = self._contexts[household]
        start, end = (
            datetime.combine(first, datetime.min.time()),
            datetime.combine(after, datetime.min.time()),
        )
        found: list[Occurrence] = []
        for recipient in self._occurrence_owners(ctx, ritual):
            for index, slot in self._slots(ctx, ritual, recipient, start, end):
                found.append(self._occurrence(ctx, ritual, recipient, index, slot))
        found.sort(key=lambda o: (o.at, o.recipient or ""))
        return found

    def next_occurrence(self, household: str, ritual: Ritual, now: datetime) -> Occurrence | None:
        """The first occurrence at or after the instant `now`, looking up to about a year."""
        ctx = self._contexts[household]
        today = now.astimezone(ctx.zone).date()
        for weeks in (5, 60):
            later = [
                o
                for o in self.occurrences(household, ritual, today, today + timedelta(weeks=weeks))
                if o.at >= now
            ]
            if later:
                return later[0]
        return None

    def _occurrence_owners(self, ctx: _Context, ritual: Ritual) -> list[str | None]:
        return list(ctx.partners) if ritual.to == "each" else [None]

    def _slots(
        self,
        ctx: _Context,
        ritual: Ritual,
        recipient: str | None,
        start: datetime,
        end: datetime,
    ) -> Iterator[tuple[int, datetime]]:
        schedule = ritual.schedule
        if isinstance(schedule, FixedSchedule):
            yield from schedule.slots(start, end)
            return
        assert isinstance(schedule, RandomWindow)
        audience = self._audience(ctx, ritual, recipient)
        zone = self._window_zone(ctx, ritual, audience)
        quiet = QuietHours.of(
            zone, [(ctx.partners[p].quiet_hours, ctx.zones[p]) for p in audience], home=ctx.zone
        )
        owner = recipient or "*"
        if zone == ctx.zone:
            for period, first, after in schedule.periods(start.date(), end.date()):
                seed = f"{ctx.household.id}|{ritual.id}|{owner}|{period}"
                for k, slot in enumerate(schedule.draw(seed, first, after, quiet)):
                    if start <= slot < end:
                        yield period * schedule.times + k, slot
            return
        # Drawn on the partner's clock, named on the household's. Two clocks are at most
        # 26 hours apart (UTC-12 to UTC+14): the partner's periods two days either side
        # hold every draw whose household slot is in range. The draw leaves out the
        # household's repeated hour, so each slot resolves back to the instant drawn.
        margin = timedelta(days=2)
        for period, first, after in schedule.periods(start.date() - margin, end.date() + margin):
            seed = f"{ctx.household.id}|{ritual.id}|{owner}|{period}"
            for k, drawn in enumerate(schedule.draw(seed, first, after, quiet)):
                slot = resolve(drawn, zone).astimezone(ctx.zone).replace(tzinfo=None)
                if start <= slot < end:
                    yield period * schedule.times + k, slot

    def _window_zone(self, ctx: _Context, ritual: Ritual, audience: Sequence[str]) -> ZoneInfo:
        """The zone a random window's ``between`` is read in: the recipient's own when the
        occurrence is for one partner (``to = "each"`` or a partner id), else the household's."""
        if ritual.to != "both" and len(audience) == 1:
            return ctx.zones[audience[0]]
        return ctx.zone

    def _occurrence(
        self, ctx: _Context, ritual: Ritual, recipient: str | None, index: int, slot: datetime
    ) -> Occurrence:
        deck, item = self._draw(ctx, ritual, recipient, index)
        return Occurrence(
            household=ctx.household.id,
            ritual=ritual.id,
            kind=ritual.kind,
            slot=slot,
            recipient=recipient,
            index=index,
            at=resolve(slot, ctx.zone),
            planners=self._planners(ctx, ritual, index),
            item=item,
            deck=deck,
        )

    def _planners(self, ctx: _Context, ritual: Ritual, index: int) -> tuple[str, ...]:
        mode = ritual.planner
        ids = sorted(ctx.partners)  # by id, so reordering the file does not swap turns
        if mode is None or ritual.to == "each":
            return ()
        if mode == "alternate":
            return (ids[index % len(ids)],)
        if mode == "both":
            return tuple(ids)
        return (mode,)

    def decks_of(self, ritual: Ritual) -> tuple[str, ...]:
        """The decks the ritual draws from, in turn: its own, else its kind's default."""
        if ritual.decks:
            return ritual.decks
        default = DEFAULT_DECKS.get(ritual.kind)
        return (default,) if default else ()

    def _draw(
        self, ctx: _Context, ritual: Ritual, recipient: str | None, index: int
    ) -> tuple[str | None, str | None]:
        """The deck and item of occurrence `index`; (None, None) with no deck."""
        decks = [(name, self._decks.get(name)) for name in self.decks_of(ritual)]
        usable = [(name, items) for name, items in decks if items]
        if not usable:
            return None, None
        seed = f"{ctx.household.id}|{ritual.id}|{recipient or ''}"
        return topic_at(usable, seed, index)

    def _audience(self, ctx: _Context, ritual: Ritual, recipient: str | None) -> list[str]:
        if recipient is not None:
            return [recipient]
        if ritual.to in ("both", "each"):
            return list(ctx.partners)
        return [ritual.to]

    # ------------------------------------------------------------------ deliveries

    def deliveries(
        self, occurrence: Occurrence, *, expired_before: datetime | None = None
    ) -> list[Delivery]:
        """Every message `occurrence` makes: plan-ahead, day-of or nudge, reminder; less,
        with `expired_before`, those whose grace ended before it (not worth rendering)."""
        ctx = self._contexts[occurrence.household]
        ritual = self._rituals[occurrence.ritual]
        main: Role = (
            "nudge"
            if ritual.kind == "appreciation" or isinstance(ritual.schedule, RandomWindow)
            else "day_of"
        )
        audience = self._audience(ctx, ritual, occurrence.recipient)
        made: list[Delivery | None] = []
        if ritual.plan_ahead is not None and occurrence.planners:
            due = _shift(occurrence.slot, -ritual.plan_ahead, ctx.zone)
            for partner_id in occurrence.planners:
                made.append(
                    self._delivery(
                        ctx, ritual, occurrence, partner_id, "plan_ahead", due, expired_before
                    )
                )
        for partner_id in audience:
            made.append(
                self._delivery(
                    ctx, ritual, occurrence, partner_id, main, occurrence.at, expired_before
                )
            )
        if ritual.remind_after is not None:
            due = _shift(occurrence.slot, ritual.remind_after, ctx.zone)
            for partner_id in audience:
                made.append(
                    self._delivery(
                        ctx, ritual, occurrence, partner_id, "reminder", due, expired_before
                    )
                )
        return [d for d in made if d is not None]

    def _delivery(
        self,
        ctx: _Context,
        ritual: Ritual,
        occurrence: Occurrence,
        partner_id: str,
        role: Role,
        due: datetime,
        expired_before: datetime | None = None,
    ) -> Delivery | None:
        partner = ctx.partners[partner_id]
        zone = ctx.zones[partner_id]
        due = after_quiet_hours(due, partner.quiet_hours, zone)
        if expired_before is not None and due + ritual.grace < expired_before:
            return None
        first, *later = partner.channels
        # One rendering per template and wording: a template that does not name `channel`
        # says the same on every channel it is used for.
        rendered: dict[tuple[str, str], str] = {}
        texts = []
        for channel in partner.channels:
            template = _template(ritual, role, channel)
            key = (template, channel if "channel" in names_in(template) else "")
            if key not in rendered:
                rendered[key] = self.message(ctx, ritual, occurrence, partner_id, template, channel)
            texts.append(rendered[key])
        conversation: list[tuple[str, str]] = []
        if ritual.asks_pulse and role in ("day_of", "nudge"):
            texts = [with_pulse_line(t, c) for t, c in zip(texts, partner.channels, strict=True)]
            asked = self.conversation_item(occurrence)
            for channel in partner.channels:
                template = _template(ritual, role, channel)
                text = self.message(ctx, ritual, occurrence, partner_id, template, channel, asked)
                conversation.append((channel, with_pulse_line(text, channel)))
        return Delivery(
            occurrence=occurrence,
            partner=partner_id,
            role=role,
            channel=first,
            due_at=due,
            due_local=due.astimezone(zone),
            text=texts[0],
            fallback_texts=tuple(
                (channel, text)
                for channel, text in zip(later, texts[1:], strict=True)
                if text != texts[0]
            ),
            conversation_texts=tuple(conversation),
            support=ritual.support_message if conversation else None,
        )

    def conversation_item(self, occurrence: Occurrence) -> str:
        """The "longer conversation" question a slipping household's check-in asks instead
        of its deck's: one per occurrence, the same for both partners."""
        items = self._decks.get(CONVERSATION_DECK) or builtin_decks()[CONVERSATION_DECK]
        return item_at(
            items, f"{occurrence.household}|{occurrence.ritual}|conversation", occurrence.index
        )

    def message(
        self,
        ctx: _Context,
        ritual: Ritual,
        occurrence: Occurrence,
        partner_id: str,
        template: str,
        channel: str,
        item: str | None = None,
    ) -> str:
        """`template` rendered for one partner of `occurrence`, sent by `channel` (with
        `item` in place of the occurrence's own, when given)."""
        # Only what the template uses: the planner renders every delivery it plans.
        used = names_in(template)
        values: dict[str, str] = {}
        if used & _LOCAL_TIME:
            local = occurrence.at.astimezone(ctx.zones[partner_id])
            day = _day_text(local.date())
            clock = f"{local.hour:02d}:{local.minute:02d}"
            values.update(when=f"{day} at {clock}", date=day, time=clock)
        if used & _NAMES:
            names = [p.name for p in ctx.household.partners]
            planners = [ctx.partners[p].name for p in occurrence.planners]
            values["partners"] = _join(names)
            values["planner"] = _join(planners) if planners else _join(names)
        values["partner"] = ctx.partners[partner_id].name
        if item is not None:  # a slipping household's longer conversation
            values["item"] = item
            values["topic"] = topic_title(CONVERSATION_DECK)
        else:
            values["item"] = occurrence.item or ""
            values["topic"] = topic_title(occurrence.deck) if occurrence.deck else ""
        values["ritual"] = ritual.display_name
        values["household"] = ctx.household.id
        values["channel"] = channel
        return render(template, values)

    def deliveries_between(
        self, first: date, days: int, households: Sequence[str] | None = None
    ) -> list[Delivery]:
        """Deliveries of occurrences on each household's local days ``[first, first + days)``."""
        after = first + timedelta(days=days)
        found: list[Delivery] = []
        for household in self.file.households:
            if households and household.id not in households:
                continue
            for ritual in self.rituals_for(household.id):
                for occurrence in self.occurrences(household.id, ritual, first, after):
                    found.extend(self.deliveries(occurrence))
        found.sort(key=lambda d: (d.due_at, d.occurrence.household, d.occurrence.ritual, d.partner))
        return found


def _template(ritual: Ritual, role: Role, channel: str) -> str:
    """The ritual's own template for `role`, else the built-in one as `channel` words it."""
    own = {
        "plan_ahead": ritual.plan_ahead_message,
        "reminder": ritual.reminder_message,
    }.get(role, ritual.message)
    if own is None and ritual.asks_pulse and role in ("day_of", "nudge"):
        # The rating is the reply (and counts as DONE): the built-in wording that asks for
        # none, then the pulse line.
        return default_message(role, ritual.kind, "email")
    return own or default_message(role, ritual.kind, channel)


def with_pulse_line(text: str, channel: str) -> str:
    """A pulse check-in's text, ending with the one line that asks for the rating; not in
    an e-mail, whose replies nobody reads."""
    return text if channel == "email" else f"{text}\n{PULSE_LINE}"


def after_quiet_hours(due: datetime, quiet: TimeWindow | None, zone: ZoneInfo) -> datetime:
    """`due` (UTC), moved to the end of the partner's quiet hours when it falls inside them."""
    if quiet is None:
        return due
    local = due.astimezone(zone).replace(tzinfo=None)
    if not quiet.contains(local.time()):
        return due
    end = quiet.end_after(local)
    moved = resolve(end, zone)
    if moved <= due:
        # `due` is in the second pass of a repeated (fall-back) hour: the end is the second
        # reading of that wall-clock time, not the first, which has already gone by.
        moved = end.replace(tzinfo=zone, fold=1).astimezone(UTC)
    return moved


def _shift(slot: datetime, by: timedelta, zone: ZoneInfo) -> datetime:
    """`slot` moved by `by`: whole days on the wall clock (19:00 stays 19:00), the rest elapsed."""
    days = timedelta(days=by.days) if by >= timedelta() else -timedelta(days=(-by).days)
    rest = by - days
    return (resolve(slot + days, zone) + rest).astimezone(UTC)


_LOCAL_TIME = frozenset({"when", "date", "time"})
_NAMES = frozenset({"partners", "planner"})


@lru_cache(maxsize=1024)
def _day_text(day: date) -> str:
    """'Fri 4 Dec' (English, as the messages are)."""
    return f"{day:%a} {day.day} {day:%b}"


def _join(names: Sequence[str]) -> str:
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]
