"""Commands that only read the ritual file load no web framework, database or provider.

`tend check`, `tend plan` and `tend --help` used to take 1.5 s to start, nearly all of it
importing FastAPI, SQLAlchemy, psycopg, Alembic and Twilio that they never use. Each case
runs the command in a fresh interpreter, as a user does, and lists the heavy modules it
loaded; the seconds themselves are measured by ``bench/startup.py``, not here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "tend.toml"
HEAVY = (
    "alembic",
    "apscheduler.schedulers",
    "fastapi",
    "icalendar",
    "prometheus_client",
    "psycopg",
    "sqlalchemy",
    "starlette",
    "twilio",
    "uvicorn",
)
RUN = """
import json, sys
from tend.cli import main
args, heavy = json.loads(sys.argv[1]), json.loads(sys.argv[2])
sys.argv = ["tend", *args]
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
loaded = sorted(h for h in heavy if h in sys.modules)
print("LOADED " + json.dumps({"code": code, "loaded": loaded}), file=sys.stderr)
"""


def loaded_by(*args: str) -> tuple[object, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", RUN, json.dumps(args), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "HOME": str(ROOT), "NO_COLOR": "1"},
        timeout=60,
        check=False,
    )
    line = next(x for x in done.stderr.splitlines() if x.startswith("LOADED "))
    found = json.loads(line.removeprefix("LOADED "))
    return found["code"], found["loaded"]


@pytest.mark.parametrize(
    "args",
    [
        ("--help",),
        ("check", "--config", str(EXAMPLE)),
        ("plan", "--config", str(EXAMPLE)),
        ("plan", "--config", str(EXAMPLE), "--format", "json"),
        ("config", "schema"),
    ],
    ids=["help", "check", "plan", "plan-json", "config-schema"],
)
def test_a_command_that_reads_only_the_file_loads_no_heavy_module(args: tuple[str, ...]) -> None:
    code, loaded = loaded_by(*args)
    assert code in (0, None)
    assert loaded == []


def test_the_ics_plan_loads_the_calendar_library_and_still_no_database() -> None:
    code, loaded = loaded_by("plan", "--config", str(EXAMPLE), "--format", "ics")
    assert code in (0, None)
    assert loaded == ["icalendar"]


def test_a_command_that_opens_the_ledger_still_turns_its_errors_into_one_line(
    tmp_path: Path,
) -> None:
    # The ledger's errors are recognised without importing it up front: an unreachable
    # PostgreSQL is still one line and exit 2, never a traceback.
    done = subprocess.run(
        [sys.executable, "-m", "tend", "status"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none",
        },
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("tend: cannot reach the database postgresql+psycopg://")
