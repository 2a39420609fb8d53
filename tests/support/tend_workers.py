"""`tend worker` subprocesses for tests: a file of many one-partner households, the
workers themselves (with the recording notifier of tend_recording.py), and a wait with a
deadline that shows their logs when it runs out."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

SUPPORT = Path(__file__).resolve().parent
ROOT = SUPPORT.parents[1]


def households_file(path: Path, count: int, at: datetime) -> Path:
    """`count` one-partner households with a daily ritual at `at`'s UTC wall-clock time."""
    lines = ['timezone = "UTC"', ""]
    for n in range(count):
        lines += [
            "[[households]]",
            f'id = "h{n:05d}"',
            "  [[households.partners]]",
            f'  id = "p{n:05d}"',
            f'  name = "P{n}"',
            '  channels = ["console"]',
            "",
        ]
    lines += [
        "[[rituals]]",
        'id = "daily"',
        'kind = "custom"',
        f'schedule = "daily at {at:%H:%M}"',
        'message = "Hello {{ partner }}"',
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


class Workers:
    """Starts `tend worker` subprocesses with the recording notifier."""

    def __init__(self, tmp_path: Path, database_url: str, config: Path, **env: str) -> None:
        self.record = tmp_path / "sent.jsonl"
        self.tmp_path = tmp_path
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "TEND_NOTIFIERS": "console=tend_recording:RecordingNotifier",
            "TEND_TEST_RECORD": str(self.record),
            "TEND_HORIZON_DAYS": "1",
            "PYTHONPATH": os.pathsep.join([str(SUPPORT), str(ROOT)]),
            **env,
        }
        self.config = config
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, **env: str) -> subprocess.Popen[bytes]:
        log = (self.tmp_path / f"worker-{len(self.processes)}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "tend", "worker", "--config", str(self.config)],
            cwd=self.tmp_path,
            env={**self.env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.processes.append(process)
        return process

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.tmp_path.glob("worker-*.log"))
        )

    def stop_all(self) -> list[int | None]:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes = []
        for process in self.processes:
            try:
                codes.append(process.wait(timeout=15))
            except subprocess.TimeoutExpired:
                process.kill()
                codes.append(None)
        return codes


def wait_for(
    condition: Callable[[], bool], timeout: float, what: str, logs: Callable[[], str]
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout} s waiting for {what}\n{logs()}")
