"""Streaks of a household with years of weekly history: checkpointed against a full fold.

Usage: .venv/bin/python bench/streaks.py [YEARS] [CALLS] [DATABASE_URL ...]
Default: 10 years, 500 calls, a fresh SQLite file, and ``TEND_BENCH_POSTGRES_URL`` when
set; a PostgreSQL URL is emptied first
(``DROP SCHEMA public CASCADE``: use a database of its own).

One household, a weekly check-in: YEARS x 52 occurrences, each sent to both partners and
confirmed nine weeks in ten (one skip a month, the odd miss). Prints, per database, the p50
and p99 of one ``household_streaks`` call as the web answers STREAK (checkpoint in place),
and the same call when every history is folded from the start (no checkpoint), and the ratio.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, delete, insert

sys.path.insert(0, str(Path(__file__).parent))

from plan_ledger import database_urls, fresh

from config.loader import parse_ritual_file
from rituals.clock import resolve
from rituals.planning import Plan
from scheduler.ledger import Ledger, Records
from scheduler.ledger.rows import (
    CompletionRow,
    DeliveryRow,
    OccurrenceRow,
    StreakCheckpointRow,
)
from scheduler.planner import sync_file
from scheduler.reports.streaks import household_streaks

FILE = """
timezone = "America/New_York"
[[households]]
id = "h"
partners = [{ id = "a", name = "A", phone = "+15551230001" },
            { id = "b", name = "B", phone = "+15551230002" }]
[[rituals]]
id = "check-in"
kind = "check_in"
schedule = "weekly on sun at 19:30"
"""


def history(engine: Engine, years: int, now: datetime) -> None:
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("America/New_York")
    first = datetime(now.year - years, 1, 7, 19, 30)
    while first.weekday() != 6:
        first += timedelta(days=1)
    occurrences, deliveries, completions = [], [], []
    slot = first
    index = 0
    while resolve(slot, zone) < now - timedelta(days=1):
        index += 1
        at = resolve(slot, zone)
        occurrences.append(
            {
                "id": index,
                "household_id": "h",
                "ritual_id": "check-in",
                "slot": slot,
                "recipient": "",
                "kind": "check_in",
                "at": at,
                "status": "confirmed" if index % 10 else "open",
                "planners": "",
                "generation": 1,
                "created_at": at,
                "updated_at": at,
            }
        )
        for partner in ("a", "b"):
            deliveries.append(
                {
                    "occurrence_id": index,
                    "household_id": "h",
                    "partner_key": partner,
                    "role": "day_of",
                    "channel": "sms",
                    "status": "sent",
                    "due_at": at,
                    "next_attempt_at": at,
                    "expires_at": at + timedelta(hours=2),
                    "attempts": 1,
                    "body": "Check-in time",
                    "sent_at": at,
                    "generation": 1,
                    "created_at": at,
                    "updated_at": at,
                }
            )
        if index % 10:
            action = "skip" if index % 10 == 5 and index % 20 else "confirm"
            completions.append(
                {
                    "occurrence_id": index,
                    "partner_key": "a",
                    "action": action,
                    "froze": action == "skip",  # one in 20 weeks: the month's freeze
                    "at": at + timedelta(hours=1),
                    "source": "sms",
                }
            )
        slot += timedelta(days=7)
    with engine.begin() as connection:
        connection.execute(insert(OccurrenceRow), occurrences)
        connection.execute(insert(DeliveryRow), deliveries)
        connection.execute(insert(CompletionRow), completions)
    print(f"  history: {len(occurrences)} occurrences, {len(completions)} completions")


def timed(
    engine: Engine, file: object, now: datetime, calls: int, *, checkpoint: bool
) -> tuple[list[float], list[float]]:
    """Milliseconds per call: wall time, and this thread's CPU time (steadier on a shared
    machine; on PostgreSQL it leaves out the server's share)."""
    times, cpu = [], []
    with engine.connect() as connection:
        for _ in range(calls):
            if not checkpoint:
                connection.execute(delete(StreakCheckpointRow))
            started, started_cpu = time.perf_counter(), time.thread_time()
            household_streaks(Records(connection), file, "h", now, save=checkpoint)  # type: ignore[arg-type]
            times.append((time.perf_counter() - started) * 1000)
            cpu.append((time.thread_time() - started_cpu) * 1000)
            connection.commit()
    return times, cpu


def run(url: str, years: int, calls: int) -> None:
    engine = fresh(url)
    now = datetime(2027, 6, 1, 12, 0, tzinfo=UTC)
    file = parse_ritual_file(FILE, name="bench", today=now).file
    Plan(file)
    sync_file(Ledger(engine), file, now)
    print(f"{engine.dialect.name}:")
    history(engine, years, now)
    with engine.begin() as connection:
        streak = household_streaks(Records(connection), file, "h", now)[0].streak
    print(f"  streak: current {streak.current}, longest {streak.longest}, kept {streak.kept}")
    fast, fast_cpu = timed(engine, file, now, calls, checkpoint=True)
    full, full_cpu = timed(engine, file, now, max(20, calls // 10), checkpoint=False)

    def p(values: list[float], q: int) -> float:
        return statistics.quantiles(values, n=100)[q - 1]

    print(
        f"  checkpointed: p50 {p(fast, 50):.2f} ms, p99 {p(fast, 99):.2f} ms wall; "
        f"p50 {p(fast_cpu, 50):.2f} ms, p99 {p(fast_cpu, 99):.2f} ms CPU ({calls} calls)"
    )
    print(
        f"  full fold:    p50 {p(full, 50):.2f} ms, p99 {p(full, 99):.2f} ms wall; "
        f"p50 {p(full_cpu, 50):.2f} ms, p99 {p(full_cpu, 99):.2f} ms CPU"
    )
    print(
        f"  ratio (full / checkpointed, p50): {p(full, 50) / p(fast, 50):.1f} wall, "
        f"{p(full_cpu, 50) / p(fast_cpu, 50):.1f} CPU"
    )
    engine.dispose()


def main() -> None:
    years = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    calls = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    with tempfile.TemporaryDirectory() as tmp:
        for url in sys.argv[3:] or database_urls(tmp):
            run(url, years, calls)
    print("goal: p99 at most 2 ms for 10 years of weekly history")


if __name__ == "__main__":
    main()
