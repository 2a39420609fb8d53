"""Planning: the ritual file into ledger rows (:mod:`.planner`), from what the file makes
(:mod:`.candidates`) by the change rules (:mod:`.rules`)."""

from __future__ import annotations

from scheduler.planner.planner import (
    CONFIG_CANCELLED,
    DEFAULT_HORIZON_DAYS,
    PlanReport,
    SyncResult,
    file_hash,
    plan_horizon,
    sync_file,
)

__all__ = [
    "CONFIG_CANCELLED",
    "DEFAULT_HORIZON_DAYS",
    "PlanReport",
    "SyncResult",
    "file_hash",
    "plan_horizon",
    "sync_file",
]
