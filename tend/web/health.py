"""``GET /healthz`` (is the database reachable, how old is the newest worker heartbeat) and
``GET /metrics`` (Prometheus' text format)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from scheduler.ledger import LedgerError
from scheduler.metrics import render
from tend.web.context import Context

__all__ = ["HEARTBEAT_STALE_SECONDS", "router"]

# Workers beat every 15 s; three missed beats and the scheduler is considered down.
HEARTBEAT_STALE_SECONDS = 45

router = APIRouter()


@router.get("/metrics")
def metrics(ctx: Context) -> Response:
    """Prometheus' text format: this process's counters and the ledger's numbers."""
    body, content_type = render(ctx.collector)
    return Response(body, media_type=content_type)


@router.get("/healthz")
def healthz(ctx: Context) -> JSONResponse:
    body: dict[str, Any] = {"database": "ok", "heartbeat_age_seconds": None}
    try:
        last = ctx.ledger.workers.newest_beat()
    except LedgerError as exc:
        body["database"] = f"unreachable: {type(exc).__name__}"
        return JSONResponse(body, status_code=503)
    if last is not None:
        body["heartbeat_age_seconds"] = round((ctx.now() - last).total_seconds(), 1)
    healthy = last is not None and body["heartbeat_age_seconds"] <= HEARTBEAT_STALE_SECONDS
    body["scheduler"] = "ok" if healthy else "no recent worker heartbeat"
    return JSONResponse(body, status_code=200 if healthy else 503)
