"""Planning into the ledger: `plan_horizon` against a raw ``executemany`` of the same rows.

Usage: .venv/bin/python bench/plan_ledger.py [HOUSEHOLDS] [DAYS] [DATABASE_URL ...]
Default: 1000 households, 7 days, a fresh SQLite file; a PostgreSQL URL is emptied first
(``DROP SCHEMA public CASCADE``: use a database of its own). Prints, per database: the
first plan (inserts), a second plan (all conflicts: the hourly re-plan), and the limit: the
same occurrence and delivery rows written with a plain ``executemany`` INSERT, and the ratio.
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, text

sys.path.insert(0, str(Path(__file__).parent))

from plan_pure import ritual_file

from config.loader import parse_ritual_file
from rituals.planning import Plan
from scheduler.db import make_engine
from scheduler.migrate import upgrade
from scheduler.models import Delivery, Occurrence
from scheduler.planner import plan_horizon, sync_file

NOW = datetime(2027, 1, 4, 6, 0, tzinfo=UTC)


def fresh(url: str) -> Engine:
    engine = make_engine(url)
    if engine.dialect.name == "sqlite" and engine.url.database:
        for suffix in ("", "-wal", "-shm"):
            Path(engine.url.database + suffix).unlink(missing_ok=True)
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
    upgrade(engine)
    return engine


def rows_of(engine: Engine) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    with engine.connect() as connection:
        occurrences = [
            dict(r) for r in connection.execute(Occurrence.__table__.select()).mappings()
        ]
        deliveries = [dict(r) for r in connection.execute(Delivery.__table__.select()).mappings()]
    return occurrences, deliveries


def run(url: str, plan: Plan, days: int) -> None:
    engine = fresh(url)
    synced = sync_file(engine, plan.file, NOW)
    timings = []
    for label in ("first plan", "second plan"):
        started = time.perf_counter()
        report = plan_horizon(
            engine, plan, NOW, generation=synced.generation, changed=False, days=days
        )
        timings.append((label, time.perf_counter() - started, report))
    occurrences, deliveries = rows_of(engine)
    engine.dispose()

    # The limit: the same rows, inserted with executemany into empty tables.
    engine = fresh(url)
    sync_file(engine, plan.file, NOW)
    started = time.perf_counter()
    with engine.begin() as connection:
        connection.execute(insert(Occurrence.__table__), occurrences)
        connection.execute(insert(Delivery.__table__), deliveries)
    raw = time.perf_counter() - started
    engine.dispose()

    n = len(occurrences)
    print(f"\n{engine.dialect.name}: {n} occurrences, {len(deliveries)} deliveries")
    print(f"  raw executemany of the rows: {raw:.2f} s = {n / raw:,.0f} occurrences/s")
    for label, seconds, report in timings:
        print(
            f"  {label}: {seconds:.2f} s = {n / seconds:,.0f} occurrences/s "
            f"(ratio to raw {raw / seconds:.2f}; rows written: {report.occurrences} "
            f"occurrences, {report.deliveries} deliveries)"
        )


def main() -> None:
    args = sys.argv[1:]
    households = int(args[0]) if args else 1000
    days = int(args[1]) if len(args) > 1 else 7
    urls = args[2:]
    started = time.perf_counter()
    file = parse_ritual_file(ritual_file(households), name="bench", today=NOW).file
    plan = Plan(file)
    print(
        f"{households} households x {days} days; "
        f"file loaded in {time.perf_counter() - started:.2f} s"
    )
    with tempfile.TemporaryDirectory() as directory:
        for url in urls or [f"sqlite:///{directory}/bench.db"]:
            run(url, plan, days)


if __name__ == "__main__":
    main()
