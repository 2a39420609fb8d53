"""Recording the sends that went out, a batch at a time, on a thread of its own."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from notifiers.base import SendResult
from scheduler.ledger.claims import Claim

__all__ = ["RECORD_EVERY", "Recorder", "Sent"]

log = logging.getLogger("scheduler.dispatcher")

RECORD_EVERY = 0.05  # seconds: sends that went out meanwhile are recorded together


@dataclass(frozen=True, slots=True)
class Sent:
    """A send that went out, waiting to be recorded."""

    claim: Claim
    values: dict[str, Any]
    result: SendResult
    has_receipts: bool


class Recorder:
    """A thread of its own that writes the outcomes of sends as they come, a batch at a time:
    what arrives within RECORD_EVERY of the first is written together. Not the claiming
    thread, whose claim may wait on a lock (a long re-plan) while sends that went out would
    wait unrecorded past the claim timeout, and be sent again by a reconciler."""

    def __init__(self, write: Callable[[list[Sent]], int]) -> None:
        self._write = write
        self._items: list[Sent] = []
        self._changed = threading.Condition()
        self._queued = 0  # outcomes handed in, ever
        self._handled = 0  # outcomes written (or given up on), ever
        self._recorded = 0  # rows written, ever
        self._hurry = 0  # flushes waiting: write at once, do not gather
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="tend-record", daemon=True)
        self._thread.start()

    def put(self, item: Sent) -> None:
        with self._changed:
            self._items.append(item)
            self._queued += 1
            self._changed.notify_all()

    def flush(self) -> int:
        """Wait until everything handed in so far is written; return the rows written."""
        with self._changed:
            target, before = self._queued, self._recorded
            self._hurry += 1
            self._changed.notify_all()
            try:
                self._changed.wait_for(lambda: self._handled >= target or self._closed)
            finally:
                self._hurry -= 1
            return self._recorded - before

    def close(self) -> None:
        """Write what is left, then stop the thread."""
        self.flush()
        with self._changed:
            self._closed = True
            self._changed.notify_all()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: bool(self._items) or self._closed)
                if not self._items:
                    return  # closed, and nothing left
                # Gather what else comes meanwhile, unless someone is waiting for it.
                self._changed.wait_for(lambda: self._hurry > 0 or self._closed, RECORD_EVERY)
                batch, self._items = self._items, []
            written = 0
            try:
                written = self._write(batch)
            except Exception:  # _write logs its own failures; this is a last resort
                log.exception("recording %d sends failed", len(batch))
            finally:
                with self._changed:
                    self._handled += len(batch)
                    self._recorded += written
                    self._changed.notify_all()
