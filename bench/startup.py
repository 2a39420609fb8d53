"""Start-up of the ``tend`` command: whole processes, run again and again, medians.

Usage: .venv/bin/python bench/startup.py [--instructions] [RUNS] [TEND ...]
Default: 21 runs of each command with ``.venv/bin/tend``. Give more than one ``tend``
executable (say, one from a checkout of the commit before a change, in its own venv) to
compare them in one sitting: the runs are interleaved, A B A B ..., so a machine that gets
busier or quieter halfway does not favour one side.

Each command is a fresh process, as a user types it: ``tend --help``, ``tend check`` and
``tend plan`` on ``examples/tend.toml`` (each checkout's own) (the table for the next 14 days), and
``tend plan --format ics``. Prints, per executable and command, the median and p90 of the
wall time, the median CPU time (user + system of the child, which a busy neighbour disturbs
less than the wall clock) and, from one more run with ``-X importtime``, how many modules
the command imports and whether FastAPI, SQLAlchemy, psycopg, Alembic or Twilio are among
them. The goal (issue 18): ``tend check`` and ``tend plan`` under 0.5 s.

With ``--instructions``, each command also runs once under ``valgrind --tool=callgrind``
(``PYTHONHASHSEED=0``) and the table gets the instructions it executed: a count that stays
the same from run to run, where the wall clock of a shared 2-core machine can move by a
third between two sittings. Python runs about 50 times slower under valgrind, so this adds
a minute or two.
"""

from __future__ import annotations

import os
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COMMANDS: dict[str, list[str]] = {
    "tend --help": ["--help"],
    "tend check": ["check", "--config", "{example}"],
    "tend plan": ["plan", "--config", "{example}"],
    "tend plan --format ics": ["plan", "--config", "{example}", "--format", "ics"],
}
HEAVY = ("fastapi", "sqlalchemy", "psycopg", "alembic", "twilio")
GOAL_SECONDS = 0.5


def example_of(tend: Path) -> Path:
    """The example of the checkout `tend` was installed from (``CHECKOUT/.venv/bin/tend``):
    each tree runs on its own example, which the other may not read."""
    own = tend.parent.parent.parent / "examples" / "tend.toml"
    return own if own.is_file() else ROOT / "examples" / "tend.toml"


def command(tend: Path, name: str) -> list[str]:
    return [a.format(example=example_of(tend)) for a in COMMANDS[name]]


def once(tend: Path, args: list[str]) -> tuple[float, float]:
    """One whole process: its wall time and CPU time (user + system), in seconds."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [str(tend), *args], capture_output=True, env=_env(), cwd=ROOT, check=False
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{tend} {' '.join(args)} exited {done.returncode}: {done.stderr!r}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def imported(tend: Path, args: list[str]) -> tuple[int, list[str]]:
    """How many modules one run imports, and which of the heavy ones."""
    python = tend.parent / "python"
    code = "import sys; from tend.cli import main; sys.argv[0] = 'tend'; main()"
    done = subprocess.run(
        [str(python), "-P", "-X", "importtime", "-c", code, *args],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=ROOT,
        check=False,
    )
    names = re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$", done.stderr, re.M)
    tops = {name.split(".")[0] for name in names}
    return len(names), [heavy for heavy in HEAVY if heavy in tops]


def instructions(tend: Path, args: list[str]) -> int:
    """Instructions one run executes, counted by callgrind: the same in every sitting."""
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", str(tend), *args],
        capture_output=True,
        text=True,
        env={**_env(), "PYTHONHASHSEED": "0"},
        cwd=ROOT,
        check=False,
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"valgrind {tend} {' '.join(args)} failed: {done.stderr[-500:]!r}")
    return int(found.group(1))


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEND_")}
    # As on a user's machine, Python keeps the bytecode it compiles: a sandbox or CI that sets
    # PYTHONDONTWRITEBYTECODE would otherwise compile every Tend module again at each start.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["NO_COLOR"] = "1"
    env["COLUMNS"] = "120"
    return env


def main(argv: list[str]) -> None:
    counting = "--instructions" in argv
    argv = [a for a in argv if a != "--instructions"]
    runs = int(argv[0]) if argv else 21
    tends = [Path(a).resolve() for a in argv[1:]] or [ROOT / ".venv" / "bin" / "tend"]
    walls: dict[tuple[int, str], list[float]] = {}
    cpus: dict[tuple[int, str], list[float]] = {}
    for name in COMMANDS:
        for tend in tends:
            once(tend, command(tend, name))  # warm the page cache and the bytecode
        for _ in range(runs):
            for i, tend in enumerate(tends):
                wall, cpu = once(tend, command(tend, name))
                walls.setdefault((i, name), []).append(wall)
                cpus.setdefault((i, name), []).append(cpu)
    print(f"{runs} runs of each, interleaved; seconds; goal for check and plan: {GOAL_SECONDS}")
    header = (
        f"{'executable':<44} {'command':<24} {'median':>7} {'p90':>7} {'cpu':>7} {'modules':>8}"
        + (f" {'instructions':>14}" if counting else "")
    )
    print(header)
    print("-" * len(header) + "  heavy imports")
    for name in COMMANDS:
        for i, tend in enumerate(tends):
            w = sorted(walls[(i, name)])
            p90 = w[min(len(w) - 1, round(0.9 * (len(w) - 1)))]
            count, heavy = imported(tend, command(tend, name))
            counted = f" {instructions(tend, command(tend, name)):>14,}" if counting else ""
            print(
                f"{_short(tend):<44} {name:<24} {statistics.median(w):>7.3f} {p90:>7.3f} "
                f"{statistics.median(cpus[(i, name)]):>7.3f} {count:>8}{counted}  "
                f"{', '.join(heavy) or '-'}"
            )


def _short(path: Path) -> str:
    text = str(path)
    return text if len(text) <= 44 else "..." + text[-41:]


if __name__ == "__main__":
    main(sys.argv[1:])
