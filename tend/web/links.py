"""The signed links: an e-mail's confirm link and unsubscribe link, and a household's
private calendar feed.

- ``GET /confirm/{token}`` shows what the link (signed, valid for 7 days) confirms, with a
  button; ``POST`` (the button) records it: a ``GET`` never writes, since link scanners and
  previews fetch every link;
- ``GET /unsubscribe/{token}`` shows a button, ``POST`` unsubscribes: one-click unsubscribe
  per RFC 8058, which mail providers call with ``List-Unsubscribe=One-Click``;
- ``GET /calendar/{token}.ics``: a household's private iCalendar feed (what both share), or
  one partner's (that and their own nudges); any bad URL is a plain 404 (never says whether
  a household exists), and the token is never logged.
"""

from __future__ import annotations

import logging
from datetime import datetime
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Response
from fastapi.responses import HTMLResponse, PlainTextResponse

from config.model import RitualFile
from notifiers.links import BadLink, CalendarLink, ConfirmLink
from scheduler.acts import acts, wording
from scheduler.acts.acts import Done
from scheduler.ledger import LedgerError, Records
from scheduler.reports.calendar import addressed_rituals, household_calendar
from tend.web.context import AppContext, Context
from tend.web.pages import show

__all__ = ["router"]

log = logging.getLogger("tend.web")

router = APIRouter()


def _zone(file: RitualFile | None, household: str, partner: str) -> ZoneInfo:
    """The partner's zone: their own, else the household's, else the file's default; UTC
    without a ritual file or with a household no longer in it."""
    found = next((h for h in file.households if h.id == household), None) if file else None
    if file is None or found is None:
        return ZoneInfo("UTC")
    try:
        zone, partners = found.zones(file.timezone)
    except ValueError:  # a default that is no zone: `tend check` reports it
        return ZoneInfo("UTC")
    return partners.get(partner, zone)


def _read_confirm(ctx: AppContext, token: str) -> ConfirmLink | HTMLResponse:
    if ctx.links is None:
        return show(wording.NOT_AVAILABLE, 404)
    try:
        return ctx.links.read_confirm(token)
    except BadLink as exc:
        if exc.expired:
            return show(wording.CONFIRM_EXPIRED, 410)
        return show(wording.CONFIRM_INVALID, 400)


def _answer(file: RitualFile | None, done: Done) -> HTMLResponse:
    """The page for `done`: what the button did (or, ``open``, would do)."""
    titles = {r.id: r.display_name for r in file.rituals} if file else {}
    return show(wording.confirm_page(done, wording.ritual_title(titles, done.confirmed.ritual)))


def _confirmable(
    tx: Records, file: RitualFile | None, found: ConfirmLink, moment: datetime
) -> Done | HTMLResponse:
    """What the link would confirm, or the page that says why there is nothing to confirm
    now (no such occurrence or partner, or not yet)."""
    seen = acts.look(
        tx,
        file,
        household=found.household,
        partner=found.partner,
        occurrence=found.occurrence,
        now=moment,
    )
    if seen.state == "unknown":
        return show(wording.CONFIRM_INVALID, 400)
    if seen.state == "not_yet":
        assert seen.at is not None
        return show(
            wording.not_yet(seen.at.astimezone(_zone(file, found.household, found.partner)))
        )
    assert seen.done is not None
    return seen.done


@router.get("/confirm/{token}")
def confirm_page(token: str, ctx: Context) -> HTMLResponse:
    """The e-mail's "Done it?" link: says what it confirms, with a button. Reads only:
    mail scanners and link previews fetch every link, and nobody did the ritual then."""
    found = _read_confirm(ctx, token)
    if isinstance(found, HTMLResponse):
        return found
    file = ctx.ritual_file([found.household])
    try:
        seen = _confirmable(ctx.ledger, file, found, ctx.now())
    except LedgerError:
        return show(wording.NOT_READ, 503)
    if isinstance(seen, HTMLResponse):
        return seen
    return _answer(file, seen)


@router.post("/confirm/{token}")
def confirm_link(token: str, ctx: Context) -> HTMLResponse:
    """The confirm page's button: confirms the occurrence for that partner, once."""
    found = _read_confirm(ctx, token)
    if isinstance(found, HTMLResponse):
        return found
    file = ctx.ritual_file([found.household])
    moment = ctx.now()
    try:
        with ctx.ledger.transaction() as tx:
            seen = _confirmable(tx, file, found, moment)
            if isinstance(seen, HTMLResponse):
                return seen
            done = acts.confirm(
                tx,
                household=found.household,
                partner=found.partner,
                occurrence=found.occurrence,
                at=moment,
                source="email",
                needs=seen.needs,
            )
    except LedgerError:
        return show(wording.NOT_RECORDED, 503)
    if done.confirmed.outcome == "unknown":
        return show(wording.CONFIRM_INVALID, 400)
    return _answer(file, done)


def _read_unsubscribe(ctx: AppContext, token: str) -> tuple[str, str] | HTMLResponse:
    if ctx.links is None:
        return show(wording.NOT_AVAILABLE, 404)
    try:
        found = ctx.links.read_unsubscribe(token)
    except BadLink:
        return show(wording.UNSUBSCRIBE_INVALID, 400)
    if found.channel != "email":
        return show(wording.UNSUBSCRIBE_INVALID, 400)
    return found.household, found.partner


@router.get("/unsubscribe/{token}")
def unsubscribe_page(token: str, ctx: Context) -> HTMLResponse:
    found = _read_unsubscribe(ctx, token)
    if isinstance(found, HTMLResponse):
        return found
    return show(wording.UNSUBSCRIBE_ASK)


@router.post("/unsubscribe/{token}")
def unsubscribe(token: str, ctx: Context) -> HTMLResponse:
    found = _read_unsubscribe(ctx, token)
    if isinstance(found, HTMLResponse):
        return found
    household, partner = found
    try:
        with ctx.ledger.transaction() as tx:
            known = acts.unsubscribe(
                tx, household=household, partner=partner, channel="email", now=ctx.now()
            )
    except LedgerError:
        return show(wording.NOT_RECORDED, 503)
    if not known:
        return show(wording.UNSUBSCRIBE_INVALID, 400)
    return show(wording.UNSUBSCRIBED)


def _in_file(file: RitualFile, link: CalendarLink) -> bool:
    """The household of a calendar link (and its partner, for a partner's feed) is still in
    the ritual file."""
    household = next((h for h in file.households if h.id == link.household), None)
    if household is None:
        return False
    return link.partner is None or link.partner in {p.id for p in household.partners}


@router.get("/calendar/{token}.ics")
def calendar_feed(token: str, ctx: Context) -> Response:
    """The household's private iCalendar feed; any bad URL is a plain 404. Calendar apps
    poll it: the token is never logged."""
    missing = PlainTextResponse("no such calendar", status_code=404)
    if ctx.links is None:
        return missing
    try:
        found = ctx.links.read_calendar(token)
    except BadLink:
        return missing
    file = ctx.ritual_file([found.household])
    if file is not None and not _in_file(file, found):
        return missing  # removed from the file: its feed goes with it
    titles = {r.id: r.display_name for r in file.rituals} if file else None
    try:
        body = household_calendar(
            ctx.ledger,
            found.household,
            ctx.now(),
            titles,
            partner=found.partner,
            addressed=addressed_rituals(file) if file else None,
        )
    except LedgerError as exc:
        log.error("reading a calendar feed failed: %s", type(exc).__name__)
        return PlainTextResponse("try again later", status_code=503)
    if body is None:
        return missing
    return Response(
        body,
        media_type="text/calendar; charset=utf-8",
        headers={"Cache-Control": "private, max-age=300"},
    )
