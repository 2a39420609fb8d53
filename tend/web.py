"""The ASGI app (FastAPI), served by uvicorn through ``tend web`` or ``tend run``.

- ``POST /twilio/sms``: a partner's reply (DONE, SKIP, SNOOZE, ...), signature checked,
  recorded once by ``MessageSid``, applied by :func:`scheduler.replies.handle_reply` and
  answered with TwiML;
- ``POST /twilio/status``: Twilio's delivery receipts for the SMS Tend sent;
- ``GET /confirm/{token}`` shows what the e-mail's confirm link (signed, valid for 7 days)
  confirms, with a button; ``POST`` (the button) records it: a ``GET`` never writes, since
  link scanners and previews fetch every link;
- ``GET /unsubscribe/{token}`` shows a button, ``POST`` unsubscribes: one-click unsubscribe
  per RFC 8058, which mail providers call with ``List-Unsubscribe=One-Click``; a ``GET``
  alone never unsubscribes, since link scanners fetch every link;
- ``GET /calendar/{token}.ics``: a household's private iCalendar feed;
- ``GET /healthz`` (is the database reachable, how old is the newest worker heartbeat) and
  ``GET /metrics`` (Prometheus).

Every request body is limited to :data:`MAX_BODY`; a request that has not fully arrived
within ``TEND_REQUEST_TIMEOUT_SECONDS`` is closed by the server's protocol
(:mod:`tend.timeouts`), before it reaches the app.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from anyio import CapacityLimiter, to_thread
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from jinja2 import Environment
from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from twilio.twiml.messaging_response import MessagingResponse

from config.model import RitualFile
from notifiers.links import BadLink, ConfirmLink, Links
from notifiers.twilio_webhooks import MAX_BODY as TWILIO_MAX_BODY
from notifiers.twilio_webhooks import TwilioWebhooks, Verdict
from scheduler.calendar import household_calendar
from scheduler.completions import Confirmed, confirm, look_before_confirming
from scheduler.ledger.rows import OccurrenceRow, WorkerHeartbeatRow
from scheduler.metrics import (
    FORM_REFUSALS,
    INBOUND_REPLIES,
    WEBHOOKS_REJECTED,
    LedgerCollector,
    render,
)
from scheduler.optouts import record_opt_out
from scheduler.receipts import record_receipt
from scheduler.replies import EARLY, Answer, handle_reply
from scheduler.streaks import rules_for

__all__ = ["HEARTBEAT_STALE_SECONDS", "MAX_BODY", "BodyLimit", "create_app"]

log = logging.getLogger(__name__)

# Workers beat every 15 s; three missed beats and the scheduler is considered down.
HEARTBEAT_STALE_SECONDS = 45
# No route takes more than a webhook's form: a larger body is refused before it is read.
MAX_BODY = TWILIO_MAX_BODY


class BodyLimit:
    """ASGI middleware: a request body over `limit` bytes gets 413, whether its
    Content-Length says so or a chunked body grows past it while it is read."""

    def __init__(
        self, app: ASGIApp, limit: int, refused: Callable[[str], None] | None = None
    ) -> None:
        self.app = app
        self.limit = limit
        self.refused = refused or (lambda path: None)  # told the path of each 413

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = PlainTextResponse("request body too large", status_code=413)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and not declared.isdigit():
            await PlainTextResponse("bad Content-Length", status_code=400)(scope, receive, send)
            return
        if declared is not None and int(declared) > self.limit:
            self.refused(scope["path"])
            await too_large(scope, receive, send)
            return
        seen = 0
        started = False

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, sending)
        except _TooLarge:
            self.refused(scope["path"])
            if started:
                raise
            await too_large(scope, receive, send)


class _TooLarge(Exception):
    """A streamed body grew past the limit while the app read it."""


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


async def _form(request: Request) -> dict[str, str] | Response:
    """The request's urlencoded form, or the error answer (not a form). Its size is
    :class:`BodyLimit`'s to refuse, before a route reads it."""
    try:
        body = await request.body()
    except ClientDisconnect:
        # Gone before its body was in (or closed by the request timeout, tend/timeouts.py):
        # nobody reads this answer, and the log needs no traceback of it.
        return PlainTextResponse("request body incomplete", status_code=400)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return PlainTextResponse("expected a form", status_code=415)
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        return PlainTextResponse("malformed form", status_code=400)
    return dict(pairs)


def _needs(
    connection: Connection, file: RitualFile | None, household: str, occurrence: int
) -> tuple[frozenset[str], datetime | None]:
    """Who must confirm `occurrence` before it counts (a ``streak = "both"`` ritual), and
    when it happens (None: no such occurrence, or one called off)."""
    found = connection.execute(
        select(
            OccurrenceRow.ritual_id, OccurrenceRow.recipient, OccurrenceRow.at, OccurrenceRow.status
        ).where(OccurrenceRow.id == occurrence)
    ).first()
    if found is None:
        return frozenset(), None
    at = None if found.status == "cancelled" else found.at
    if file is None or household not in {h.id for h in file.households}:
        return frozenset(), at
    ritual = next((r for r in file.rituals if r.id == found.ritual_id), None)
    if ritual is None or ritual.streak != "both":
        return frozenset(), at
    return rules_for(file, household, ritual, found.recipient or None).audience, at


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


def _reply_threads(engine: Engine) -> int:
    """How many replies are applied at once (see ``replying`` in :func:`create_app`)."""
    if engine.dialect.name == "sqlite":
        return 1
    size = getattr(engine.pool, "size", None)
    overflow = getattr(engine.pool, "_max_overflow", 0)
    if not callable(size):
        return 8
    return max(1, int(size()) + max(0, int(overflow)))


def create_app(
    engine: Engine,
    *,
    clock: Callable[[], datetime] | None = None,
    links: Links | None = None,
    twilio: TwilioWebhooks | None = None,
    rituals: Callable[[], RitualFile | None] | None = None,
) -> FastAPI:
    """The app. `rituals` gives the ritual file replies are judged by (the one the worker
    last synced, see :class:`scheduler.planner.SyncedFile`)."""
    now = clock or (lambda: datetime.now(UTC))
    app = FastAPI(title="Tend", docs_url=None, redoc_url=None, openapi_url=None)
    webhook_routes = ("/twilio/sms", "/twilio/status")

    def too_large(path: str) -> None:
        # The middleware answers before the route reads its form: count the refusal here
        # (for the webhook routes only: any other path would be a label of the caller's).
        if path in webhook_routes:
            WEBHOOKS_REJECTED.labels(route=path, reason="too_large").inc()

    app.add_middleware(BodyLimit, limit=MAX_BODY, refused=too_large)
    webhooks = twilio or TwilioWebhooks(None, None)

    def ritual_file() -> RitualFile | None:
        try:
            return rituals() if rituals is not None else None
        except SQLAlchemyError as exc:
            log.error("reading the ritual file from the ledger failed: %s", type(exc).__name__)
            return None

    def refused(route: str, reason: str, answer: Response) -> Response:
        WEBHOOKS_REJECTED.labels(route=route, reason=reason).inc()
        return answer

    # Replies are applied in worker threads, this many at once: SQLite has one writer at a
    # time, and more threads would only poll its lock (the busy handler sleeps up to 100 ms
    # between tries); PostgreSQL gets as many as the engine's pool has connections, so none
    # waits for one. Measured in bench/webhook.py.
    replying = CapacityLimiter(_reply_threads(engine))

    @app.post("/twilio/sms")
    async def twilio_sms(request: Request) -> Response:
        """An inbound SMS: checked, recorded once, applied, answered with TwiML."""
        route = "/twilio/sms"
        form = await _form(request)
        if isinstance(form, Response):
            return refused(route, FORM_REFUSALS.get(form.status_code, "malformed"), form)
        verdict = webhooks.check(
            request.url.path, request.url.query, form, request.headers.get("x-twilio-signature")
        )
        if verdict is Verdict.UNCONFIGURED:
            log.error(
                "an inbound SMS arrived, but TWILIO_AUTH_TOKEN or TEND_PUBLIC_URL is not set, "
                "so its signature cannot be checked: not applied"
            )
            unconfigured = PlainTextResponse("webhooks are not configured", status_code=503)
            return refused(route, "unconfigured", unconfigured)
        if verdict is Verdict.FORGED:
            log.warning("rejected an inbound SMS: missing or wrong signature")
            return refused(route, "forged", PlainTextResponse("bad signature", status_code=403))
        sid = form.get("MessageSid") or form.get("SmsSid") or ""
        sender = form.get("From") or ""
        # PostgreSQL text cannot hold NUL, and no real MessageSid or number has one.
        too_long = len(sid) > 64 or len(sender) > 64
        if not sid or not sender or too_long or "\x00" in sid + sender:
            malformed = PlainTextResponse("MessageSid and From are required", status_code=400)
            return refused(route, "malformed", malformed)
        token = request.headers.get("i-twilio-idempotency-token") or None
        body = form.get("Body") or ""
        arrived = now()  # not when a reply thread is free

        def apply() -> Answer | None:
            # The ritual file too: a look at the ledger every few seconds, never on the loop.
            file = ritual_file()
            if file is None:
                return None
            return handle_reply(
                engine,
                file,
                sender=sender,
                body=body,
                provider_id=sid,
                idempotency_token=token[:128] if token else None,
                now=arrived,
            )

        try:
            answer = await to_thread.run_sync(apply, limiter=replying)
        except SQLAlchemyError as exc:
            log.error("applying an inbound SMS failed: %s", type(exc).__name__)
            return PlainTextResponse("try again later", status_code=503)
        if answer is None:
            log.error("an inbound SMS arrived before any ritual file was synced: not applied")
            return PlainTextResponse("no ritual file yet", status_code=503)
        if not answer.duplicate:
            INBOUND_REPLIES.labels(command=answer.command).inc()
        twiml = MessagingResponse()
        if answer.text:
            twiml.message(answer.text)
        return Response(str(twiml), media_type="application/xml")

    @app.post("/twilio/status")
    async def twilio_status(request: Request) -> Response:
        """Twilio's delivery receipts for the SMS Tend sent (``status_callback``)."""
        form = await _form(request)
        if isinstance(form, Response):
            reason = FORM_REFUSALS.get(form.status_code, "malformed")
            WEBHOOKS_REJECTED.labels(route="/twilio/status", reason=reason).inc()
            return form
        verdict = webhooks.check(
            request.url.path, request.url.query, form, request.headers.get("x-twilio-signature")
        )
        if verdict is Verdict.UNCONFIGURED:
            WEBHOOKS_REJECTED.labels(route="/twilio/status", reason="unconfigured").inc()
            log.error(
                "a Twilio status callback arrived, but TWILIO_AUTH_TOKEN or TEND_PUBLIC_URL "
                "is not set, so its signature cannot be checked: ignored"
            )
            return PlainTextResponse("webhooks are not configured", status_code=503)
        if verdict is Verdict.FORGED:
            WEBHOOKS_REJECTED.labels(route="/twilio/status", reason="forged").inc()
            log.warning("rejected a Twilio status callback: missing or wrong signature")
            return PlainTextResponse("bad signature", status_code=403)
        sid = form.get("MessageSid") or form.get("SmsSid")
        status = form.get("MessageStatus") or form.get("SmsStatus")
        # Twilio's ids are 34 characters; a NUL is never Twilio's (and PostgreSQL refuses it).
        if not sid or not status or len(sid) > 64 or "\x00" in sid + status:
            WEBHOOKS_REJECTED.labels(route="/twilio/status", reason="malformed").inc()
            return PlainTextResponse("MessageSid and MessageStatus are required", status_code=400)
        try:
            await run_in_threadpool(
                record_receipt,
                engine,
                channel="sms",
                provider_id=sid,
                status=status,
                error_code=(form.get("ErrorCode") or "").replace("\x00", "")[:16] or None,
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

    def read_confirm(token: str) -> ConfirmLink | HTMLResponse:
        if links is None:
            return page("Not available", "This Tend has no secret key set.", status=404)
        try:
            return links.read_confirm(token)
        except BadLink as exc:
            if exc.expired:
                return page(
                    "Link expired",
                    "Confirm links work for 7 days. Nothing was recorded.",
                    status=410,
                )
            return page("Link not valid", "This confirm link is not valid.", status=400)

    def confirmable(
        connection: Connection, file: RitualFile | None, found: ConfirmLink, moment: datetime
    ) -> tuple[Confirmed, frozenset[str]] | HTMLResponse:
        """What the link would confirm and who must confirm it, or the page that says why
        there is nothing to confirm now (no such occurrence or partner, or not yet)."""
        seen = look_before_confirming(
            connection,
            household=found.household,
            occurrence=found.occurrence,
            partner=found.partner,
        )
        if seen.outcome == "unknown":
            return page("Link not valid", "This confirm link is not valid.", status=400)
        needs, at = _needs(connection, file, found.household, found.occurrence)
        if at is not None and at > moment + EARLY:
            # A plan-ahead e-mail's link: nothing to confirm before it happens. When, in
            # the time the partner lives by (with the zone's name: they may be travelling).
            local = at.astimezone(_zone(file, found.household, found.partner))
            return page(
                "Not yet",
                f"This happens on {local:%A %-d %B} ({local:%H:%M %Z}). Come back to this "
                "link after it. Nothing was recorded.",
            )
        return seen, needs

    def answer(file: RitualFile | None, done: Confirmed, needs: frozenset[str]) -> HTMLResponse:
        """The page for `done`: what the button did (or, ``open``, would do)."""
        titles = {r.id: r.display_name for r in file.rituals} if file else {}
        what = titles.get(done.ritual or "") or (done.ritual or "").replace("-", " ").replace(
            "_", " "
        )
        when = f"{what} on {done.slot:%A %-d %B}" if done.slot else what
        if done.outcome == "open":
            return page("Done it?", f"Mark the {when} as done?", button="Yes, mark it done")
        if done.outcome == "cancelled":
            return page("Called off", f"The {when} was called off; there is nothing to confirm.")
        if done.outcome == "already":
            return page("Already done", f"You had marked the {when} as done. Thank you!")
        if not set(needs) <= done.confirmed_by:
            return page(
                "Done, for you",
                f"Marked the {when} as done for you. It counts for your streak when your "
                "partner confirms it too.",
            )
        return page("Done!", f"Marked the {when} as done. Thank you!")

    @app.get("/confirm/{token}")
    def confirm_page(token: str) -> HTMLResponse:
        """The e-mail's "Done it?" link: says what it confirms, with a button. Reads only:
        mail scanners and link previews fetch every link, and nobody did the ritual then."""
        found = read_confirm(token)
        if isinstance(found, HTMLResponse):
            return found
        file = ritual_file()
        try:
            with engine.connect() as connection:
                seen = confirmable(connection, file, found, now())
        except SQLAlchemyError:
            return page("Try again later", "Tend could not read that just now.", status=503)
        if isinstance(seen, HTMLResponse):
            return seen
        return answer(file, *seen)

    @app.post("/confirm/{token}")
    def confirm_link(token: str) -> HTMLResponse:
        """The confirm page's button: confirms the occurrence for that partner, once."""
        found = read_confirm(token)
        if isinstance(found, HTMLResponse):
            return found
        file = ritual_file()
        moment = now()
        try:
            with engine.begin() as connection:
                seen = confirmable(connection, file, found, moment)
                if isinstance(seen, HTMLResponse):
                    return seen
                needs = seen[1]
                done = confirm(
                    connection,
                    household=found.household,
                    occurrence=found.occurrence,
                    partner=found.partner,
                    at=moment,
                    source="email",
                    needs=needs,
                )
        except SQLAlchemyError:
            return page("Try again later", "Tend could not record that just now.", status=503)
        if done.outcome == "unknown":
            return page("Link not valid", "This confirm link is not valid.", status=400)
        return answer(file, done, needs)

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

    @app.get("/calendar/{token}.ics")
    def calendar_feed(token: str) -> Response:
        """The household's private iCalendar feed; any bad URL is a plain 404 (never says
        whether a household exists). Calendar apps poll it: the token is never logged."""
        missing = PlainTextResponse("no such calendar", status_code=404)
        if links is None:
            return missing
        try:
            household = links.read_calendar(token)
        except BadLink:
            return missing
        file = ritual_file()
        if file is not None and household not in {h.id for h in file.households}:
            return missing  # removed from the file: its feed goes with it
        titles = {r.id: r.display_name for r in file.rituals} if file else None
        try:
            with engine.connect() as connection:
                body = household_calendar(connection, household, now(), titles)
        except SQLAlchemyError as exc:
            log.error("reading a calendar feed failed: %s", type(exc).__name__)
            return PlainTextResponse("try again later", status_code=503)
        if body is None:
            return missing
        return Response(
            body,
            media_type="text/calendar; charset=utf-8",
            headers={"Cache-Control": "private, max-age=300"},
        )

    ledger = LedgerCollector(engine, now)

    @app.get("/metrics")
    def metrics() -> Response:
        """Prometheus' text format: this process's counters and the ledger's numbers."""
        body, content_type = render(ledger)
        return Response(body, media_type=content_type)

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        body: dict[str, Any] = {"database": "ok", "heartbeat_age_seconds": None}
        try:
            with engine.connect() as connection:
                last = connection.execute(
                    select(func.max(WorkerHeartbeatRow.beat_at)).where(
                        WorkerHeartbeatRow.stopped_at.is_(None)
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
