"""The couple's page: ``GET /h/{token}``, and its buttons ``POST /h/{token}/done`` and
``POST /h/{token}/skip``.

The token is signed (:meth:`notifiers.links.Links.page_url`) and carries the page's
generation; an unknown, forged, truncated or rotated token, or one of a household or partner
no longer in the ritual file, all get the same 404 with the same body, which says nothing
about any household. The token is never logged (``tend web`` keeps no access log).

A button is a plain form (the page has no script): its occurrence, and a form token (an
HMAC of the page token, the occurrence and the action) a page elsewhere cannot know. A POST
without the right form token, or that a browser says comes from another site
(``Sec-Fetch-Site``, ``Origin``), is refused with 403. The press is applied as the same
reply by SMS would be (:func:`scheduler.acts.replies.press`), so a second press of the same
button records nothing more; either way the answer is a 303 back to the page.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from config.model import Household
from notifiers.links import BadLink, Links, PageLink
from notifiers.twilio_webhooks import BadForm, parse_form
from scheduler.acts.replies import press
from scheduler.ledger import LedgerError
from scheduler.reports.history import LABELS, day_text
from scheduler.reports.page import CouplePage, couple_page
from tend.web.context import AppContext, Context

__all__ = ["page_response", "router"]

log = logging.getLogger("tend.web")

router = APIRouter()

_TEMPLATES = Environment(
    loader=PackageLoader("tend.web", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    auto_reload=False,
)

# What every page answer carries: nothing from anywhere else may load (no script at all),
# the page is nobody's to cache, index or frame, and its address goes to no other site.
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "Cache-Control": "private, no-store",
    # same-origin, not no-referrer: with no-referrer a browser sends its form posts with
    # "Origin: null", which the buttons refuse as from another site.
    "Referrer-Policy": "same-origin",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
}

_MISSING = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Not found</title>'
    "</head><body><h1>Not found</h1><p>There is no page at this address.</p></body></html>"
)


def _missing() -> HTMLResponse:
    """The one answer for every bad page address."""
    return HTMLResponse(_MISSING, status_code=404, headers=_HEADERS)


def _read(ctx: AppContext, token: str) -> tuple[Links, PageLink, Household] | None:
    """Whose page `token` is, if it is one now: signed, of a household (and partner) still
    in the file, and of the page's current generation."""
    links = ctx.links
    if links is None:
        return None
    try:
        found = links.read_page(token)
    except BadLink:
        return None
    file = ctx.ritual_file([found.household])
    household = (
        next((h for h in file.households if h.id == found.household), None) if file else None
    )
    if household is None:
        return None
    if found.partner is not None and found.partner not in {p.id for p in household.partners}:
        return None
    if ctx.ledger.pages.generation(found.household, found.partner) != found.generation:
        return None  # rotated: an older URL
    return links, found, household


def page_response(ctx: AppContext, token: str) -> Response:
    """The page at `token`, or the 404."""
    try:
        found = _read(ctx, token)
        if found is None:
            return _missing()
        links, link, household = found
        file = ctx.ritual_file([link.household])
        assert file is not None
        page = couple_page(ctx.ledger, file, household, link.partner, ctx.now())
    except LedgerError as exc:
        log.error("reading a couple's page failed: %s", type(exc).__name__)
        return HTMLResponse("Try again in a moment.", status_code=503, headers=_HEADERS)
    return HTMLResponse(_render(page, links, token), headers=_HEADERS)


def _render(page: CouplePage, links: Links, token: str) -> str:
    forms = {
        (b.occurrence, action): links.form_token(token, b.occurrence, action)
        for b in page.buttons
        for action in ("done", "skip")
    }
    names = " and ".join(page.names)
    return _TEMPLATES.get_template("couple.html").render(
        page=page,
        title=f"Tend: {names}",
        today=day_text(page.today),
        token=token,
        forms=forms,
        labels=LABELS,
    )


@router.get("/h/{token}")
def couple(token: str, ctx: Context) -> Response:
    """The couple's page."""
    return page_response(ctx, token)


def _cross_site(request: Request, links: Links) -> bool:
    """Whether the browser says the POST comes from another site."""
    fetched = request.headers.get("sec-fetch-site")
    if fetched is not None and fetched not in ("same-origin", "none"):
        return True
    origin = request.headers.get("origin")
    if origin is None:
        return False
    public = urlsplit(links.public_url)
    own = {f"{public.scheme}://{public.netloc}", str(request.base_url).rstrip("/")}
    return origin.rstrip("/") not in own


def _pressed(
    ctx: AppContext, request: Request, token: str, action: str, fields: tuple[str, str]
) -> Response:
    found = _read(ctx, token)
    if found is None:
        return _missing()
    links, link, _household = found
    occurrence_text, form_token = fields
    if link.partner is None or not occurrence_text.isdigit() or len(occurrence_text) > 19:
        return _refused()
    occurrence = int(occurrence_text)
    if not links.check_form(token, occurrence, action, form_token) or _cross_site(request, links):
        return _refused()
    file = ctx.ritual_file([link.household])
    assert file is not None
    try:
        press(
            ctx.ledger,
            file,
            household=link.household,
            partner=link.partner,
            occurrence=occurrence,
            action=action,
            now=ctx.now(),
        )
    except LedgerError as exc:
        log.error("a couple's page button failed: %s", type(exc).__name__)
        return HTMLResponse(
            "Not recorded: try again in a moment.", status_code=503, headers=_HEADERS
        )
    return RedirectResponse(f"../{token}", status_code=303, headers=_HEADERS)


def _refused() -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><title>Refused</title><p>This button is not from your page. Open "
        "your page again and press it there.</p>",
        status_code=403,
        headers=_HEADERS,
    )


async def _form(request: Request) -> tuple[str, str] | None:
    """The button's occurrence and form token; None for a body that is no form."""
    try:
        body = await request.body()
        form = parse_form(request.headers.get("content-type", ""), body)
    except (BadForm, ClientDisconnect):
        return None
    return form.get("occurrence", ""), form.get("form_token", "")


@router.post("/h/{token}/done")
async def done(token: str, request: Request, ctx: Context) -> Response:
    """A DONE button: the occurrence confirmed by the page's partner, once."""
    fields = await _form(request)
    if fields is None:
        return _refused()
    return await run_in_threadpool(_pressed, ctx, request, token, "done", fields)


@router.post("/h/{token}/skip")
async def skip(token: str, request: Request, ctx: Context) -> Response:
    """A SKIP button: the occurrence skipped by the page's partner, once."""
    fields = await _form(request)
    if fields is None:
        return _refused()
    return await run_in_threadpool(_pressed, ctx, request, token, "skip", fields)
