"""The ASGI app (FastAPI), served by uvicorn through ``tend web`` or ``tend run``.

For now it answers ``/healthz``: is the database reachable, and how old is the newest worker
heartbeat. The webhooks (replies, status callbacks) come with the replies issue.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from scheduler.models import WorkerHeartbeat

__all__ = ["HEARTBEAT_STALE_SECONDS", "create_app"]

# Workers beat every 15 s; three missed beats and the scheduler is considered down.
HEARTBEAT_STALE_SECONDS = 45


def create_app(engine: Engine, *, clock: Callable[[], datetime] | None = None) -> FastAPI:
    now = clock or (lambda: datetime.now(UTC))
    app = FastAPI(title="Tend", docs_url=None, redoc_url=None, openapi_url=None)

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
