"""The history heatmap of a household with 10 years of weekly history and five rituals:
``household_history`` (one read of the ledger) and ``heatmap_svg``, as the couple's page
draws them.

Usage: .venv/bin/python bench/history.py [YEARS] [CALLS]
Default: 10 years, 200 calls, a fresh SQLite file.

One household, five weekly rituals (two shared, one ``to = "each"`` counted once per
partner, one for one partner alone): YEARS x 52 occurrences each, written directly (it is a
benchmark), each told to both partners and confirmed most weeks, a freeze now and then, the
odd miss and failed message. Prints the p50 and p99 of one history + SVG, in ms, wall time.
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

from config.loader import parse_ritual_file
from rituals.clock import resolve
from scheduler.ledger import Ledger, Records
from scheduler.ledger.engine import make_engine
from scheduler.ledger.rows import CompletionRow, DeliveryRow, OccurrenceRow
from scheduler.ledger.schema import upgrade
from scheduler.planner import sync_file
from scheduler.reports.heatmap import heatmap_svg
from scheduler.reports.history import household_history

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
[[rituals]]
id = "date-night"
kind = "date_night"
schedule = "weekly on fri at 19:00"
[[rituals]]
id = "appreciation"
kind = "appreciation"
schedule = "weekly on wed at 12:00"
to = "each"
[[rituals]]
id = "walk"
kind = "custom"
message = "A walk?"
schedule = "weekly on sat at 10:00"
to = "a"
"""
# (ritual, recipient, weekday, hour, minute): five series.
SERIES = [
    ("check-in", "", 6, 19, 30),
    ("date-night", "", 4, 19, 0),
    ("appreciation", "a", 2, 12, 0),
    ("appreciation", "b", 2, 12, 0),
    ("walk", "", 5, 10, 0),
]
ZONE = ZoneInfo("America/New_York")


def history(engine: Engine, years: int, now: datetime) -> int:
    occurrences, deliveries, completions = [], [], []
    index = 0
    for ritual, recipient, weekday, hour, minute in SERIES:
        slot = datetime(now.year - years, 1, 1, hour, minute)
        while slot.weekday() != weekday:
            slot += timedelta(days=1)
        while resolve(slot, ZONE) < now:
            index += 1
            at = resolve(slot, ZONE)
            occurrences.append(
                {
                    "id": index,
                    "household_id": "h",
                    "ritual_id": ritual,
                    "slot": slot,
                    "recipient": recipient,
                    "kind": "custom",
                    "at": at,
                    "status": "confirmed" if index % 10 else "open",
                    "item": "Cook a new recipe together",
                    "planners": "",
                    "generation": 1,
                    "created_at": at,
                    "updated_at": at,
                }
            )
            for partner in [recipient] if recipient else ["a", "b"]:
                deliveries.append(
                    {
                        "occurrence_id": index,
                        "household_id": "h",
                        "partner_key": partner,
                        "role": "day_of",
                        "channel": "sms",
                        "status": "failed" if index % 37 == 0 else "sent",
                        "due_at": at,
                        "next_attempt_at": at,
                        "expires_at": at + timedelta(hours=2),
                        "attempts": 1,
                        "body": "Time for it",
                        "sent_at": None if index % 37 == 0 else at,
                        "generation": 1,
                        "created_at": at,
                        "updated_at": at,
                    }
                )
            if index % 10:
                action = "skip" if index % 10 == 5 else "confirm"
                for partner in ["a", "b"][: 1 + index % 2]:
                    completions.append(
                        {
                            "occurrence_id": index,
                            "partner_key": recipient or partner,
                            "action": action,
                            "froze": action == "skip" and index % 20 == 5,
                            "at": at + timedelta(hours=1),
                            "source": "sms",
                        }
                    )
                    if recipient:
                        break
            slot += timedelta(days=7)
    with engine.begin() as connection:
        connection.execute(insert(OccurrenceRow), occurrences)
        connection.execute(insert(DeliveryRow), deliveries)
        connection.execute(insert(CompletionRow), completions)
    return len(occurrences)


def main() -> None:
    years = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    calls = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    now = datetime(2027, 6, 1, 12, 0, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        upgrade(engine)
        file = parse_ritual_file(FILE, name="bench", today=now).file
        sync_file(Ledger(engine), file, now)
        count = history(engine, years, now)
        print(f"sqlite: {count} occurrences over {years} years, five series")
        times = []
        size = 0
        with engine.connect() as connection:
            for _ in range(calls):
                started = time.perf_counter()
                found = household_history(Records(connection), file, "h", now)
                svg = heatmap_svg(found, today=now.astimezone(ZONE).date(), title="History")
                times.append((time.perf_counter() - started) * 1000)
                connection.commit()
                size = len(svg)
        engine.dispose()
    cells = sum(len(r.cells) for r in found)
    quantiles = statistics.quantiles(times, n=100)
    print(f"  {len(found)} rows, {cells} cells, SVG {size / 1024:.0f} KiB")
    print(
        f"  household_history + heatmap_svg: p50 {quantiles[49]:.2f} ms, "
        f"p99 {quantiles[98]:.2f} ms ({calls} calls)"
    )
    print("goal: well under the page's 20 ms p99")


if __name__ == "__main__":
    main()
