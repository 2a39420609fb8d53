"""A real ``tend web`` closes a connection whose request (headers and body) has not fully
arrived within TEND_REQUEST_TIMEOUT_SECONDS (slowloris), answering 408 when it can; complete
requests, one after another on a kept-alive connection, are served as ever.

uvicorn's own keep-alive timeout does not do this: the first byte of a request cancels it.
The timeout here is 1 s, so each case takes about a second of real time against the process.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from loopback import free_port

TIMEOUT = 1.0
# Long enough for a loaded machine; far shorter than a connection held with no timeout.
PATIENCE = TIMEOUT + 3


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A `tend web` on loopback with a 1 s request timeout (no ritual file: none is needed)."""
    cwd = tmp_path_factory.mktemp("web")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tend", "web", "--host", "127.0.0.1", "--port", str(port)],
        cwd=cwd,
        env={
            **os.environ,
            "DATABASE_URL": f"sqlite:///{cwd}/tend.db",
            "TEND_CONFIG": str(cwd / "none.toml"),
            "TEND_REQUEST_TIMEOUT_SECONDS": str(TIMEOUT),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"tend web exited {process.returncode}: {process.communicate()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("tend web never listened")
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        _out, err = process.communicate(timeout=15)
    # Connections closed for taking too long are not the server's errors.
    assert "Traceback" not in err, err


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=PATIENCE)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def until_closed(sock: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and how long it took."""
    started = time.monotonic()
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except ConnectionResetError:
        pass
    return received, time.monotonic() - started


def response(sock: socket.socket) -> tuple[int, bytes]:
    """One HTTP/1.1 response read off the socket (status, body), by its Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    while len(body) < int(headers["content-length"]):
        body += sock.recv(4096)
    return int(lines[0].split()[1]), body


def test_a_request_missing_its_final_blank_line_is_closed_after_the_timeout(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        received, waited = until_closed(sock)
    assert TIMEOUT * 0.9 <= waited < PATIENCE - 0.5
    assert received.startswith(b"HTTP/1.1 408 ")
    assert b"connection: close" in received.lower()


def test_half_a_request_line_is_closed_after_the_timeout(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(b"GET /heal")
        received, waited = until_closed(sock)
    assert TIMEOUT * 0.9 <= waited < PATIENCE - 0.5
    assert received.startswith(b"HTTP/1.1 408 ")


def test_a_request_trickled_one_byte_at_a_time_is_closed_after_the_timeout(port: int) -> None:
    # Every byte arrives well inside any idle timeout; the request as a whole never does.
    trickle = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000
    started = time.monotonic()
    received = b""
    with connect(port) as sock:
        for byte in trickle:
            try:
                sock.send(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            readable, _, _ = select.select([sock], [], [], 0.05)
            if readable:
                received, _ = until_closed(sock)
                break
            if time.monotonic() - started > PATIENCE:
                pytest.fail("the server kept a trickling request open")
    waited = time.monotonic() - started
    assert TIMEOUT * 0.9 <= waited < PATIENCE
    assert received.startswith(b"HTTP/1.1 408 ") or received == b""


def test_a_body_that_stops_short_of_its_length_is_closed_after_the_timeout(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(
            b"POST /twilio/sms HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n"
            b"From=%2B1555"
        )
        received, waited = until_closed(sock)
    assert TIMEOUT * 0.9 <= waited < PATIENCE - 0.5
    assert received.startswith(b"HTTP/1.1 408 ")


def test_complete_requests_on_one_kept_alive_connection_are_all_served(port: int) -> None:
    # Three requests over more than the timeout in all: each request has its own deadline.
    with connect(port) as sock:
        for _ in range(3):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            status, body = response(sock)
            assert status == 503  # no worker has run: the answer healthz gives, in full
            assert b'"database":"ok"' in body
            time.sleep(TIMEOUT * 0.6)
        # A fourth sent in two halves, inside the deadline, is served too.
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        time.sleep(TIMEOUT * 0.3)
        sock.sendall(b"Host: x\r\n\r\n")
        assert response(sock)[0] == 503


def test_a_kept_alive_connection_that_starts_a_request_and_stalls_is_closed(port: int) -> None:
    with connect(port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert response(sock)[0] == 503
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost")  # the keep-alive timer stops here
        received, waited = until_closed(sock)
    assert TIMEOUT * 0.9 <= waited < PATIENCE - 0.5
    assert received.startswith(b"HTTP/1.1 408 ")
