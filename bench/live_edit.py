"""How soon one household's edit is live in a big ritual directory.

Usage: .venv/bin/python bench/live_edit.py [HOUSEHOLDS] [EDITS] [--postgres-only]
           [--zone ZONE --every SECONDS]
Default: 100,000 households (the example's, four zones, as bench/plan_pure.py makes them),
5 edits; a fresh SQLite ledger, and ``TEND_BENCH_POSTGRES_URL`` too when set (a database of
its own, emptied first).

A real `tend worker` runs on the directory (7-day horizon, console notifier). Once it has
made its first plan, the script edits one household's file at a time (a partner's name,
which is in the household's messages) and polls the ledger every 10 ms for two moments:
*synced*, when the ledger's copy of the household has the new name (what `tend web` answers
from), and *planned*, when a pending message of that household has it. Printed: both for
each edit, and the highest. The goal (issue 16): planned and live within 5 s.

``--zone ZONE`` puts a quarter of the households (the fourth of the four zones) in ZONE, and
``--every SECONDS`` spaces the edits that far apart: with a ZONE whose midnight comes a few
minutes after the first plan, the edits meet the plan of those households' new day (a
quarter of the directory) as a worker meets it every night. The worker's log is kept
beside the directory (worker-sqlite.log, worker-postgresql.log) when ``--keep DIR`` names
where to put them.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import plan_pure
from memory import fresh_ledger
from plan_pure import ritual_directory
from sqlalchemy import Engine, create_engine, select
from sqlalchemy.exc import OperationalError

from scheduler.ledger.rows import DeliveryRow, HouseholdRow

ROOT = Path(__file__).resolve().parent.parent
PLANNED = re.compile(r"planned (\d+) occurrences, (\d+) deliveries")


def synced(engine: Engine, household: str, name: str) -> bool:
    with engine.connect() as connection:
        kept = connection.execute(
            select(HouseholdRow.config_json).where(HouseholdRow.id == household)
        ).scalar()
    return kept is not None and f'"{name}"' in kept


def planned(engine: Engine, household: str, name: str) -> bool:
    # By the household alone (its own index), the rest looked at here: with
    # `status = 'pending'` in the query SQLite takes the status index instead, and reads
    # every pending delivery of every household (4 to 11 s a poll at 100,000 households),
    # which is the poll's own time, not the worker's.
    with engine.connect() as connection:
        rows = connection.execute(
            select(DeliveryRow.status, DeliveryRow.body).where(
                DeliveryRow.household_id == household
            )
        )
        return any(status == "pending" and name in (body or "") for status, body in rows)


def start_worker(root: Path, url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TEND_", "TWILIO_", "SMTP_"))},
        "TEND_DATABASE_URL": url,
        "TEND_HORIZON_DAYS": "7",
        "PYTHONUNBUFFERED": "1",
    }
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tend", "worker", "--config", str(root)],
            env=env,
            cwd=root.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_for_plan(process: subprocess.Popen[bytes], log: Path, timeout: float) -> float:
    started = time.monotonic()
    while not PLANNED.search(log.read_text(errors="replace")):
        if process.poll() is not None:
            raise SystemExit(f"the worker exited:\n{log.read_text()[-2000:]}")
        if time.monotonic() - started > timeout:
            raise SystemExit(f"no plan after {timeout:.0f} s:\n{log.read_text()[-2000:]}")
        time.sleep(0.2)
    return time.monotonic() - started


def edit(root: Path, household: str, name: str) -> None:
    path = root / "households" / f"{household}.toml"
    text = path.read_text()
    path.write_text(re.sub(r'name = "[^"]*"', f'name = "{name}"', text, count=1))


def measure(root: Path, url: str, households: int, edits: int, every: float) -> None:
    label = "postgresql" if url.startswith("postgresql") else "sqlite"
    log = root.parent / f"worker-{label}.log"
    process = start_worker(root, url, log)
    # A plain engine, not Tend's: on SQLite its every transaction takes the write lock
    # (BEGIN IMMEDIATE), and these polls only read.
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        first = wait_for_plan(process, log, 7200)
        print(f"  first plan of {households:,} households: {first:.0f} s")
        time.sleep(2)  # the watch is armed right after the first plan
        worst = 0.0
        chosen = random.Random(16).sample(range(households), edits)
        for k, n in enumerate(chosen):
            # Its own name for each database: the directory is the same for both runs.
            household, name = f"h{n}", f"Edited{k}{label.title()}"
            edited = time.monotonic()
            edit(root, household, name)
            seen_synced = None
            while True:
                try:
                    if seen_synced is None and synced(engine, household, name):
                        seen_synced = time.monotonic() - edited
                    if planned(engine, household, name):
                        seen_planned = time.monotonic() - edited
                        break
                except OperationalError:  # SQLite busy for a moment: look again
                    pass
                if time.monotonic() - edited > 120:
                    raise SystemExit(f"{household}'s edit not planned after 120 s")
                time.sleep(0.01)
            if seen_synced is None:
                seen_synced = seen_planned
            worst = max(worst, seen_planned)
            what = f"synced {seen_synced:.2f} s, planned {seen_planned:.2f} s"
            print(f"  edit {k + 1} ({household}) at {time.strftime('%H:%M:%S')}: {what}")
            time.sleep(max(1.0, every - seen_planned))
        print(f"  highest: {worst:.2f} s")
    finally:
        engine.dispose()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


def options() -> tuple[list[int], dict[str, str]]:
    """The positional numbers, and `--name value` options."""
    numbers: list[int] = []
    named: dict[str, str] = {}
    args = iter(sys.argv[1:])
    for arg in args:
        if arg in ("--zone", "--every", "--keep"):
            named[arg] = next(args)
        elif arg.isdigit():
            numbers.append(int(arg))
    return numbers, named


def main() -> None:
    args, named = options()
    households = args[0] if args else 100_000
    edits = args[1] if len(args) > 1 else 5
    every = float(named.get("--every", 1))
    zone = named.get("--zone")
    if zone is not None:
        plan_pure.ZONES[3] = zone
    urls: list[str | None] = [] if "--postgres-only" in sys.argv else [None]
    if os.environ.get("TEND_BENCH_POSTGRES_URL"):
        urls.append(os.environ["TEND_BENCH_POSTGRES_URL"])
    keep = named.get("--keep")
    with tempfile.TemporaryDirectory() as name:
        folder = Path(keep or name)
        folder.mkdir(parents=True, exist_ok=True)
        root = ritual_directory(folder / "rituals", households)
        print(f"zones: {', '.join(plan_pure.ZONES)}")
        for url in urls:
            print("PostgreSQL:" if url else "SQLite:")
            measure(root, fresh_ledger(url, folder), households, edits, every)
    print("goal: one household's edit planned and live within 5 s")


if __name__ == "__main__":
    main()
