"""Twilio's webhooks: a partner's reply (``POST /twilio/sms``), signature checked, recorded
once by ``MessageSid``, applied by :func:`scheduler.acts.replies.handle_reply` and answered
with TwiML; and Twilio's delivery receipts for the SMS Tend sent (``POST /twilio/status``)."""

from __future__ import annotations

import logging

from anyio import to_thread
from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from notifiers.twilio_webhooks import (
    BadForm,
    Verdict,
    inbound_sms,
    parse_form,
    status_callback,
    twiml,
)
from scheduler.acts.replies import Answer, handle_reply, normalize_number
from scheduler.ledger import LedgerError
from scheduler.metrics import INBOUND_REPLIES, WEBHOOKS_REJECTED
from tend.web.context import AppContext, Context

__all__ = ["WEBHOOK_ROUTES", "router"]

log = logging.getLogger("tend.web")

router = APIRouter()
WEBHOOK_ROUTES = ("/twilio/sms", "/twilio/status")


def _refused(route: str, reason: str, answer: Response) -> Response:
    WEBHOOKS_REJECTED.labels(route=route, reason=reason).inc()
    return answer


async def _signed_form(request: Request, ctx: AppContext, what: str) -> dict[str, str] | Response:
    """The request's form, when Twilio signed it; else the answer that refuses it (counted).
    Its size is :class:`~tend.web.limits.BodyLimit`'s to refuse, before a route reads it."""
    route = request.url.path
    try:
        body = await request.body()
    except ClientDisconnect:
        # Gone before its body was in (or closed by the request timeout, tend/timeouts.py):
        # nobody reads this answer, and the log needs no traceback of it.
        return _refused(route, "malformed", PlainTextResponse("request body incomplete", 400))
    try:
        form = parse_form(request.headers.get("content-type", ""), body)
    except BadForm as exc:
        return _refused(route, exc.reason, PlainTextResponse(str(exc), status_code=exc.status))
    verdict = ctx.webhooks.check(
        request.url.path, request.url.query, form, request.headers.get("x-twilio-signature")
    )
    if verdict is Verdict.UNCONFIGURED:
        log.error(
            "%s arrived, but TWILIO_AUTH_TOKEN or TEND_PUBLIC_URL is not set, so its "
            "signature cannot be checked: %s",
            what,
            "not applied" if route == "/twilio/sms" else "ignored",
        )
        unconfigured = PlainTextResponse("webhooks are not configured", status_code=503)
        return _refused(route, "unconfigured", unconfigured)
    if verdict is Verdict.FORGED:
        log.warning("rejected %s: missing or wrong signature", what)
        return _refused(route, "forged", PlainTextResponse("bad signature", status_code=403))
    return form


@router.post("/twilio/sms")
async def twilio_sms(request: Request, ctx: Context) -> Response:
    """An inbound SMS: checked, recorded once, applied, answered with TwiML."""
    form = await _signed_form(request, ctx, "an inbound SMS")
    if isinstance(form, Response):
        return form
    try:
        sms = inbound_sms(form)
    except BadForm as exc:
        refusal = PlainTextResponse(str(exc), status_code=exc.status)
        return _refused("/twilio/sms", exc.reason, refusal)
    token = request.headers.get("i-twilio-idempotency-token") or None
    arrived = ctx.now()  # not when a reply thread is free

    def apply() -> Answer | None:
        # The ritual file too: a look at the ledger every few seconds, never on the loop.
        file = ctx.ritual_file_for_sender(normalize_number(sms.sender))
        if file is None:
            return None
        return handle_reply(
            ctx.ledger,
            file,
            sender=sms.sender,
            body=sms.body,
            provider_id=sms.sid,
            idempotency_token=token[:128] if token else None,
            now=arrived,
            links=ctx.links,
        )

    try:
        answer = await to_thread.run_sync(apply, limiter=ctx.replying)
    except LedgerError as exc:
        log.error("applying an inbound SMS failed: %s", type(exc).__name__)
        return PlainTextResponse("try again later", status_code=503)
    if answer is None:
        log.error("an inbound SMS arrived before any ritual file was synced: not applied")
        return PlainTextResponse("no ritual file yet", status_code=503)
    if not answer.duplicate:
        INBOUND_REPLIES.labels(command=answer.command).inc()
    return Response(twiml(answer.text), media_type="application/xml")


@router.post("/twilio/status")
async def twilio_status(request: Request, ctx: Context) -> Response:
    """Twilio's delivery receipts for the SMS Tend sent (``status_callback``)."""
    form = await _signed_form(request, ctx, "a Twilio status callback")
    if isinstance(form, Response):
        return form
    try:
        callback = status_callback(form)
    except BadForm as exc:
        refusal = PlainTextResponse(str(exc), status_code=exc.status)
        return _refused("/twilio/status", exc.reason, refusal)
    try:
        await run_in_threadpool(
            ctx.ledger.receipts.record,
            channel="sms",
            provider_id=callback.sid,
            status=callback.status,
            error_code=callback.error_code,
            now=ctx.now(),
        )
    except LedgerError as exc:
        log.error("recording a Twilio status callback failed: %s", type(exc).__name__)
        return PlainTextResponse("try again later", status_code=503)
    return Response(status_code=204)
