"""One test message to a partner (``tend send-test``): through the notifier the worker
uses, not recorded as a delivery. A partner who opted out of the channel is not messaged,
and an opt-out the provider reports is recorded, as the dispatcher does."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from config.model import Household, Partner
from notifiers.base import Message, Notifier, NotifierError, Recipient, SendResult, mask_addresses
from scheduler.ledger import Ledger

__all__ = ["Probe", "send_test"]


@dataclass(frozen=True, slots=True)
class Probe:
    """How a test message went: ``sent`` (`result`), ``refused`` (opted out `since`, not
    sent), or a failure classified as the dispatcher would (`error`, masked)."""

    outcome: Literal["sent", "refused", "opted out", "permanent", "transient"]
    result: SendResult | None = None
    since: datetime | None = None
    error: str = ""
    retry_after: float | None = None
    recorded: bool = False  # the provider's opt-out is now in the ledger


def send_test(
    ledger: Ledger | None,
    notifier: Callable[[], Notifier],
    household: Household,
    partner: Partner,
    channel: str,
    now: datetime,
) -> Probe:
    """Send one test message to `partner` by `channel` through the notifier that
    `notifier` gives (asked for only once the partner may be messaged). `ledger`: where
    opt-outs are read and recorded, when there is one."""
    if ledger is not None:
        since = ledger.partners.opted_out_at(household.id, partner.id, channel)
        if since is not None:
            return Probe("refused", since=since)
    sender = notifier()
    message = Message(
        recipient=Recipient(
            household=household.id,
            partner=partner.id,
            name=partner.name,
            phone=partner.phone,
            email=partner.email,
        ),
        channel=channel,
        body=f"Tend test for {partner.name}: {channel} works. Nothing to do.",
        subject="Tend: a test message",
        key=f"send-test/{household.id}/{partner.id}/{channel}/{now:%Y%m%dT%H%M%S.%f}",
    )
    try:
        result = sender.send(message)
    except NotifierError as error:
        kind: Literal["opted out", "permanent", "transient"] = (
            "opted out" if error.opt_out else "permanent" if error.permanent else "transient"
        )
        recorded = False
        if error.opt_out and ledger is not None:
            recorded = ledger.partners.record_opt_out(household.id, partner.id, channel, now)
        return Probe(
            kind,
            error=mask_addresses(str(error)),
            retry_after=error.retry_after,
            recorded=recorded,
        )
    return Probe("sent", result=result)
