"""The ASGI app (FastAPI), served by uvicorn through ``tend web`` or ``tend run``: routers
over a small app context.

- :mod:`tend.web.twilio`: ``POST /twilio/sms`` (a partner's reply) and ``POST
  /twilio/status`` (Twilio's delivery receipts);
- :mod:`tend.web.links`: the e-mail's confirm and unsubscribe links, and the calendar feed;
- :mod:`tend.web.couple`: the couple's page ``GET /h/{token}`` and its DONE and SKIP
  buttons;
- :mod:`tend.web.health`: ``GET /healthz`` and ``GET /metrics``.

Every request body is limited to :data:`MAX_BODY` (:mod:`tend.web.limits`); a request that
has not fully arrived within ``TEND_REQUEST_TIMEOUT_SECONDS`` is closed by the server's
protocol (:mod:`tend.timeouts`), before it reaches the app.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from anyio import CapacityLimiter
from fastapi import FastAPI

from config.model import RitualFile
from notifiers.links import Links
from notifiers.twilio_webhooks import TwilioWebhooks
from scheduler.ledger import Ledger
from scheduler.metrics import WEBHOOKS_REJECTED, LedgerCollector
from tend.web import couple as couple_routes
from tend.web import health as health_routes
from tend.web import links as link_routes
from tend.web import twilio as twilio_routes
from tend.web.context import AppContext
from tend.web.health import HEARTBEAT_STALE_SECONDS
from tend.web.limits import MAX_BODY, BodyLimit

__all__ = ["HEARTBEAT_STALE_SECONDS", "MAX_BODY", "BodyLimit", "create_app"]


def _too_large(path: str) -> None:
    # The middleware answers before the route reads its form: count the refusal here (for
    # the webhook routes only: any other path would be a label of the caller's).
    if path in twilio_routes.WEBHOOK_ROUTES:
        WEBHOOKS_REJECTED.labels(route=path, reason="too_large").inc()


def create_app(
    ledger: Ledger,
    *,
    clock: Callable[[], datetime] | None = None,
    links: Links | None = None,
    twilio: TwilioWebhooks | None = None,
    rituals: Callable[[], RitualFile | None] | None = None,
) -> FastAPI:
    """The app. `rituals` gives the ritual file replies are judged by (the one the worker
    last synced: :class:`scheduler.source.SyncedSource`, or in ``tend run`` the worker's
    own :class:`~scheduler.source.FileSource`)."""
    now = clock or (lambda: datetime.now(UTC))
    app = FastAPI(title="Tend", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(BodyLimit, limit=MAX_BODY, refused=_too_large)
    app.state.tend = AppContext(
        ledger=ledger,
        now=now,
        links=links,
        webhooks=twilio or TwilioWebhooks(None, None),
        rituals=rituals,
        replying=CapacityLimiter(ledger.connections()),
        collector=LedgerCollector(ledger, now),
    )
    for routes in (twilio_routes, link_routes, couple_routes, health_routes):
        app.include_router(routes.router)
    return app
