"""Loopback ports for tests that start servers or point clients at nothing."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A loopback port where nothing listens (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
