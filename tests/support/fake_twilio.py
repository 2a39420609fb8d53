"""A fake Twilio REST API on loopback, for tests and benchmarks of the SMS notifier.

A real HTTP/1.1 server (keep-alive) on ``127.0.0.1``, so the real ``twilio`` library, its
``requests`` session, connection pool and timeouts are all exercised::

    with FakeTwilio() as fake:
        client = twilio.rest.Client(fake.account_sid, fake.auth_token)
        client.api.base_url = fake.base_url
        client.messages.create(to="+15551230001", from_="+15550000001", body="hi")
        assert fake.sent_to("+15551230001")[0]["body"] == "hi"

It answers the three Messages routes of API version 2010-04-01 (create, list, fetch) with
Twilio's JSON shapes, status codes and error codes. Failures come on demand
(:meth:`FakeTwilio.fail_next`, :meth:`FakeTwilio.stall_next`, :attr:`FakeTwilio.on_create`)
or at random (:meth:`FakeTwilio.flaky`: a seeded share of creates answered 500, 429 with
``Retry-After``, or stalled past the client's timeout, with or without taking the message).
Everything it saw can be inspected from the test's thread, each request with the clock's
time when it arrived (:attr:`RequestRecord.at`). Standard library only, and no pytest
import: benchmark scripts use it too.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import json
import math
import random
import re
import secrets
import socket
import sys
import threading
from collections import Counter, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import format_datetime, parsedate_to_datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlencode, urlsplit

__all__ = [
    "DEFAULT_ACCOUNT_SID",
    "DEFAULT_AUTH_TOKEN",
    "FAULTS",
    "FailureSpec",
    "FakeTwilio",
    "Flakiness",
    "RequestRecord",
    "num_segments",
]

DEFAULT_ACCOUNT_SID = "AC" + "fa4e" * 8
DEFAULT_AUTH_TOKEN = "70c3e7" + "0" * 20 + "fa4e70"
API_VERSION = "2010-04-01"

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_ACCOUNT = r"/2010-04-01/Accounts/(?P<account>[^/]+)"
_LIST_ROUTE = re.compile(_ACCOUNT + r"/Messages\.json$")
_FETCH_ROUTE = re.compile(_ACCOUNT + r"/Messages/(?P<sid>[^/]+)\.json$")
_MAX_BODY = 1600
_DEFAULT_PAGE_SIZE = 50
_MAX_PAGE_SIZE = 1000
_JOIN_TIMEOUT = 5.0
_PRIVATE_KEYS = frozenset({"status_callback"})

# GSM 03.38: the basic set costs one septet, the extension table two (escape + char).
_GSM7_BASIC = frozenset(
    "@\u00a3$\u00a5\u00e8\u00e9\u00f9\u00ec\u00f2\u00c7\n\u00d8\u00f8\r\u00c5\u00e5"
    "\u0394_\u03a6\u0393\u039b\u03a9\u03a0\u03a8\u03a3\u0398\u039e\u00c6\u00e6\u00df\u00c9"
    " !\"#\u00a4%&'()*+,-./0123456789:;<=>?"
    "\u00a1ABCDEFGHIJKLMNOPQRSTUVWXYZ\u00c4\u00d6\u00d1\u00dc\u00a7"
    "\u00bfabcdefghijklmnopqrstuvwxyz\u00e4\u00f6\u00f1\u00fc\u00e0"
)
_GSM7_EXTENDED = frozenset("\x0c^{}\\[~]|\u20ac")

# Default Twilio error codes and messages when fail_next() is given only a status.
_DEFAULT_ERRORS: dict[int, tuple[int, str]] = {
    400: (21000, "Bad Request"),
    429: (20429, "Too Many Requests"),
    500: (20500, "Internal Server Error"),
    502: (20502, "Bad Gateway"),
    503: (20503, "Service Unavailable"),
    504: (20504, "Gateway Timeout"),
}

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class FailureSpec:
    """What the fake does with one create request instead of (or before) answering it.

    ``status`` None means no error: the message is recorded and answered 201, after
    ``stall`` seconds. With a status, the fake waits ``stall`` seconds, then answers that
    status with a Twilio error body (``code``/``message`` default from the status) and
    records nothing. ``retry_after`` (seconds) adds a ``Retry-After`` header.
    """

    status: int | None = None
    code: int | None = None
    message: str | None = None
    retry_after: int | None = None
    stall: float = 0.0


# The faults of the random mode (FakeTwilio.flaky), as RequestRecord.fault names them:
# "500" (Twilio error 20500), "429" (20429, with Retry-After), "timeout_taken" (the message
# is recorded on arrival and answered 201 only after the stall: the client gave up, the
# provider has it) and "timeout_lost" (nothing recorded; 503 after the stall).
FAULTS = ("500", "429", "timeout_taken", "timeout_lost")


@dataclass(frozen=True, slots=True)
class Flakiness:
    """The random-failure mode of :meth:`FakeTwilio.flaky`.

    Each create is failed with probability ``rate``; the fault is drawn from ``weights``
    (fault name -> relative weight, see :data:`FAULTS`); a 429's ``Retry-After`` from
    ``retry_after`` (seconds); a timeout stalls ``stall`` seconds (longer than the client's
    timeout). The draws come from ``seed``, the ``To`` number and how many creates that
    number has had: the same for every run, whatever order concurrent requests arrive in.
    """

    rate: float
    seed: int = 0
    weights: tuple[tuple[str, float], ...] = (
        ("500", 1.0),
        ("429", 1.0),
        ("timeout_taken", 0.5),
        ("timeout_lost", 0.5),
    )
    retry_after: tuple[int, ...] = (1, 5, 30)
    stall: float = 2.0

    def draw(self, to: str, nth: int) -> tuple[str, FailureSpec] | None:
        """The fault for the `nth` (0-based) create to `to`, or None (answer normally)."""
        rng = random.Random(f"{self.seed}/{to}/{nth}")
        if rng.random() >= self.rate:
            return None
        names = [name for name, _ in self.weights]
        fault = rng.choices(names, weights=[weight for _, weight in self.weights])[0]
        if fault == "500":
            return fault, FailureSpec(500)
        if fault == "429":
            return fault, FailureSpec(429, retry_after=rng.choice(self.retry_after))
        if fault == "timeout_taken":
            return fault, FailureSpec(stall=self.stall)
        if fault == "timeout_lost":
            return fault, FailureSpec(503, stall=self.stall)
        raise ValueError(f"unknown fault {fault!r}; the faults are {', '.join(FAULTS)}")


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request the fake answered: form fields for POST, query parameters for GET.

    ``at``: the fake's clock when the request arrived (before any latency or stall).
    ``fault``: for a create the random mode failed, which fault (see :data:`FAULTS`);
    ``retry_after``: the ``Retry-After`` seconds the answer carried, if any.
    """

    method: str
    path: str
    params: dict[str, str]
    status: int
    at: datetime | None = None
    fault: str | None = None
    retry_after: int | None = None


@dataclass(slots=True)
class _Reply:
    status: int
    payload: Json
    headers: list[tuple[str, str]] = field(default_factory=list)
    fault: str | None = None  # the random mode's fault, when it chose this answer


class _Server(ThreadingHTTPServer):
    """One thread per connection; tracks them so ``stop()`` can close and join them all."""

    daemon_threads = True  # a forgotten stop() never holds the interpreter at exit
    # socketserver listens with a backlog of 5: a worker's 32 senders connecting at once
    # would overflow it, and Linux then resets connections that had already sent their
    # request (the sender sees "connection lost before the answer"). Twilio is not so small.
    request_queue_size = 1024

    def __init__(self, fake: FakeTwilio) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake
        self.live: dict[threading.Thread, socket.socket] = {}
        self.live_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        # Runs in the serving thread: once shutdown() returns, every accepted
        # connection is in ``live``.
        thread = threading.Thread(
            target=self._serve_connection,
            args=(request, client_address),
            name=f"fake-twilio-conn-{client_address[1]}",
            daemon=True,
        )
        with self.live_lock:
            self.live[thread] = request
        self.fake._connection_accepted()
        thread.start()

    def _serve_connection(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self.live_lock:
                self.live.pop(threading.current_thread(), None)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout) closes its end while we answer: not an error.
        # Anything else is kept for the test to look at, never printed.
        error = sys.exc_info()[1]
        if error is not None and not isinstance(error, ConnectionError | TimeoutError):
            self.fake._server_error(error)

    def close_connections(self) -> None:
        """Wake every connection thread blocked reading its next request, then join it."""
        with self.live_lock:
            live = list(self.live.items())
        for _, sock in live:
            with contextlib.suppress(OSError):  # already closed by its thread
                sock.shutdown(socket.SHUT_RDWR)
        for thread, _ in live:
            thread.join(_JOIN_TIMEOUT)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed ACK

    def version_string(self) -> str:
        return "FakeTwilio/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: nothing on stderr

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def do_PUT(self) -> None:
        self._answer()

    def do_DELETE(self) -> None:
        self._answer()

    def do_PATCH(self) -> None:
        self._answer()

    def _answer(self) -> None:
        server = self.server
        assert isinstance(server, _Server)
        fake = server.fake
        length = self.headers.get("Content-Length", "0")
        if not length.isdigit() or self.headers.get("Transfer-Encoding"):
            # Chunked or unreadable bodies: the client libraries never send them.
            self.close_connection = True
            self._write(fake._error(411, 20001, "Length Required"))
            return
        body = self.rfile.read(int(length))
        fake._request_started()
        try:
            reply = fake._dispatch(self.command, self.path, self.headers.get("Authorization"), body)
        finally:
            fake._request_finished()
        self._write(reply)

    def _write(self, reply: _Reply) -> None:
        data = json.dumps(reply.payload).encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Twilio-Request-Id", "RQ" + secrets.token_hex(16))
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()


class FakeTwilio:
    """A fake of Twilio's Messages API on ``http://127.0.0.1:<port>``.

    Public attributes a test may set at any time: ``opted_out``, ``landlines`` and
    ``invalid`` (sets of E.164 numbers that are refused with 21610, 21614 and 21211),
    ``on_create`` (a hook given each create's form fields, returning a :class:`FailureSpec`
    or None) and ``latency``.
    """

    def __init__(
        self,
        *,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        latency: float = 0.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.latency = latency
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self.opted_out: set[str] = set()
        self.landlines: set[str] = set()
        self.invalid: set[str] = set()
        # Answer errors as RFC 9457 problem details (type, title, detail) instead of the
        # classic body: twilio 9 raises TwilioServiceException for those.
        self.problem_details = False
        self.on_create: Callable[[dict[str, str]], FailureSpec | None] | None = None
        # Called with each message just recorded, before its answer is sent: a test can
        # play Twilio's status callback arriving before the client has the sid.
        self.on_recorded: Callable[[Json], None] | None = None

        self._lock = threading.Lock()
        self._messages: list[Json] = []
        self._by_sid: dict[str, Json] = {}
        self._requests: list[RequestRecord] = []
        self._failures: deque[FailureSpec] = deque()
        self._flakiness: Flakiness | None = None
        self._creates_to: Counter[str] = Counter()  # creates per To, for the random mode
        self._errors: list[BaseException] = []
        self._connections = 0
        self._in_flight = 0
        self._max_in_flight = 0
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        """Bind an ephemeral port on 127.0.0.1 and serve in a daemon thread."""
        if self._server is not None:
            raise RuntimeError("FakeTwilio is already running")
        self._stopping.clear()
        server = _Server(self)
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.01},
            name="fake-twilio",
            daemon=True,
        )
        self._server, self._thread = server, thread
        thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close every connection, join every thread. Idempotent."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()  # cuts stalls and latency short
        server.shutdown()
        server.close_connections()
        server.server_close()
        thread.join(_JOIN_TIMEOUT)
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeTwilio is not running")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``: what ``client.api.base_url`` must be set to."""
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------- failure control

    def fail_next(
        self,
        status: int,
        code: int | None = None,
        message: str | None = None,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """The next ``times`` creates answer ``status`` (Twilio error body) and record nothing."""
        spec = FailureSpec(status=status, code=code, message=message, retry_after=retry_after)
        self._queue(spec, times)

    def stall_next(self, seconds: float, times: int = 1, then_create: bool = True) -> None:
        """The next ``times`` creates wait ``seconds`` before answering.

        With ``then_create`` the message is recorded when the request arrives and answered
        201 after the stall: accepted by the provider although the client gave up. Without,
        nothing is recorded and the answer after the stall is 503.
        """
        spec = FailureSpec(stall=seconds) if then_create else FailureSpec(503, stall=seconds)
        self._queue(spec, times)

    def _queue(self, spec: FailureSpec, times: int) -> None:
        with self._lock:
            self._failures.extend([spec] * times)

    def flaky(
        self,
        rate: float,
        *,
        seed: int = 0,
        weights: Mapping[str, float] | None = None,
        retry_after: tuple[int, ...] = (1, 5, 30),
        stall: float = 2.0,
    ) -> Flakiness:
        """Fail a seeded random share `rate` of creates from now on (see :class:`Flakiness`).

        Queued failures (:meth:`fail_next`, :meth:`stall_next`) and ``on_create`` come
        first. A number the fake refuses for good (``invalid``, ``opted_out``,
        ``landlines``) is never flaky: its refusal is answered at once. ``rate=0`` (or
        :meth:`steady`) ends the mode. Returns the mode in force.
        """
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate is a probability, between 0 and 1")
        mode = Flakiness(
            rate=rate,
            seed=seed,
            weights=tuple((weights or dict(Flakiness(0).weights)).items()),
            retry_after=retry_after,
            stall=stall,
        )
        unknown = {name for name, _ in mode.weights} - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; the faults are {FAULTS}")
        with self._lock:
            self._flakiness = mode if rate > 0 else None
        return mode

    def steady(self) -> None:
        """End the random mode: every create is answered normally again."""
        with self._lock:
            self._flakiness = None

    # --------------------------------------------------------------- introspection

    @property
    def messages(self) -> list[Json]:
        """Copies of every recorded message, in send order.

        Each is the resource as Twilio answers it, plus ``status_callback`` (the request's
        StatusCallback, or None), which Twilio's resource does not show.
        """
        with self._lock:
            return copy.deepcopy(self._messages)

    def sent_to(self, number: str) -> list[Json]:
        """Copies of the messages recorded for ``number``, in send order."""
        with self._lock:
            return [copy.deepcopy(m) for m in self._messages if m["to"] == number]

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request answered, in the order the answers were decided."""
        with self._lock:
            return list(self._requests)

    @property
    def connections(self) -> int:
        """TCP connections accepted (since start or the last reset)."""
        with self._lock:
            return self._connections

    @property
    def max_in_flight(self) -> int:
        """Peak number of requests being handled at the same time."""
        with self._lock:
            return self._max_in_flight

    @property
    def injected(self) -> Counter[str]:
        """How many creates the random mode failed, by fault (see :data:`FAULTS`)."""
        with self._lock:
            return Counter(r.fault for r in self._requests if r.fault is not None)

    @property
    def server_errors(self) -> list[BaseException]:
        """Unexpected exceptions in connection threads (client disconnects are not kept)."""
        with self._lock:
            return list(self._errors)

    def set_status(
        self,
        sid: str,
        status: str,
        *,
        error_code: int | None = None,
        error_message: str | None = None,
    ) -> Json:
        """Move a message on, as Twilio would (``sent``, ``delivered``, ``undelivered``...).

        Sets ``date_sent`` (from the clock) the first time it leaves queued/accepted.
        Returns a copy of the updated resource.
        """
        now = self._now()
        with self._lock:
            message = self._by_sid[sid]
            message["status"] = status
            message["error_code"] = error_code
            message["error_message"] = error_message
            message["date_updated"] = _rfc2822(now)
            if message["date_sent"] is None and status not in ("accepted", "queued"):
                message["date_sent"] = _rfc2822(now)
            return copy.deepcopy(message)

    def reset(self) -> None:
        """Forget messages, requests, queued failures, counters, opt-outs, landlines,
        invalid numbers, the hook and the random mode."""
        with self._lock:
            self._messages.clear()
            self._by_sid.clear()
            self._requests.clear()
            self._failures.clear()
            self._flakiness = None
            self._creates_to.clear()
            self._errors.clear()
            self._connections = 0
            self._max_in_flight = self._in_flight
        self.opted_out.clear()
        self.landlines.clear()
        self.invalid.clear()
        self.on_create = None

    # ------------------------------------------------- called from connection threads

    def _connection_accepted(self) -> None:
        with self._lock:
            self._connections += 1

    def _server_error(self, error: BaseException) -> None:
        with self._lock:
            self._errors.append(error)

    def _request_started(self) -> None:
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)

    def _request_finished(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _now(self) -> datetime:
        now = self.clock()
        return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)

    def _dispatch(self, method: str, target: str, authorization: str | None, body: bytes) -> _Reply:
        arrived = self._now()  # the test's clock when the request came in
        if self.latency > 0:
            self._stopping.wait(self.latency)
        split = urlsplit(target)
        path = split.path
        raw = body.decode("utf-8", "replace") if method == "POST" else split.query
        params = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        reply = self._route(method, path, authorization, params)
        retry_after = next((int(v) for k, v in reply.headers if k == "Retry-After"), None)
        record = RequestRecord(
            method, path, params, reply.status, arrived, reply.fault, retry_after
        )
        with self._lock:
            self._requests.append(record)
        return reply

    def _route(
        self, method: str, path: str, authorization: str | None, params: dict[str, str]
    ) -> _Reply:
        if not self._authorized(authorization):
            return self._unauthorized()
        listing = _LIST_ROUTE.match(path)
        fetching = _FETCH_ROUTE.match(path)
        found = listing or fetching
        if found is None:
            return self._error(404, 20404, f"The requested resource {path} was not found")
        if found.group("account") != self.account_sid:
            return self._unauthorized()
        if listing and method == "POST":
            return self._create(params)
        if listing and method == "GET":
            return self._list(path, params)
        if fetching and method == "GET":
            return self._fetch(path, fetching.group("sid"))
        return self._error(405, 20004, "Method not allowed")

    def _authorized(self, authorization: str | None) -> bool:
        if not authorization or not authorization.startswith("Basic "):
            return False
        try:
            decoded = base64.b64decode(authorization[6:], validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, _, password = decoded.partition(":")
        return secrets.compare_digest(user, self.account_sid) and secrets.compare_digest(
            password, self.auth_token
        )

    def _unauthorized(self) -> _Reply:
        reply = self._error(401, 20003, "Authenticate")
        reply.headers.append(("WWW-Authenticate", 'Basic realm="Twilio API"'))
        return reply

    def _error(self, status: int, code: int, message: str) -> _Reply:
        if self.problem_details:  # RFC 9457, as newer Twilio APIs answer
            return _Reply(
                status,
                {
                    "type": f"https://www.twilio.com/docs/errors/{code}",
                    "title": message,
                    "status": status,
                    "code": code,
                    "detail": message,
                },
            )
        return _Reply(
            status,
            {
                "code": code,
                "message": message,
                "more_info": f"https://www.twilio.com/docs/errors/{code}",
                "status": status,
            },
        )

    # ---------------------------------------------------------------------- create

    def _create(self, form: dict[str, str]) -> _Reply:
        spec, fault = self._next_failure(form)
        if spec is not None and spec.status is not None:
            if spec.stall > 0:
                self._stopping.wait(spec.stall)
            reply = self._failure(spec)
            reply.fault = fault
            return reply
        reply = self._validate(form)
        if reply is None:
            reply = _Reply(201, self._record(form))
            if self.on_recorded is not None:  # before the answer leaves
                self.on_recorded(dict(reply.payload))
        if spec is not None and spec.stall > 0:
            self._stopping.wait(spec.stall)  # recorded first: the ambiguous case
        reply.fault = fault
        return reply

    def _next_failure(self, form: dict[str, str]) -> tuple[FailureSpec | None, str | None]:
        """What to do instead of answering at once, and the random mode's fault name."""
        to = form.get("To", "")
        with self._lock:
            nth = self._creates_to[to]
            self._creates_to[to] += 1
            if self._failures:
                return self._failures.popleft(), None
            mode = self._flakiness
        hook = self.on_create
        if hook is not None:
            try:
                spec = hook(dict(form))
            except Exception as error:
                self._server_error(error)
                return FailureSpec(500, message=f"on_create hook raised {error!r}"), None
            if spec is not None:
                return spec, None
        if mode is None or to in self.invalid | self.opted_out | self.landlines:
            return None, None
        drawn = mode.draw(to, nth)
        return (drawn[1], drawn[0]) if drawn is not None else (None, None)

    def _failure(self, spec: FailureSpec) -> _Reply:
        assert spec.status is not None
        default_code, default_message = _DEFAULT_ERRORS.get(
            spec.status, (20000 + spec.status, _phrase(spec.status))
        )
        reply = self._error(
            spec.status,
            spec.code if spec.code is not None else default_code,
            spec.message if spec.message is not None else default_message,
        )
        if spec.retry_after is not None:
            reply.headers.append(("Retry-After", str(spec.retry_after)))
        return reply

    def _validate(self, form: Mapping[str, str]) -> _Reply | None:
        to = form.get("To", "")
        if not _E164.match(to):
            return self._error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        if not form.get("From") and not form.get("MessagingServiceSid"):
            return self._error(400, 21603, "A 'From' phone number is required.")
        body = form.get("Body", "")
        if not body:
            return self._error(400, 21602, "Message body is required.")
        if len(body) > _MAX_BODY:
            return self._error(
                400, 21617, "The concatenated message body exceeds the 1600 character limit."
            )
        if to in self.opted_out:
            return self._error(400, 21610, "Attempt to send to unsubscribed recipient")
        if to in self.landlines:
            return self._error(400, 21614, "'To' number is not a valid mobile number")
        if to in self.invalid:
            return self._error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
        return None

    def _record(self, form: Mapping[str, str]) -> Json:
        sid = "SM" + secrets.token_hex(16)
        now = _rfc2822(self._now())
        base = f"/{API_VERSION}/Accounts/{self.account_sid}/Messages/{sid}"
        message: Json = {
            "account_sid": self.account_sid,
            "api_version": API_VERSION,
            "body": form["Body"],
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": form.get("From") or None,
            "messaging_service_sid": form.get("MessagingServiceSid") or None,
            "num_media": "0",
            "num_segments": str(num_segments(form["Body"])),
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "queued",
            "subresource_uris": {
                "media": f"{base}/Media.json",
                "feedback": f"{base}/Feedback.json",
            },
            "to": form["To"],
            "uri": f"{base}.json",
            # Not in Twilio's resource: what the request asked for; kept out of answers.
            "status_callback": form.get("StatusCallback"),
        }
        with self._lock:
            self._messages.append(message)
            self._by_sid[sid] = message
            return _public(message)

    # ----------------------------------------------------------------- list, fetch

    def _fetch(self, path: str, sid: str) -> _Reply:
        with self._lock:
            message = self._by_sid.get(sid)
            if message is not None:
                return _Reply(200, _public(message))
        return self._error(404, 20404, f"The requested resource {path} was not found")

    def _list(self, path: str, query: dict[str, str]) -> _Reply:
        try:
            page_size = min(int(query.get("PageSize", _DEFAULT_PAGE_SIZE)), _MAX_PAGE_SIZE)
            page = int(query.get("Page", 0))
            if page_size < 1 or page < 0:
                raise ValueError
        except ValueError:
            return self._error(400, 20001, "Invalid paging parameters")
        try:
            wanted = _date_filters(query)
        except ValueError as error:
            return self._error(400, 20001, str(error))

        with self._lock:
            matching = [
                _public(m)
                for m in reversed(self._messages)  # newest first
                if ("To" not in query or m["to"] == query["To"])
                and ("From" not in query or m["from"] == query["From"])
                and all(test(m["date_sent"]) for test in wanted)
            ]

        token = query.get("PageToken", "")
        sids = [m["sid"] for m in matching]
        if token[:2] == "PA" and token[2:] in sids:  # after that message
            start = sids.index(token[2:]) + 1
        elif token[:2] == "PB" and token[2:] in sids:  # before that message
            start = max(0, sids.index(token[2:]) - page_size)
        else:
            start = page * page_size
        records = matching[start : start + page_size]

        keys = ("To", "From", "DateSent", "DateSent<", "DateSent>")
        filters = [(k, query[k]) for k in keys if k in query]

        def uri(page_number: int, token: str | None = None) -> str:
            params = [*filters, ("PageSize", str(page_size)), ("Page", str(page_number))]
            if token:
                params.append(("PageToken", token))
            return f"{path}?{urlencode(params)}"

        more = start + page_size < len(matching)
        payload: Json = {
            "end": start + len(records) - 1 if records else start,
            "first_page_uri": uri(0),
            "messages": records,
            "next_page_uri": uri(page + 1, "PA" + records[-1]["sid"]) if more else None,
            "page": page,
            "page_size": page_size,
            "previous_page_uri": (
                uri(page - 1, "PB" + records[0]["sid"]) if start > 0 and records else None
            ),
            "start": start,
            "uri": uri(page, token or None),
        }
        return _Reply(200, payload)


# ------------------------------------------------------------------------ helpers


def num_segments(body: str) -> int:
    """SMS segments for ``body``: GSM-7 160/153 septets, else UCS-2 70/67 UTF-16 units."""
    if all(c in _GSM7_BASIC or c in _GSM7_EXTENDED for c in body):
        units = sum(2 if c in _GSM7_EXTENDED else 1 for c in body)
        single, multi = 160, 153
    else:
        units = len(body.encode("utf-16-le")) // 2
        single, multi = 70, 67
    return 1 if units <= single else math.ceil(units / multi)


def _rfc2822(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC).replace(microsecond=0))


def _public(message: Json) -> Json:
    """The resource as Twilio answers it: without the fake's own ``status_callback``."""
    return {k: copy.deepcopy(v) for k, v in message.items() if k not in _PRIVATE_KEYS}


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _date_filters(query: Mapping[str, str]) -> list[Callable[[str | None], bool]]:
    """DateSent, DateSent< and DateSent> as tests of a message's ``date_sent``.

    Each accepts ``YYYY-MM-DD`` (compares whole UTC days, inclusive) or an ISO 8601
    date-time, which is what twilio-python sends even for a ``date``
    (``%Y-%m-%dT%H:%M:%SZ``): ``<`` and ``>`` then compare to the second, inclusive, and
    ``DateSent`` still means that UTC day. A message not yet sent (``date_sent`` null)
    matches no date filter.
    """
    tests: list[Callable[[str | None], bool]] = []
    for key, compare in (
        ("DateSent", lambda a, b: a == b),
        ("DateSent<", lambda a, b: a <= b),
        ("DateSent>", lambda a, b: a >= b),
    ):
        if key not in query:
            continue
        bound = _parse_date(key, query[key])
        if key == "DateSent" and isinstance(bound, datetime):
            bound = bound.date()  # "messages sent on this date", whatever time is given
        tests.append(_date_test(bound, compare))
    return tests


def _date_test(
    bound: date | datetime, compare: Callable[[Any, Any], bool]
) -> Callable[[str | None], bool]:
    def test(date_sent: str | None) -> bool:
        if date_sent is None:
            return False
        sent = parsedate_to_datetime(date_sent)
        if isinstance(bound, datetime):
            return compare(sent, bound)
        return compare(sent.date(), bound)

    return test


def _parse_date(key: str, value: str) -> date | datetime:
    try:
        if len(value) == 10:
            return date.fromisoformat(value)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"Invalid value for {key}: {value}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
