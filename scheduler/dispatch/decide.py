"""What the dispatcher does with a claimed delivery, and after a failed send: pure
functions from a snapshot (the claim, the time, the error) to an action, which
:class:`~scheduler.dispatch.dispatcher.Dispatcher` then performs. Tested from tables in
``tests/scheduler/test_dispatch_decisions.py``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from notifiers.base import NotifierError
from rituals.clock import TimeWindow, get_zone
from rituals.planning import after_quiet_hours
from scheduler.ledger import is_follow_up
from scheduler.ledger.claims import Claim

__all__ = [
    "MAY_REPEAT",
    "SENT_AGAIN",
    "UNSURE",
    "Failure",
    "Next",
    "after_failure",
    "decide",
    "still_unsure",
]

MAY_REPEAT = "interrupted while sending; the channel cannot tell, so it may repeat"
# Prefix of last_error after a send that timed out once the request was out: the provider
# may have it. The next attempt asks the provider first, when the channel can tell.
UNSURE = "unsure whether sent: "
SENT_AGAIN = (
    "sent again after an interruption; the channel could not tell whether the first try "
    "went out, so it may have arrived twice"
)


def still_unsure(claim: Claim, error: str) -> str:
    """`error` for a delivery put back without a send, keeping the mark of an earlier attempt
    that may have gone out: the next attempt must still ask the provider first."""
    return (UNSURE if (claim.last_error or "").startswith(UNSURE) else "") + error


@dataclass(frozen=True, slots=True)
class Next:
    """What to do with a claimed delivery before any send.

    ``cancel`` / ``miss``: settled with `reason`; ``move``: the
    partner opted out of the channel, so the message moves to their next one and this
    delivery is cancelled; ``wait``: pending until `until` (quiet hours); ``send``.
    """

    action: Literal["cancel", "miss", "move", "wait", "send"]
    reason: str | None = None
    until: datetime | None = None


SEND = Next("send")


def decide(claim: Claim, now: datetime) -> Next:
    """What to do with `claim` at `now`."""
    if not (claim.household_active and claim.partner_active):
        return Next("cancel", "no longer in the file")
    if is_follow_up(claim.role) and (claim.occurrence_status != "open" or claim.partner_done):
        done = "done by this partner" if claim.partner_done else claim.occurrence_status
        return Next("cancel", f"no reminder needed: the occurrence is {done}")
    if claim.occurrence_status in ("cancelled", "skipped"):
        return Next("cancel", f"occurrence {claim.occurrence_status}")
    # A household's pause stops Tend's nudges; a partner's TELL is their own words: it goes.
    if not claim.is_tell and claim.paused_until is not None and now < claim.paused_until:
        return Next("cancel", "household paused")
    if now > claim.expires_at:
        return Next("miss", "not sent within the ritual's grace")
    if claim.opted_out(claim.channel):
        return Next("move", f"opted out of {claim.channel}")
    if claim.quiet_hours:
        later = after_quiet_hours(
            now, TimeWindow.parse(claim.quiet_hours), get_zone(claim.timezone)
        )
        if later > now:
            if later > claim.expires_at:
                return Next("miss", "quiet hours until after the ritual's grace")
            return Next("wait", still_unsure(claim, "waiting for the end of quiet hours"), later)
    return SEND


@dataclass(frozen=True, slots=True)
class Failure:
    """What a failed send leads to.

    ``opted_out``: the recipient opted out (recorded on the partner); ``permanent``: this
    channel will never take it; ``gave_up``: out of attempts (transient errors every time);
    each of these settles the delivery as failed and moves the message to the partner's
    next channel. ``retry``: pending again after the retry policy's delay. `error` is what
    the ledger keeps."""

    kind: Literal["opted_out", "permanent", "gave_up", "retry"]
    error: str

    @property
    def falls_back(self) -> bool:
        """Whether the message moves to the next channel: whenever this channel is done
        with it. After an unsure give-up the text may have arrived as well; a partner who
        gets it twice, by text and by e-mail, is better off than one who gets neither."""
        return self.kind != "retry"


def after_failure(error: NotifierError, masked: str, attempts: int, max_attempts: int) -> Failure:
    """What to do after the send's `attempts`-th try failed with `error` (its text with
    addresses masked: `masked`)."""
    text = UNSURE + masked if error.unsure else masked
    if error.opt_out:
        return Failure("opted_out", text)
    if error.permanent:
        return Failure("permanent", text)
    if attempts >= max_attempts:
        return Failure("gave_up", f"gave up after {attempts} attempts: {text}")
    return Failure("retry", text)
