"""What every route shares: the ledger, the clock, the signed links, the Twilio checks and
the ritual file replies are judged by, built once per app and handed to routes as a
dependency."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from anyio import CapacityLimiter
from fastapi import Depends, Request

from config.model import RitualFile
from notifiers.links import Links
from notifiers.twilio_webhooks import TwilioWebhooks
from scheduler.ledger import Ledger, LedgerError
from scheduler.metrics import LedgerCollector

__all__ = ["AppContext", "Context"]

log = logging.getLogger("tend.web")


@dataclass
class AppContext:
    ledger: Ledger
    now: Callable[[], datetime]
    links: Links | None
    webhooks: TwilioWebhooks
    rituals: Callable[[], RitualFile | None] | None
    # Replies are applied in worker threads, this many at once: SQLite has one writer at a
    # time, and more threads would only poll its lock (the busy handler sleeps up to 100 ms
    # between tries); PostgreSQL gets as many as the pool has connections, so none waits
    # for one. Measured in bench/webhook.py.
    replying: CapacityLimiter
    collector: LedgerCollector

    def ritual_file(self, households: Sequence[str] | None = None) -> RitualFile | None:
        """The ritual file replies are judged by (None: none yet, or unreadable now); for a
        ritual directory, its rituals and these `households` (what a request is about)."""
        try:
            if self.rituals is None:
                return None
            narrow = getattr(self.rituals, "for_households", None)
            if households is not None and narrow is not None:
                found: RitualFile | None = narrow(households)
                return found
            return self.rituals()
        except LedgerError as exc:
            log.error("reading the ritual file from the ledger failed: %s", type(exc).__name__)
            return None

    def ritual_file_for_sender(self, sender: str) -> RitualFile | None:
        """The ritual file for a reply from `sender`: for a ritual directory, with the
        households that number is in (looked up only then)."""
        if not getattr(self.rituals, "directory", False):
            return self.ritual_file()
        try:
            households = sorted({h for h, _ in self.ledger.partners.with_phone(sender)})
        except LedgerError as exc:
            log.error("reading the ritual file from the ledger failed: %s", type(exc).__name__)
            return None
        return self.ritual_file(households)


async def _context(request: Request) -> AppContext:
    # async, though it awaits nothing: FastAPI runs a plain function dependency in its
    # thread pool, a thread hop on every request for one attribute read.
    context: AppContext = request.app.state.tend
    return context


Context = Annotated[AppContext, Depends(_context)]
