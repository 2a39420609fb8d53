"""The ASGI app (FastAPI), served by uvicorn through ``tend web`` or ``tend run``.

It answers ``/healthz`` (is the database reachable, how old is the newest worker heartbeat),
the e-mail's confirm link (``GET /confirm/{token}``, signed, valid for 7 days) and the e-mail
unsubscribe link (``GET`` shows a button, ``POST`` unsubscribes: one-click
unsubscribe per RFC 8058, which mail providers call with ``List-Unsubscribe=One-Click``; a
``GET`` alone never unsubscribes, since link scanners fetch every link), and Twilio's
delivery receipts (``POST /twilio/status``, signature checked). Inbound replies come with
the replies issue.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from jinja2 import Environment
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from notifiers.links import BadLink, Links
from notifiers.twilio_webhooks import MAX_BODY as TWILIO_MAX_BODY
from notifiers.twilio_webhooks import TwilioWebhooks, Verdict
from scheduler.completions import confirm
from scheduler.models import WorkerHeartbeat
from scheduler.optouts import record_opt_out
from scheduler.receipts import record_receipt

__all__ = ["HEARTBEAT_STALE_SECONDS", "create_app"]

log = logging.getLogger(__name__)

# Workers beat every 15 s; three missed beats and the scheduler is considered down.
HEARTBEAT_STALE_SECONDS = 45


_PAGE = Environment(autoescape=True).from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{{ title }}</title>
</head><body style="font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;\
max-width:32em;margin:3em auto;padding:0 1em;line-height:1.5;color:#222">
<h1 style="font-size:1.4em">{{ title }}</h1><p>{{ text }}</p>
{% if button %}<form method="post"><button type="submit" style="font-size:1em;padding:.6em 1.2em">\
{{ button }}</button></form>{% endif %}
</body></html>
"""
)


def page(title: str, text: str, *, status: int = 200, button: str | None = None) -> HTMLResponse:
    return HTMLResponse(_PAGE.render(title=title, text=text, button=button), status_code=status)


async def _form(request: Request, limit: int) -> dict[str, str] | Response:
    """The request's urlencoded form, or the error answer (too big, not a form)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        return PlainTextResponse("request body too large", status_code=413)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return PlainTextResponse("request body too large", status_code=413)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return PlainTextResponse("expected a form", status_code=415)
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        return PlainTextResponse("malformed form", status_code=400)
    return dict(pairs)


def create_app(
    engine: Engine,
    *,
    clock: Callable[[], datetime] | None = None,
    links: Links | None = None,
    twilio: TwilioWebhooks | None = None,
) -> FastAPI:
    now = clock or (lambda: datetime.now(UTC))
    app = FastAPI(title="Tend", docs_url=None, redoc_url=None, openapi_url=None)
    webhooks = twilio or TwilioWebhooks(None, None)

    @app.post("/twilio/status")
    async def twilio_status(request: Request) -> Response:
        """Twilio's delivery receipts for the SMS Tend sent (``status_callback``)."""
        form = await _form(request, TWILIO_MAX_BODY)
        if isinstance(form, Response):
            return form
        verdict = webhooks.check(
            request.url.path, request.url.query, form, request.headers.get("x-twilio-signature")
        )
        if verdict is Verdict.UNCONFIGURED:
            log.error(
                "a Twilio status callback arrived, but TWILIO_AUTH_TOKEN or TEND_PUBLIC_URL "
                "is not set, so its signature cannot be checked: ignored"
            )
            return PlainTextResponse("webhooks are not configured", status_code=503)
        if verdict is Verdict.FORGED:
            log.warning("rejected a Twilio status callback: missing or wrong signature")
            return PlainTextResponse("bad signature", status_code=403)
        sid = form.get("MessageSid") or form.get("SmsSid")
        status = form.get("MessageStatus") or form.get("SmsStatus")
        if not sid or not status or len(sid) > 64:  # Twilio's ids are 34 characters
            return PlainTextResponse("MessageSid and MessageStatus are required", status_code=400)
        try:
            await run_in_threadpool(
                record_receipt,
                engine,
                channel="sms",
                provider_id=sid,
                status=status,
                error_code=(form.get("ErrorCode") or "")[:16] or None,
                now=now(),
            )
        except SQLAlchemyError as exc:
            log.error("recording a Twilio status callback failed: %s", type(exc).__name__)
            return PlainTextResponse("try again later", status_code=503)
        return Response(status_code=204)

    def read_unsubscribe(token: str) -> tuple[str, str] | HTMLResponse:
        if links is None:
            return page("Not available", "This Tend has no secret key set.", status=404)
        try:
            found = links.read_unsubscribe(token)
        except BadLink:
            return page("Link not valid", "This unsubscribe link is not valid.", status=400)
        if found.channel != "email":
            return page("Link not valid", "This unsubscribe link is not valid.", status=400)
        return found.household, found.partner

    @app.get("/confirm/{token}")
    def confirm_link(token: str) -> HTMLResponse:
        """The e-mail's "Done it?" link: confirms the occurrence for that partner."""
        if links is None:
            return page("Not available", "This Tend has no secret key set.", status=404)
        try:
            found = links.read_confirm(token)
        except BadLink as exc:
            if exc.expired:
                return page(
                    "Link expired",
                    "Confirm links work for 7 days. Nothing was recorded.",
                    status=410,
                )
            return page("Link not valid", "This confirm link is not valid.", status=400)
        try:
            with engine.begin() as connection:
                done = confirm(
                    connection,
                    household=found.household,
                    occurrence=found.occurrence,
                    partner=found.partner,
                    at=now(),
                    source="email",
                )
        except SQLAlchemyError:
            return page("Try again later", "Tend could not record that just now.", status=503)
        if done.outcome == "unknown":
            return page("Link not valid", "This confirm link is not valid.", status=400)
        what = (done.ritual or "").replace("-", " ").replace("_", " ")
        when = f"{what} on {done.slot:%A %-d %B}" if done.slot else what
        if done.outcome == "cancelled":
            return page("Called off", f"The {when} was called off; there is nothing to confirm.")
        if done.outcome == "already":
            return page("Already done", f"You had marked the {when} as done. Thank you!")
        return page("Done!", f"Marked the {when} as done. Thank you!")

    @app.get("/unsubscribe/{token}")
    def unsubscribe_page(token: str) -> HTMLResponse:
        found = read_unsubscribe(token)
        if isinstance(found, HTMLResponse):
            return found
        return page(
            "Unsubscribe",
            "Stop Tend's e-mails to this address? Text messages, if you get them, go on.",
            button="Unsubscribe",
        )

    @app.post("/unsubscribe/{token}")
    def unsubscribe(token: str) -> HTMLResponse:
        found = read_unsubscribe(token)
        if isinstance(found, HTMLResponse):
            return found
        household, partner = found
        try:
            with engine.begin() as connection:
                known = record_opt_out(connection, household, partner, "email", now())
        except SQLAlchemyError:
            return page("Try again later", "Tend could not record that just now.", status=503)
        if not known:
            return page("Link not valid", "This unsubscribe link is not valid.", status=400)
        return page("Unsubscribed", "Tend will send no more e-mails to this address.")

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        body: dict[str, Any] = {"database": "ok", "heartbeat_age_seconds": None}
        try:
            with engine.connect() as connection:
                last = connection.execute(
                    select(func.max(WorkerHeartbeat.beat_at)).where(
                        WorkerHeartbeat.stopped_at.is_(None)
                    )
                ).scalar_one()
        except SQLAlchemyError as exc:
            body["database"] = f"unreachable: {type(exc).__name__}"
            return JSONResponse(body, status_code=503)
        if last is not None:
            body["heartbeat_age_seconds"] = round((now() - last).total_seconds(), 1)
        healthy = last is not None and body["heartbeat_age_seconds"] <= HEARTBEAT_STALE_SECONDS
        body["scheduler"] = "ok" if healthy else "no recent worker heartbeat"
        return JSONResponse(body, status_code=200 if healthy else 503)

    return app
