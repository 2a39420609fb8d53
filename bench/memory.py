"""Worker memory: the RSS of a real `tend worker` once it has planned N households, and
while it dispatches.

Usage: .venv/bin/python bench/memory.py [--directory] [--dispatch SECONDS] [--postgres-only]
       [HOUSEHOLDS ...]
(default: 1000 10000 100000; a fresh SQLite ledger, and ``TEND_BENCH_POSTGRES_URL`` too when
set: a database of its own, emptied first.)

For each size, the households (the example's rituals, four zones) are written as one ritual
file, or with ``--directory`` as a ritual directory (rituals.toml and a file a household),
and `tend worker` runs on it with a fresh ledger, a 7-day horizon and the console notifier.
When its log says it planned, the script reads the process's VmRSS and VmHWM (peak) from
/proc. With ``--dispatch SECONDS`` the rituals also have one due a few minutes ago for every
household, so the worker sends to every partner right after planning: the script then
samples VmRSS every 0.2 s for that long and prints the highest. Then it stops the worker
with SIGTERM.

The baseline, measured in the same run: the same worker on the example file (one
household). Printed: RSS after planning, peak, the baseline, the ratio, and the cost per
household above the baseline. The goal (issue 16): at most 300 MB with 100k households,
after planning and during dispatch, and growing no faster than linearly.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from plan_pure import ritual_directory, ritual_file

ROOT = Path(__file__).resolve().parent.parent
PLANNED = re.compile(r"planned (\d+) occurrences, (\d+) deliveries")


def status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of `pid`, in KiB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


def fresh_ledger(url: str | None, directory: Path) -> str:
    """A new ledger: an SQLite file in `directory`, or the PostgreSQL at `url` emptied and
    brought to the schema's head (a worker there waits for ``tend db upgrade``)."""
    if url is None:
        database = directory / "memory.db"
        for suffix in ("", "-wal", "-shm", ".worker-lock"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{database}"
    from plan_ledger import fresh

    fresh(url).dispose()
    return url


def measure(
    config: Path, directory: Path, timeout: float, url: str | None = None, dispatch: float = 0
) -> tuple[dict[str, int], str, float]:
    """Run a worker on `config` until it has planned (and, with `dispatch`, that many
    seconds more); its memory (``Dispatch``: the highest RSS sampled meanwhile), its plan
    line, seconds to plan."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TEND_", "TWILIO_", "SMTP_"))},
        "TEND_DATABASE_URL": fresh_ledger(url, directory),
        "TEND_HORIZON_DAYS": "7",
        "PYTHONUNBUFFERED": "1",
    }
    log = directory / "worker.log"
    started = time.perf_counter()
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tend", "worker", "--config", str(config)],
            env=env,
            cwd=directory,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            text = log.read_text(errors="replace")
            found = PLANNED.search(text)
            if found:
                seconds = time.perf_counter() - started
                time.sleep(0.5)  # let the first dispatch pass settle
                planned = status(process.pid)
                highest = planned["VmRSS"]
                until = time.monotonic() + dispatch
                while time.monotonic() < until:
                    highest = max(highest, status(process.pid)["VmRSS"])
                    time.sleep(0.2)
                return (
                    {**status(process.pid), **planned, "Dispatch": highest},
                    found.group(0),
                    seconds,
                )
            if process.poll() is not None:
                raise SystemExit(f"the worker exited {process.returncode}:\n{text[-2000:]}")
            if time.monotonic() > deadline:
                raise SystemExit(f"no plan after {timeout:.0f} s:\n{text[-2000:]}")
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


def due_ritual() -> str:
    """A ritual due five minutes ago (inside its grace) in New York, the zone of every fourth
    household: sent to each of their partners at once."""
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    due = datetime.now(ZoneInfo("America/New_York")) - timedelta(minutes=5)
    return (
        "\n[[rituals]]\n"
        'id = "due-now"\n'
        'kind = "custom"\n'
        f'schedule = "daily at {due:%H:%M}"\n'
        'message = "Hello {{ partner }}"\n'
    )


def main() -> None:
    args = sys.argv[1:]
    as_directory = "--directory" in args
    dispatch = float(args[args.index("--dispatch") + 1]) if "--dispatch" in args else 0.0
    sizes = [int(a) for a in args if a.isdigit() and not _after(args, a, "--dispatch")]
    sizes = sizes or [1000, 10000, 100000]
    urls: list[str | None] = [] if "--postgres-only" in args else [None]
    if os.environ.get("TEND_BENCH_POSTGRES_URL"):
        urls.append(os.environ["TEND_BENCH_POSTGRES_URL"])
    layout = "a ritual directory" if as_directory else "one ritual file"
    print(
        f"Worker RSS after its first plan (7-day horizon), {layout}"
        + (f", then {dispatch:.0f} s of dispatch" if dispatch else "")
        + "; baseline: the example file"
    )
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        for url in urls:
            print("PostgreSQL:" if url else "SQLite:")
            base, _line, _seconds = measure(ROOT / "examples" / "tend.toml", directory, 120, url)
            base_mb = base["VmRSS"] / 1024
            base_peak = base["VmHWM"] / 1024
            print(f"  baseline (1 household): RSS {base_mb:.0f} MB, peak {base_peak:.0f} MB")
            print(
                f"  {'households':>10} {'RSS MB':>8} {'peak MB':>8} {'dispatch':>8} {'ratio':>6} "
                f"{'KB/household':>12} {'to plan':>8}  plan"
            )
            for households in sizes:
                config = _write(
                    directory, households, as_directory, due_ritual() if dispatch else ""
                )
                memory, line, seconds = measure(config, directory, 3600, url, dispatch)
                rss = memory["VmRSS"] / 1024
                peak = memory["VmHWM"] / 1024
                during = f"{memory['Dispatch'] / 1024:>8.0f}" if dispatch else f"{'':>8}"
                per = (memory["VmRSS"] - base["VmRSS"]) / households
                print(
                    f"  {households:>10} {rss:>8.0f} {peak:>8.0f} {during} {rss / base_mb:>6.2f} "
                    f"{per:>12.2f} {seconds:>7.0f}s  {line}"
                )
    print("goal: RSS at most 300 MB with 100000 households, after planning and during dispatch")


def _after(args: list[str], value: str, flag: str) -> bool:
    return flag in args and args.index(flag) + 1 < len(args) and args[args.index(flag) + 1] == value


def _write(directory: Path, households: int, as_directory: bool, extra: str) -> Path:
    if as_directory:
        root = directory / f"rituals-{households}"
        if root.exists():
            import shutil

            shutil.rmtree(root)
        return ritual_directory(root, households, extra_rituals=extra)
    config = directory / f"tend-{households}.toml"
    config.write_text(ritual_file(households) + extra)
    return config


if __name__ == "__main__":
    main()
