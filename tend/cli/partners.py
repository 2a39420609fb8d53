"""Commands about one partner's channels: ``tend send-test`` and ``tend opt-in``."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from config.model import mask_address
from tend.cli.common import (
    ConfigOption,
    Failed,
    Usage,
    find_partner,
    handled,
    ledger_if_any,
    load_file,
    now,
    safe_url,
)
from tend.cli.service import logging_setup

if TYPE_CHECKING:  # notifiers load when a message is to be sent
    from notifiers.base import Notifier

__all__ = ["opt_in", "send_test"]

PartnerOption = Annotated[
    str,
    typer.Option(
        "--to",
        help="The partner: its id, or HOUSEHOLD/PARTNER when ids repeat.",
        show_default=False,
    ),
]


class TestChannel(StrEnum):
    sms = "sms"
    email = "email"
    console = "console"


@handled
def send_test(
    to: PartnerOption,
    channel: Annotated[
        TestChannel | None,
        typer.Option("--channel", help="Default: the partner's first channel.", show_default=False),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Send one real test message to a partner; print the provider id or the classified error.

    It goes through the same notifier the worker uses (console without credentials) and is
    not recorded as a delivery; a partner who opted out of the channel is not messaged, and
    an opt-out the provider reports is recorded."""
    from notifiers.registry import NotifierSet, UnknownNotifier
    from scheduler.dispatch.probe import send_test as probe

    settings, loaded = load_file(config)
    household, partner = find_partner(loaded.file, to)
    chosen = channel.value if channel is not None else partner.channels[0]
    address = {"sms": partner.phone, "email": partner.email}.get(chosen, partner.name)
    if not address:
        raise Usage(f"tend: {household.id}/{partner.id} has no address for {chosen}")
    logging_setup()
    where = f"{household.id}/{partner.id} by {chosen} ({mask_address(address) or address})"
    ledger = ledger_if_any(settings)
    chosen_notifier: list[Notifier] = []
    notifiers: list[NotifierSet] = []

    def notifier() -> Notifier:
        try:
            notifiers.append(NotifierSet(settings, overrides=settings.notifiers))
            chosen_notifier.append(notifiers[0].get(chosen))
        except (UnknownNotifier, ValueError) as exc:
            raise Usage(f"tend: cannot use the {chosen} notifier: {exc}") from None
        return chosen_notifier[0]

    try:
        sent = probe(ledger, notifier, household, partner, chosen, now())
    finally:
        for made in notifiers:
            made.close()
    if sent.outcome == "refused":
        assert sent.since is not None
        raise Failed(
            f"failed (opted out): {where}: opted out on {sent.since:%Y-%m-%d %H:%M} UTC "
            "(recorded in the ledger); not sent"
        )
    if sent.outcome != "sent":
        detail = f"; retry after {sent.retry_after:g} s" if sent.retry_after else ""
        if sent.recorded:
            detail += "; recorded in the ledger"
        raise Failed(f"failed ({sent.outcome}): {where}: {sent.error}{detail}")
    result = sent.result
    assert result is not None
    extra = f", {result.segments} segment(s)" if result.segments else ""
    if chosen_notifier[0].channel == "console" and chosen != "console":
        provider = "Twilio" if chosen == "sms" else "SMTP"
        extra += f"; printed here: no {provider} settings, so {chosen} goes to the console"
    typer.echo(f"sent: {where}: {result.provider_id} ({result.status}{extra})")


class OptChannel(StrEnum):
    sms = "sms"
    email = "email"


@handled
def opt_in(
    to: PartnerOption,
    channel: Annotated[OptChannel, typer.Option("--channel", show_default=False)],
    config: ConfigOption = None,
) -> None:
    """Opt a partner back in to a channel they opted out of (STOP, an unsubscribe link).

    Only when they asked for it. A new number or address in the ritual file starts without
    the old one's opt-out anyway."""
    settings, loaded = load_file(config)
    household, partner = find_partner(loaded.file, to)
    ledger = ledger_if_any(settings)
    if ledger is None:
        raise Usage(f"tend: no ledger at {safe_url(settings)}: nothing to change")
    changed = ledger.partners.clear_opt_out(household.id, partner.id, channel.value)
    name = f"{household.id}/{partner.id}"
    if changed:
        typer.echo(f"{name} gets {channel.value} messages again")
    else:
        typer.echo(f"{name} had not opted out of {channel.value}: nothing changed")
