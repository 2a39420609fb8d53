"""The couple's page (``GET /h/{token}``) for a household with years of weekly history.

Usage: .venv/bin/python bench/page.py [YEARS] [CALLS] [DATABASE_URL ...]
Default: 10 years, 200 calls, a fresh SQLite file, and ``TEND_BENCH_POSTGRES_URL`` when
set; a PostgreSQL URL is emptied first (``DROP SCHEMA public CASCADE``: use a database of
its own).

One household, five weekly rituals: YEARS x 52 occurrences each, each sent to both partners
and confirmed nine weeks in ten, the last week's still open. Prints, per database, the p50
and p99 of rendering the whole page as the route does (token check, ledger reads, the
heatmap, streaks, what is coming, the buttons, the template), after a first render that
writes the streaks' checkpoints, as the page's first visit does.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, insert

sys.path.insert(0, str(Path(__file__).parent))

from plan_ledger import database_urls, fresh

from config.loader import parse_ritual_file
from notifiers.links import Links
from rituals.clock import resolve
from scheduler.ledger import Ledger
from scheduler.ledger.rows import CompletionRow, DeliveryRow, OccurrenceRow
from scheduler.planner import sync_file
from tend.web import create_app
from tend.web.couple import page_response

ZONE = ZoneInfo("America/New_York")
RITUALS = [  # id, kind, weekday (Monday 0), hour
    ("check-in", "check_in", 6, 19),
    ("date-night", "date_night", 4, 19),
    ("appreciation", "appreciation", 2, 12),
    ("walk", "custom", 5, 10),
    ("plan-the-week", "custom", 0, 8),
]
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
FILE = """
timezone = "America/New_York"
[[households]]
id = "h"
partners = [{ id = "a", name = "A", phone = "+15551230001" },
            { id = "b", name = "B", phone = "+15551230002" }]
""" + "".join(
    f'[[rituals]]\nid = "{r}"\nkind = "{k}"\nschedule = "weekly on {DAYS[d]} at {h:02d}:00"\n'
    + (f'message = "Time for {r}. Reply DONE after."\n' if k == "custom" else "")
    for r, k, d, h in RITUALS
)


def history(engine: Engine, years: int, now: datetime) -> None:
    """YEARS of weekly occurrences of each ritual, written in three statements."""
    occurrences, deliveries, completions = [], [], []
    index = 0
    for ritual, kind, weekday, hour in RITUALS:
        slot = datetime(now.year - years, 1, 1, hour)
        while slot.weekday() != weekday:
            slot += timedelta(days=1)
        while (at := resolve(slot, ZONE)) < now:
            index += 1
            recent = at > now - timedelta(days=3)
            kept = index % 10 and not recent
            occurrences.append(
                {
                    "id": index,
                    "household_id": "h",
                    "ritual_id": ritual,
                    "slot": slot,
                    "recipient": "",
                    "kind": kind,
                    "at": at,
                    "status": "confirmed" if kept else "open",
                    "planners": "",
                    "generation": 1,
                    "created_at": at,
                    "updated_at": at,
                }
            )
            deliveries.extend(
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
                    "body": f"{ritual} time",
                    "sent_at": at,
                    "generation": 1,
                    "created_at": at,
                    "updated_at": at,
                }
                for partner in ("a", "b")
            )
            if kept:
                completions.append(
                    {
                        "occurrence_id": index,
                        "partner_key": "a",
                        "action": "confirm",
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


def run(url: str, years: int, calls: int) -> None:
    engine = fresh(url)
    now = datetime(2027, 6, 1, 12, 0, tzinfo=UTC)
    file = parse_ritual_file(FILE, name="bench", today=now).file
    ledger = Ledger(engine)
    sync_file(ledger, file, now)
    print(f"{engine.dialect.name}:")
    history(engine, years, now)
    links = Links("https://tend.example.com", "bench-secret-key-0123456789")
    app = create_app(ledger, clock=lambda: now, links=links, rituals=lambda: file)
    context = app.state.tend
    token = links.page_token("h", "a", 0)
    first = page_response(context, token)
    assert first.status_code == 200, first.body
    size = len(bytes(first.body))
    times, cpu = [], []
    for _ in range(calls):
        started, started_cpu = time.perf_counter(), time.thread_time()
        answer = page_response(context, token)
        times.append((time.perf_counter() - started) * 1000)
        cpu.append((time.thread_time() - started_cpu) * 1000)
        assert answer.status_code == 200

    def p(values: list[float], q: int) -> float:
        return statistics.quantiles(values, n=100)[q - 1]

    print(
        f"  page ({size // 1024} KiB): p50 {p(times, 50):.2f} ms, p99 {p(times, 99):.2f} ms "
        f"wall; p50 {p(cpu, 50):.2f} ms, p99 {p(cpu, 99):.2f} ms CPU ({calls} renders)"
    )
    engine.dispose()


def main() -> None:
    years = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    calls = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    with tempfile.TemporaryDirectory() as tmp:
        for url in sys.argv[3:] or database_urls(tmp):
            run(url, years, calls)
    print("goal: p99 at most 20 ms on SQLite for 10 years of weekly history, five rituals")


if __name__ == "__main__":
    main()
