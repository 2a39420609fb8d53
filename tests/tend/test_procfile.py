"""The Procfile as a developer runs it: under honcho (a local Procfile runner), on a
PostgreSQL database of the test's own, `web` and `worker` started before the schema exists
wait for `tend db upgrade`, then serve; SIGTERM stops them all."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from loopback import free_port
from tend_workers import wait_for

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # where `tend` is installed, for the Procfile's lines

RITUALS = """\
timezone = "UTC"

[[households]]
id = "us"

  [[households.partners]]
  id = "ann"
  name = "Ann"
  channels = ["console"]

[[rituals]]
id = "hello"
kind = "custom"
schedule = "daily at 09:00"
message = "Hi {{ partner }}."
"""

# The line each process logs once while the database has no schema yet.
WAITING = "waits for it"


def environment(tmp_path: Path, database_url: str) -> dict[str, str]:
    config = tmp_path / "tend.toml"
    config.write_text(RITUALS)
    return {
        **os.environ,
        "DATABASE_URL": database_url,
        "TEND_CONFIG": str(config),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",  # honcho's own lines reach its log as they happen
    }


def healthy(port: int) -> bool:
    """`/healthz` answers 200: the database is there and a worker has beaten recently."""
    try:
        response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
    except httpx.TransportError:
        return False
    return response.status_code == 200 and response.json()["scheduler"] == "ok"


def lines_of(text: str, process: str) -> list[str]:
    """What `process` (``web.1``) printed, from honcho's prefixed output."""
    return [
        line for line in text.splitlines() if re.match(rf"^\S+ {re.escape(process)}\s+\|", line)
    ]


def waiting(text: str, process: str) -> bool:
    return any(WAITING in line for line in lines_of(text, process))


@pytest.fixture
def honcho(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Starts `honcho start` on the repository's Procfile, its output in honcho.log; after
    the test, whatever it left running is killed (each process is its own group)."""
    started: list[subprocess.Popen[bytes]] = []

    def start(*processes: str, env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
        with (tmp_path / "honcho.log").open("wb") as sink:
            process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "honcho", "--procfile", str(ROOT / "Procfile")),
                    *("--app-root", str(tmp_path), "start", "--port", str(port), *processes),
                ],
                cwd=tmp_path,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        started.append(process)
        return process

    yield start
    log = (tmp_path / "honcho.log").read_text(errors="replace")
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()
    for pid in re.findall(r"started \(pid=(\d+)\)", log):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(int(pid), signal.SIGKILL)


def test_the_procfiles_web_and_worker_started_before_the_schema_wait_for_it_then_serve(
    tmp_path: Path,
    empty_postgres_url: str,
    honcho: Callable[..., subprocess.Popen[bytes]],
) -> None:
    env = environment(tmp_path, empty_postgres_url)
    port = free_port()
    runner = honcho("web", "worker", env=env, port=port)

    def logs() -> str:
        return (tmp_path / "honcho.log").read_text(errors="replace")

    def both_wait_or_one_stopped() -> bool:
        return runner.poll() is not None or (
            waiting(logs(), "web.1") and waiting(logs(), "worker.1")
        )

    wait_for(both_wait_or_one_stopped, 30, "web and worker to wait for the schema", logs)
    assert runner.poll() is None, logs()
    assert "tend db upgrade" in "\n".join(lines_of(logs(), "worker.1"))

    upgrade = subprocess.run(
        [sys.executable, "-m", "tend", "db", "upgrade"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert upgrade.returncode == 0, upgrade.stderr

    def worker_started() -> bool:
        return any(" started (leader: " in line for line in lines_of(logs(), "worker.1"))

    def both_up_or_one_stopped() -> bool:
        return runner.poll() is not None or (worker_started() and healthy(port))

    wait_for(both_up_or_one_stopped, 60, "the worker to start and /healthz to answer", logs)
    assert runner.poll() is None, logs()

    stopping = time.monotonic()
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(timeout=20) == 128 + signal.SIGTERM, logs()  # honcho's code for it
    assert time.monotonic() - stopping < 5, logs()  # honcho kills what takes 5 s
    text = logs()
    assert "web.1 stopped (rc=0)" in text, text
    assert "worker.1 stopped (rc=0)" in text, text
    assert "Traceback" not in text, text
    assert "SIGKILL" not in text, text
    for process in ("web.1", "worker.1"):
        assert sum(WAITING in line for line in lines_of(text, process)) == 1, text


@pytest.mark.parametrize("command", ["web", "worker"])
def test_a_process_waiting_for_the_schema_stops_at_once_on_sigterm(
    tmp_path: Path, empty_postgres_url: str, command: str
) -> None:
    env = environment(tmp_path, empty_postgres_url)
    args = ["--port", str(free_port())] if command == "web" else []
    log = tmp_path / f"{command}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "tend", command, *args],
            cwd=tmp_path,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:

        def logs() -> str:
            return log.read_text(errors="replace")

        wait_for(lambda: process.poll() is not None or WAITING in logs(), 30, "the wait", logs)
        assert process.poll() is None, logs()
        stopping = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0, logs()
        assert time.monotonic() - stopping < 2, logs()
        assert "Traceback" not in logs()
        assert "tend db upgrade" in logs()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
