"""The ASGI app (FastAPI), served by uvicorn through ``tend web`` or ``tend run``.

It answers ``/healthz`` (is the database reachable, how old is the newest worker heartbeat),
the e-mail's confirm link (``GET /confirm/{token}``, signed, valid for 7 days) and the e-mail
unsubscribe link (``GET`` shows a button, ``POST`` unsubscribes: one-click
unsubscribe per RFC 8058, which mail providers call with ``List-Unsubscribe=One-Click``; a
``GET`` alone never unsubscribes, since link scanners fetch every link). The webhooks
(replies, status callbacks) come with the replies issue.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse
from jinja2 import Environment
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from notifiers.links import BadLink, Links
from scheduler.completions import confirm
from scheduler.models import WorkerHeartbeat
from scheduler.optouts import record_opt_out

__all__ = ["HEARTBEAT_STALE_SECONDS", "create_app"]

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


def create_app(
    engine: Engine,
    *,
    clock: Callable[[], datetime] | None = None,
    links: Links | None = None,
) -> FastAPI:
    now = clock or (lambda: datetime.now(UTC))
    app = FastAPI(title="Tend", docs_url=None, redoc_url=None, openapi_url=None)

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
