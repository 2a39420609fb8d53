"""Planning into the ledger: `plan_horizon` against a raw ``executemany`` of the same rows.

Usage: .venv/bin/python bench/plan_ledger.py [HOUSEHOLDS[,HOUSEHOLDS...]] [DAYS] [URL ...]
Default: 1000 households, 7 days, a fresh SQLite file, plus PostgreSQL when
``TEND_BENCH_POSTGRES_URL`` is set. A PostgreSQL database is emptied first (``DROP SCHEMA
public CASCADE``: give the benchmark a database of its own).

Per size and database it prints the first plan (inserts into an empty ledger), a second
plan (every row conflicts: the hourly re-plan), and the limit: the very rows Tend wrote,
read back and written again with a plain ``executemany`` INSERT (SQLAlchemy Core, the same
types) into empty copies of the tables, in one transaction; only the INSERT calls are
timed. The ratio is raw seconds / Tend seconds (1.0 = as fast as writing the rows). For
scale, "driver executemany" writes the same rows once more with the database driver's own
``executemany`` (sqlite3 or psycopg, no SQLAlchemy at all): the floor under any Python code.
Seconds are wall time; CPU seconds of this process are shown beside them, since the
machines these run on are shared.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, select, text

sys.path.insert(0, str(Path(__file__).parent))

from plan_pure import ritual_file

from config.loader import parse_ritual_file
from rituals.planning import Plan
from scheduler.ledger import Ledger
from scheduler.ledger.engine import make_engine
from scheduler.ledger.rows import (
    Base,
    DeliveryRow,
    HouseholdRow,
    OccurrenceRow,
    PartnerRow,
)
from scheduler.ledger.schema import upgrade
from scheduler.planner import plan_horizon, sync_file

NOW = datetime(2027, 1, 4, 6, 0, tzinfo=UTC)
RAW_SCHEMA = "bench_raw"
BATCH = 20_000


def database_urls(directory: str) -> list[str]:
    """A SQLite file in `directory`, and ``TEND_BENCH_POSTGRES_URL`` when it is set."""
    urls = [f"sqlite:///{directory}/bench.db"]
    if os.environ.get("TEND_BENCH_POSTGRES_URL"):
        urls.append(os.environ["TEND_BENCH_POSTGRES_URL"])
    else:
        print("(PostgreSQL skipped: set TEND_BENCH_POSTGRES_URL to a database of its own)")
    return urls


def fresh(url: str) -> Engine:
    engine = make_engine(url)
    if engine.dialect.name == "sqlite" and engine.url.database:
        for suffix in ("", "-wal", "-shm"):
            Path(engine.url.database + suffix).unlink(missing_ok=True)
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            connection.execute(text(f"DROP SCHEMA IF EXISTS {RAW_SCHEMA} CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
    upgrade(engine)
    return engine


def raw_target(engine: Engine, directory: str) -> Engine:
    """Empty copies of the ledger's tables: another SQLite file, or another schema."""
    if engine.dialect.name == "sqlite":
        target = make_engine(f"sqlite:///{directory}/raw.db")
        Path(f"{directory}/raw.db").unlink(missing_ok=True)
    else:
        with engine.begin() as connection:
            connection.execute(text(f"CREATE SCHEMA {RAW_SCHEMA}"))
        target = engine.execution_options(schema_translate_map={None: RAW_SCHEMA})
    Base.metadata.create_all(target)
    return target


def copy_rows(source: Engine, target: Engine) -> tuple[float, float, int, int]:
    """Write every occurrence and delivery of `source` into `target` with executemany;
    return the wall and CPU seconds of the INSERT calls alone, and the row counts."""
    wall = cpu = 0.0
    counts = []
    with source.connect() as reading, target.begin() as writing:
        for parent in (HouseholdRow, PartnerRow):  # what the rows refer to: copied, not timed
            table = parent.__table__
            writing.execute(
                insert(table), [dict(r) for r in reading.execute(select(table)).mappings()]
            )
        for model in (OccurrenceRow, DeliveryRow):
            table = model.__table__
            rows = 0
            result = reading.execution_options(yield_per=BATCH).execute(
                select(table).order_by(table.c.id)
            )
            for batch in result.mappings().partitions():
                values = [dict(row) for row in batch]
                started, started_cpu = time.perf_counter(), time.process_time()
                writing.execute(insert(table), values)
                wall += time.perf_counter() - started
                cpu += time.process_time() - started_cpu
                rows += len(values)
            counts.append(rows)
        started, started_cpu = time.perf_counter(), time.process_time()
    wall += time.perf_counter() - started  # the commit, as Tend's plan commits too
    cpu += time.process_time() - started_cpu
    return wall, cpu, counts[0], counts[1]


def copy_rows_dbapi(source: Engine, target: Engine) -> tuple[float, float]:
    """The same copy one level lower: the driver's own ``executemany`` of the tuples the
    driver read (no SQLAlchemy per row). Emptied tables first (not timed)."""
    wall = cpu = 0.0
    with target.begin() as writing:
        writing.execute(DeliveryRow.__table__.delete())
        writing.execute(OccurrenceRow.__table__.delete())
    marker = "?" if source.dialect.name == "sqlite" else "%s"
    adapt = _json_adapter(target)
    with source.connect() as reading, target.begin() as writing:
        cursor = writing.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        if target.dialect.name == "postgresql":
            cursor.execute(f"SET search_path TO {RAW_SCHEMA}")
        for model in (OccurrenceRow, DeliveryRow):
            table = model.__table__
            names = [c.name for c in table.columns]
            columns = ", ".join(f'"{n}"' for n in names)
            result = reading.execution_options(stream_results=True).exec_driver_sql(
                f"SELECT {columns} FROM {table.name} ORDER BY id"
            )
            insert_sql = (
                f"INSERT INTO {table.name} ({columns}) VALUES ({', '.join([marker] * len(names))})"
            )
            while batch := [tuple(map(adapt, row)) for row in result.fetchmany(BATCH)]:
                started, started_cpu = time.perf_counter(), time.process_time()
                cursor.executemany(insert_sql, batch)
                wall += time.perf_counter() - started
                cpu += time.process_time() - started_cpu
        started, started_cpu = time.perf_counter(), time.process_time()
    wall += time.perf_counter() - started
    cpu += time.process_time() - started_cpu
    return wall, cpu


def _json_adapter(target: Engine) -> Callable[[Any], Any]:
    """What a JSON column's value (a dict or list, as the driver read it) is written as:
    psycopg adapts a dict only wrapped in ``Json``; sqlite3 read the JSON text already."""
    if target.dialect.name != "postgresql":
        return lambda value: value
    from psycopg.types.json import Json

    return lambda value: Json(value) if isinstance(value, dict | list) else value


def run(url: str, plan: Plan, days: int, directory: str) -> None:
    engine = fresh(url)
    synced = sync_file(Ledger(engine), plan.file, NOW)
    timings = []
    for label in ("first plan", "second plan"):
        started, started_cpu = time.perf_counter(), time.process_time()
        report = plan_horizon(
            Ledger(engine), plan, NOW, generation=synced.generation, changed=False, days=days
        )
        seconds, cpu = time.perf_counter() - started, time.process_time() - started_cpu
        timings.append((label, seconds, cpu, report.occurrences, report.deliveries))
    target = raw_target(engine, directory)
    raw, raw_cpu, n, deliveries = copy_rows(engine, target)
    driver, driver_cpu = copy_rows_dbapi(engine, target)
    target.dispose()
    engine.dispose()

    name = engine.dialect.name
    print(f"  {name}: {n:,} occurrences, {deliveries:,} deliveries")
    print(
        f"    {'':<28} {'seconds':>8} {'cpu s':>7} {'occurrences/s':>14} {'ratio':>6}  rows written"
    )
    print(f"    {'driver executemany':<28} {driver:>8.2f} {driver_cpu:>7.2f} {n / driver:>14,.0f}")
    print(f"    {'raw executemany (the limit)':<28} {raw:>8.2f} {raw_cpu:>7.2f} {n / raw:>14,.0f}")
    for label, seconds, cpu, occurrences, written in timings:
        print(
            f"    {'Tend ' + label:<28} {seconds:>8.2f} {cpu:>7.2f} {n / seconds:>14,.0f} "
            f"{raw / seconds:>6.2f}  {occurrences:,} / {written:,}"
        )


def main() -> None:
    args = sys.argv[1:]
    sizes = [int(s) for s in args[0].split(",")] if args else [1000]
    days = int(args[1]) if len(args) > 1 else 7
    with tempfile.TemporaryDirectory() as directory:
        urls = args[2:] or database_urls(directory)
        for households in sizes:
            started = time.perf_counter()
            file = parse_ritual_file(ritual_file(households), name="bench", today=NOW).file
            plan = Plan(file)
            print(
                f"\n{households:,} households x {days} days "
                f"(file parsed and checked in {time.perf_counter() - started:.1f} s)"
            )
            for url in urls:
                run(url, plan, days, directory)
    print("\ngoal: at least 100,000 occurrences/s on SQLite, and a ratio of at least 0.5")


if __name__ == "__main__":
    main()
