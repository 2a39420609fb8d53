"""Every word Tend answers a partner with: the texts that answer an SMS (and ``tend
reply``), and the pages a confirm link opens. One module, so an answer is changed in one
place and read in one place; what happened comes from :mod:`scheduler.acts.acts`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from rituals.replies import HELP, day_text, in_a_row
from rituals.streaks import weeks_text
from scheduler.acts.acts import MAX_SNOOZES, MAX_TELLS_PER_DAY, Done, Passed, Snoozed
from scheduler.acts.targets import EARLY, Open, Pick
from scheduler.ledger.completions import Skipped

__all__ = [
    "BACK_ON",
    "HELP",
    "LIMITED",
    "NOTHING_OPEN",
    "STRANGER",
    "Page",
]

STRANGER = "Tend does not know this number, so it cannot do anything with this message."
LIMITED = "Too many messages at once. Please wait a minute, then send your reply again."
BACK_ON = "You are back on Tend's texts. Reply HELP for the commands."
NOTHING_OPEN = (
    "Nothing is waiting for a reply from you right now. Reply STREAK for your streaks or "
    "HELP for the commands."
)
NOT_UNDERSTOOD = f"Sorry, I didn't catch that. {HELP}"
NO_STREAKS = "No streaks yet: reply DONE after a ritual to start one."
NOTHING_TO_RATE = (
    "There is no check-in to rate just now: a rating 1-5 answers a check-in that asks for "
    "one. Nothing was recorded. Reply PULSE for your trend."
)
NOT_PAUSED = "Tend is not paused. Reply PAUSE 2w for a break of two weeks."
WELCOME_BACK = "Welcome back! Nudges start again, and your streaks go on from here."


# ---------------------------------------------------------------------- SMS answers


def label(target: Open) -> str:
    """``date night (Fri 4 Dec)``: an occurrence, as answers name it."""
    return f"{target.ritual.display_name} ({day_text(target.slot)})"


def listed(open_: Sequence[Open], verb: str) -> str:
    items = ", ".join(f"{n}) {label(t)}" for n, t in enumerate(open_[:9], start=1))
    if len(open_) == 1:
        return f"{items}. Reply {verb} 1 for it."
    return f"{items}. Reply {verb} 1 or {verb} 2 to pick one."


def no_such_pick(pick: Pick, verb: str) -> str:
    return f"There is no {pick.number} open. Open now: {listed(pick.listed, verb)}"


def confirmed(
    target: Open,
    done: Done,
    *,
    waiting: Sequence[str],
    others: Sequence[str],
    weekly: bool,
    current: int,
    still: Sequence[Open],
) -> str:
    """The answer to a DONE: `waiting` (names) must still confirm a "both" ritual; `others`
    had confirmed it already; `weekly` and `current` are the streak; `still` what else is
    open."""
    outcome = done.confirmed.outcome
    if outcome == "cancelled":
        return f"The {label(target)} was called off; there is nothing to confirm."
    if outcome == "already":
        return f"You had marked the {label(target)} as done already. Thank you!"
    if waiting:
        text = (
            f"Marked the {label(target)} as done for you. It counts for your streak "
            f"when {' and '.join(waiting)} replies DONE too."
        )
    else:
        text = (
            f"{' and '.join(others)} had marked the {label(target)} as done; now you have too. "
            if others
            else f"Marked the {label(target)} as done. "
        ) + in_a_row(target.ritual.kind, weekly, current)
    if still:
        text += f" Still open: {listed(still, 'DONE')}"
    return text


def nothing_to_confirm(told: Sequence[Open], partner: str, now: datetime, zone: ZoneInfo) -> str:
    """Why a DONE confirms nothing: the occurrence is still to come, it was done or
    skipped, or nothing is open."""
    ahead = [t for t in told if t.at > now + EARLY and t.status == "open"]
    if ahead:
        t = ahead[0]
        local = t.at.astimezone(zone)
        return (
            f"The {t.ritual.display_name} is on {day_text(local)} at {local:%H:%M}: "
            "reply DONE after it."
        )
    mine = [t for t in told if partner in t.confirmed_by]
    if mine:
        return f"You had marked the {label(mine[0])} as done already. Thank you!"
    skipped = [t for t in told if t.status == "skipped"]
    if skipped:
        return f"The {label(skipped[0])} was skipped, so there is nothing to mark as done."
    return NOTHING_OPEN


def already_done(target: Open) -> str:
    return f"The {label(target)} is marked as done already, so there is nothing to skip."


def skipped(target: Open, done: Skipped, *, current: int, this_month: bool) -> str:
    """The answer to a SKIP; `current` is the streak after it, `this_month` whether the
    occurrence is in the partner's current month."""
    if done.outcome == "done":
        return already_done(target)
    if done.outcome != "skipped":
        return f"The {label(target)} was called off; there is nothing to skip."
    text = f"Skipped the {label(target)}."
    if done.paused:
        return f"{text} You are paused, so the streak holds."
    if done.froze:
        left = done.freezes_left  # in the occurrence's month
        month = "this month" if this_month else f"{target.slot:%B}"
        more = (
            f"{left} left {'this month' if this_month else 'in ' + month}"
            if left
            else (f"that was {month}'s last")
        )
        if current:
            return f"{text} A freeze keeps your streak at {current} ({more})."
        return f"{text} A freeze covers it, so nothing breaks ({more})."
    return f"{text} No freeze left this month, so the streak starts again."


def snooze_too_late(target: Open, zone: ZoneInfo) -> str:
    local = target.at.astimezone(zone)
    return (
        f"That would be after the {target.ritual.display_name} itself "
        f"({day_text(local)} at {local:%H:%M}): try a shorter snooze, like SNOOZE 2h."
    )


def snoozed(
    target: Open, done: Snoozed, *, due: datetime, now: datetime, zone: ZoneInfo, quiet: bool
) -> str:
    """The answer to a SNOOZE; `quiet`: the time was moved past the quiet hours."""
    if done.outcome == "limit":
        return (
            f"You have snoozed the {label(target)} {MAX_SNOOZES} times. "
            "Reply DONE when it is done, or SKIP."
        )
    local = due.astimezone(zone)
    when = (
        f"at {local:%H:%M}"
        if local.date() == now.astimezone(zone).date()
        else f"on {day_text(local)} at {local:%H:%M}"
    )
    after = " (after your quiet hours)" if quiet else ""
    return f"OK: Tend will remind you about the {label(target)} {when}{after}."


def passed_on(
    passed: Passed,
    *,
    now: datetime,
    zone: ZoneInfo,
    zones: dict[str, ZoneInfo],
    counted: bool,
) -> str:
    """The answer to a TELL: when it arrives, on the sender's clock (`zone`), the zone named
    when the other partner's differs; `counted`: it was the sender's appreciation done."""
    if passed.outcome == "alone":
        return "There is nobody else in your household to pass that on to. Nothing was sent."
    if passed.outcome == "limit":
        return (
            f"You have passed on {MAX_TELLS_PER_DAY} messages today, the most for one day. "
            "Nothing was sent: try again tomorrow."
        )
    if passed.outcome == "unreachable":
        names = " and ".join(to.name for to in passed.to) or "Your partner"
        return f"That could not be passed on: {names} turned off Tend's messages. Nothing was sent."
    today = now.astimezone(zone).date()
    parts = []
    for to in passed.to:
        if to.due <= now:
            parts.append(f"Sent to {to.name}.")
            continue
        local = to.due.astimezone(zone)
        when = f"at {local:%H:%M}"
        if local.date() == today + timedelta(days=1):
            when = f"tomorrow {when}"
        elif local.date() != today:
            when = f"on {day_text(local)} {when}"
        theirs = zones.get(to.partner, zone)
        if theirs.key != zone.key:
            when = f"{when} your time ({zone.key})"
        parts.append(f"{to.name} gets it {when}, after their quiet hours.")
    if counted:
        parts.append("Your appreciation counts as done.")
    return " ".join(parts)


def streaks(parts: Sequence[tuple[str, int, int, bool]], page: str | None = None) -> str:
    """The answer to STREAK: (name, current, longest, weekly) of each streak kept yet, and
    the partner's page (`page`), when the household wants the link."""
    shown = [
        f"{name} {weeks_text(current) if weekly else current} (best {longest})"
        for name, current, longest, weekly in parts
    ]
    text = "Streaks in a row: " + "; ".join(shown) + "." if shown else NO_STREAKS
    return f"{text} Your page: {page}" if page else text


def paused(end: datetime, zone: ZoneInfo) -> str:
    return (
        f"Paused until {day_text(end.astimezone(zone))}: no nudges for either of you, and "
        "your streaks hold. Reply RESUME to start again sooner."
    )


# ---------------------------------------------------------------------- confirm pages


@dataclass(frozen=True, slots=True)
class Page:
    """A page a link opens: its title, its text, and its button (a form that POSTs)."""

    title: str
    text: str
    button: str | None = None


NOT_AVAILABLE = Page("Not available", "This Tend has no secret key set.")
CONFIRM_EXPIRED = Page("Link expired", "Confirm links work for 7 days. Nothing was recorded.")
CONFIRM_INVALID = Page("Link not valid", "This confirm link is not valid.")
NOT_READ = Page("Try again later", "Tend could not read that just now.")
NOT_RECORDED = Page("Try again later", "Tend could not record that just now.")


def not_yet(local: datetime) -> Page:
    """A plan-ahead message's link, before the occurrence: when, in the time the partner
    lives by (with the zone's name: they may be travelling)."""
    return Page(
        "Not yet",
        f"This happens on {local:%A %-d %B} ({local:%H:%M %Z}). Come back to this "
        "link after it. Nothing was recorded.",
    )


def confirm_page(done: Done, title: str) -> Page:
    """The page for a confirm link: what the button would do (``open``), or what it did.
    `title` is the ritual's, as messages name it."""
    slot = done.confirmed.slot
    when = f"{title} on {slot:%A %-d %B}" if slot else title
    match done.confirmed.outcome:
        case "open":
            return Page("Done it?", f"Mark the {when} as done?", button="Yes, mark it done")
        case "cancelled":
            return Page("Called off", f"The {when} was called off; there is nothing to confirm.")
        case "already":
            return Page("Already done", f"You had marked the {when} as done. Thank you!")
    if not done.counts:
        return Page(
            "Done, for you",
            f"Marked the {when} as done for you. It counts for your streak when your "
            "partner confirms it too.",
        )
    return Page("Done!", f"Marked the {when} as done. Thank you!")


UNSUBSCRIBE_INVALID = Page("Link not valid", "This unsubscribe link is not valid.")
UNSUBSCRIBE_ASK = Page(
    "Unsubscribe",
    "Stop Tend's e-mails to this address? Text messages, if you get them, go on.",
    button="Unsubscribe",
)
UNSUBSCRIBED = Page("Unsubscribed", "Tend will send no more e-mails to this address.")


def ritual_title(titles: dict[str, str], ritual: str | None) -> str:
    """How a page names a ritual: its title in the file, else its id with spaces."""
    return titles.get(ritual or "") or (ritual or "").replace("-", " ").replace("_", " ")


def rated(outcome: str, rating: int, done_text: str | None, shared: str | None) -> str:
    """The answer to a rating: noted (or changed), the DONE it counts as, and with
    ``share_pulse`` the shared line once both have rated."""
    if outcome == "replaced":
        text = f"Changed your rating to {rating} (only you see it)."
    else:
        text = f"Noted your {rating} (only you see it)."
    if done_text and outcome == "new":
        text += f" {done_text}"
    if shared:
        text += f" {shared}"
    return text
