"""Sending: the dispatcher's loop (:mod:`.dispatcher`), its decisions (:mod:`.decide`), the
retry policy (:mod:`.retry`) and the thread that records sends (:mod:`.recorder`)."""

from __future__ import annotations

from scheduler.dispatch.dispatcher import Dispatcher
from scheduler.dispatch.retry import RetryPolicy

__all__ = ["Dispatcher", "RetryPolicy"]
