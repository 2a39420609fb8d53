"""Loopback ports for tests that start servers or point clients at nothing, and waiting
for a served process (with a deadline, its log shown when it runs out)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    """A loopback port where nothing listens (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def healthy(base: str) -> bool:
    """`GET base/healthz` answers 200 (False while nothing listens yet)."""
    try:
        return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def wait_for_log(deadline: float, condition: Callable[[], bool], what: str, log: Path) -> None:
    """Poll `condition` every 50 ms for `deadline` seconds; then fail with the log's end."""
    until = time.monotonic() + deadline
    while time.monotonic() < until:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}\n{log.read_text(errors='replace')[-4000:]}")
