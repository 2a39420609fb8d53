"""Worker memory: the RSS of a real `tend worker` once it has planned N households.

Usage: .venv/bin/python bench/memory.py [HOUSEHOLDS ...]   (default: 1000 10000 100000)

For each size, a ritual file of that many households (the example's rituals, four zones) is
written, and `tend worker` runs on it with a fresh SQLite ledger and a 7-day horizon, the
console notifier, and no due work (the clock is real; everything planned lies ahead or is
sent to the console). When its log says it planned, the script reads the process's VmRSS
and VmHWM (peak) from /proc and stops it with SIGTERM.

The baseline, measured in the same run: the same worker on the example file (one
household). Printed: RSS after planning, peak, the baseline, the ratio, and the cost per
household above the baseline. The goal (issue 6): at most 150 MB with 100k households.
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

from plan_pure import ritual_file

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


def measure(config: Path, directory: Path, timeout: float) -> tuple[dict[str, int], str, float]:
    """Run a worker on `config` until it has planned; its memory, its plan line, seconds."""
    database = directory / "memory.db"
    for suffix in ("", "-wal", "-shm", ".worker-lock"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("TEND_", "TWILIO_", "SMTP_"))},
        "TEND_DATABASE_URL": f"sqlite:///{database}",
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
                return status(process.pid), found.group(0), seconds
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


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [1000, 10000, 100000]
    print("Worker RSS after its first plan (7-day horizon, SQLite); baseline: the example file")
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        base, _line, _seconds = measure(ROOT / "examples" / "tend.toml", directory, 120)
        base_mb = base["VmRSS"] / 1024
        print(f"  baseline (1 household): RSS {base_mb:.0f} MB, peak {base['VmHWM'] / 1024:.0f} MB")
        print(
            f"  {'households':>10} {'RSS MB':>8} {'peak MB':>8} {'ratio':>6} "
            f"{'KB/household':>12} {'to plan':>8}  plan"
        )
        for households in sizes:
            config = directory / f"tend-{households}.toml"
            config.write_text(ritual_file(households))
            memory, line, seconds = measure(config, directory, 3600)
            rss = memory["VmRSS"] / 1024
            peak = memory["VmHWM"] / 1024
            per = (memory["VmRSS"] - base["VmRSS"]) / households
            print(
                f"  {households:>10} {rss:>8.0f} {peak:>8.0f} {rss / base_mb:>6.2f} "
                f"{per:>12.2f} {seconds:>7.0f}s  {line}"
            )
    print("goal: RSS at most 150 MB with 100000 households")


if __name__ == "__main__":
    main()
