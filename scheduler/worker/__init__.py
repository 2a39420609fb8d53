"""The worker process: the APScheduler loop that plans and dispatches (:mod:`.worker`)."""

from __future__ import annotations

from scheduler.worker.worker import AlreadyRunning, Worker, WorkerOptions

__all__ = ["AlreadyRunning", "Worker", "WorkerOptions"]
