"""A real SMTP server for tests, on 127.0.0.1, built on ``aiosmtpd``.

``SmtpServer`` runs aiosmtpd's threaded ``Controller`` (its own event loop in a thread)
and records what clients send::

    with SmtpServer(tls="starttls", username="tend", password="s3cret") as server:
        ...  # send through server.url(starttls=True)
        assert server.messages[0].message["Subject"] == "Date night"

Modes (``tls``): ``"none"`` (plain; AUTH allowed without TLS), ``"starttls"`` (STARTTLS
offered and, by default, required before anything but EHLO/NOOP/QUIT; AUTH only after
it) and ``"implicit"`` (TLS from the first byte, like port 465 / ``smtps://``).

TLS trust: the server presents ``certificate`` (default: one self-signed certificate per
test process, for ``localhost`` and ``127.0.0.1``, made by :func:`make_certificate`).
Clients trust it by pointing ``SSL_CERT_FILE`` at ``server.certificate.cert_file``, which
``ssl.create_default_context()`` reads (OpenSSL's default verify paths), or by passing it
as ``cafile``. The certificate is its own trust anchor: there is no separate CA.

Faults a test can inject, safe to call from the test's thread while clients send:
``refuse_recipients`` (550), ``defer_recipients`` (450), :meth:`SmtpServer.fail_data_next`
(e.g. 451 or 554 at the end of DATA; nothing recorded), :meth:`SmtpServer.drop_next_connection`
(the connection is closed right after the greeting), :meth:`SmtpServer.stall_next_mail` (a
send held in flight, for a test to kill its sender then) and :meth:`SmtpServer.stop` then
:meth:`SmtpServer.start` again (same port: asyncio binds with ``SO_REUSEADDR``).

No pytest import here: the module is plain support code on pytest's ``pythonpath``.
"""

from __future__ import annotations

import asyncio
import atexit
import email
import email.policy
import shutil
import ssl
import subprocess
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from email.message import EmailMessage
from functools import cache
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import quote

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

__all__ = [
    "Certificate",
    "ReceivedMessage",
    "SmtpServer",
    "TlsMode",
    "default_certificate",
    "make_certificate",
]

TlsMode = Literal["none", "starttls", "implicit"]

HOST = "127.0.0.1"
SERVER_NAME = "localhost"  # what the server calls itself in its greeting and EHLO reply
_STOP_TIMEOUT = 5.0  # seconds to close the connections still open when stopping

_OPENSSL_CONFIG = """\
[req]
distinguished_name = dn
x509_extensions = v3
prompt = no
[dn]
CN = localhost
[v3]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
"""


@dataclass(frozen=True)
class Certificate:
    """A PEM certificate and its unencrypted PEM private key."""

    cert_file: Path
    key_file: Path


def make_certificate(directory: Path) -> Certificate:
    """Create a self-signed certificate for ``localhost`` and ``127.0.0.1`` in ``directory``.

    Uses the ``openssl`` command line tool (the ``cryptography`` package is not a
    dependency). The key is EC P-256, so this takes milliseconds. The certificate is a
    leaf (CA:FALSE, serverAuth) with both names in subjectAltName, valid for 7 days;
    being self-signed, it is its own trust anchor: a client that trusts ``cert_file``
    (``SSL_CERT_FILE`` or ``cafile``) verifies the server, hostname included.
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("make_certificate needs the openssl command line tool on PATH")
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "smtp-cert.cnf"
    config.write_text(_OPENSSL_CONFIG)
    certificate = Certificate(
        cert_file=directory / "smtp-cert.pem", key_file=directory / "smtp-key.pem"
    )
    command = [
        openssl,
        "req",
        "-x509",
        "-config",
        str(config),
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "7",
        "-keyout",
        str(certificate.key_file),
        "-out",
        str(certificate.cert_file),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"openssl could not make a certificate: {result.stderr.strip()}")
    return certificate


@cache
def default_certificate() -> Certificate:
    """One certificate per process, in a temporary directory removed at exit."""
    directory = Path(tempfile.mkdtemp(prefix="tend-smtp-cert-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return make_certificate(directory)


@dataclass(frozen=True)
class ReceivedMessage:
    """One message the server accepted (replied 250 to its DATA)."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes  # as received (dot-unstuffed), CRLF line endings
    message: EmailMessage  # ``data`` with LF line endings, parsed with email.policy.default
    tls: bool  # the connection was encrypted (STARTTLS or implicit TLS)
    username: str | None  # who had authenticated on the connection, if anyone


class SmtpServer:
    """A recording SMTP server on 127.0.0.1 with a free port; see the module docstring.

    ``username``/``password``: when set, MAIL FROM is refused with ``530 5.7.0`` until the
    client has authenticated (AUTH PLAIN or LOGIN); wrong credentials get ``535 5.7.8``.
    When unset, AUTH is optional and any credentials are accepted (and recorded in
    ``auth_logins``). ``require_starttls`` (``"starttls"`` mode only) makes the server
    refuse MAIL, AUTH and the rest with ``530`` before STARTTLS.
    """

    host = HOST

    def __init__(
        self,
        *,
        tls: TlsMode = "none",
        username: str | None = None,
        password: str | None = None,
        certificate: Certificate | None = None,
        require_starttls: bool = True,
    ) -> None:
        if tls not in ("none", "starttls", "implicit"):
            raise ValueError(f"tls must be 'none', 'starttls' or 'implicit', not {tls!r}")
        if (username is None) != (password is None):
            raise ValueError("give both username and password, or neither")
        self.tls: TlsMode = tls
        self.username = username
        self.password = password
        self.require_starttls = require_starttls
        self.certificate: Certificate | None = (
            None if tls == "none" else certificate or default_certificate()
        )
        # Controls: a test may replace or mutate these sets at any time.
        self.refuse_recipients: set[str] = set()
        self.defer_recipients: set[str] = set()

        self._lock = threading.Condition()
        self._messages: list[ReceivedMessage] = []
        self._auth_logins: list[str] = []
        self._sessions = 0
        self._data_failures: deque[tuple[int, str]] = deque()
        self._drops = 0
        self._mail_stalls: deque[float] = deque()
        # Set when a stalled MAIL FROM starts waiting: a send is in flight.
        self.stalled = threading.Event()
        self._starting = False
        self._port = 0
        self._controller: _Controller | None = None
        self._handler = _Handler(self)

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Listen (again); after a :meth:`stop`, on the same port as before."""
        if self._controller is not None:
            raise RuntimeError("the SMTP server is already running")
        controller = _Controller(self, port=self._port)
        with self._lock:
            self._starting = True  # aiosmtpd's own probe connection is never dropped
        try:
            controller.start()
        except BaseException:
            _dispose(controller)
            raise
        finally:
            with self._lock:
                self._starting = False
        self._port = controller.port
        self._controller = controller

    def stop(self) -> None:
        """Close every connection, stop listening and end the server thread.

        Clients see their connection closed (``SMTPServerDisconnected``) and new
        connections refused until :meth:`start`. Records and controls are kept.
        """
        controller, self._controller = self._controller, None
        if controller is not None:
            _dispose(controller)

    @property
    def running(self) -> bool:
        return self._controller is not None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- addresses -------------------------------------------------------------------

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("the SMTP server has no port before its first start()")
        return self._port

    def url(self, scheme: str = "smtp", starttls: bool = False, with_auth: bool = True) -> str:
        """``smtp://user:pass@127.0.0.1:PORT?starttls=true`` and the like.

        User and password are percent-encoded; they are left out when ``with_auth`` is
        false or the server has no credentials.
        """
        userinfo = ""
        if with_auth and self.username is not None:
            user = quote(self.username, safe="")
            userinfo = f"{user}:{quote(self.password or '', safe='')}@"
        query = "?starttls=true" if starttls else ""
        return f"{scheme}://{userinfo}{self.host}:{self.port}{query}"

    # -- records ---------------------------------------------------------------------

    @property
    def messages(self) -> list[ReceivedMessage]:
        """The accepted messages, oldest first (a copy)."""
        with self._lock:
            return list(self._messages)

    @property
    def sessions(self) -> int:
        """How many connections had a MAIL FROM accepted (several messages: still one)."""
        with self._lock:
            return self._sessions

    @property
    def auth_logins(self) -> list[str]:
        """The usernames of successful AUTH commands, in order (a copy)."""
        with self._lock:
            return list(self._auth_logins)

    def wait_for_messages(self, count: int, timeout: float = 5.0) -> list[ReceivedMessage]:
        """Wait until at least ``count`` messages are recorded (for senders in threads)."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self._messages) >= count, timeout):
                raise TimeoutError(
                    f"{len(self._messages)} message(s) after {timeout} s, expected {count}"
                )
            return list(self._messages)

    def clear(self) -> None:
        """Forget the records and pending faults (for a server shared between tests)."""
        with self._lock:
            self._messages.clear()
            self._auth_logins.clear()
            self._sessions = 0
            self._data_failures.clear()
            self._drops = 0
        self.refuse_recipients = set()
        self.defer_recipients = set()

    # -- faults ----------------------------------------------------------------------

    def fail_data_next(self, code: int, text: str, times: int = 1) -> None:
        """Answer the end of the next ``times`` DATA with ``code text``; record nothing."""
        if not 400 <= code <= 599:
            raise ValueError(f"a failing SMTP reply is 4xx or 5xx, not {code}")
        with self._lock:
            self._data_failures.extend([(code, text)] * times)

    def stall_next_mail(self, seconds: float, times: int = 1) -> None:
        """The next ``times`` MAIL FROM commands wait ``seconds`` before they are answered
        (:attr:`stalled` is set as one starts): a message in flight that is not recorded,
        whatever becomes of its client meanwhile. :meth:`stop` cuts a stall short."""
        with self._lock:
            self._mail_stalls.extend([seconds] * times)

    def _take_mail_stall(self) -> float | None:
        with self._lock:
            return self._mail_stalls.popleft() if self._mail_stalls else None

    def drop_next_connection(self, times: int = 1) -> None:
        """Close the next ``times`` connections right after the 220 greeting."""
        with self._lock:
            self._drops += times

    # -- used by the server thread ---------------------------------------------------

    def _take_drop(self) -> bool:
        with self._lock:
            if self._starting or self._drops <= 0:
                return False
            self._drops -= 1
            return True

    def _take_data_failure(self) -> tuple[int, str] | None:
        with self._lock:
            return self._data_failures.popleft() if self._data_failures else None

    def _record_session(self) -> None:
        with self._lock:
            self._sessions += 1

    def _record_login(self, username: str) -> None:
        with self._lock:
            self._auth_logins.append(username)

    def _record_message(self, message: ReceivedMessage) -> None:
        with self._lock:
            self._messages.append(message)
            self._lock.notify_all()


def _matches(address: str, addresses: set[str]) -> bool:
    # set.copy() is one C call: safe while the test thread adds or removes addresses.
    wanted = address.casefold()
    return any(candidate.casefold() == wanted for candidate in addresses.copy())


class _Handler:
    """aiosmtpd handler hooks; they run in the server thread."""

    def __init__(self, owner: SmtpServer) -> None:
        self._owner = owner

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        # Checked here rather than with aiosmtpd's auth_required, which warns (and so
        # fails under filterwarnings=error) when combined with auth_require_tls=False.
        if self._owner.username is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        stall = self._owner._take_mail_stall()
        if stall is not None:
            self._owner.stalled.set()
            await asyncio.sleep(stall)
        if isinstance(server, _Smtp) and not server.counted:
            server.counted = True
            self._owner._record_session()
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if _matches(address, self._owner.refuse_recipients):
            return "550 5.1.1 No such user"
        if _matches(address, self._owner.defer_recipients):
            return "450 4.2.1 Mailbox busy, try later"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        failure = self._owner._take_data_failure()
        if failure is not None:
            code, text = failure
            return f"{code} {text}"
        data = envelope.original_content or b""
        transport = server.transport
        self._owner._record_message(
            ReceivedMessage(
                mail_from=envelope.mail_from or "",
                rcpt_tos=list(envelope.rcpt_tos),
                data=data,
                message=email.message_from_bytes(
                    data.replace(b"\r\n", b"\n"), policy=email.policy.default
                ),
                tls=transport is not None and transport.get_extra_info("ssl_object") is not None,
                username=session.auth_data if isinstance(session.auth_data, str) else None,
            )
        )
        return "250 2.0.0 OK: queued"

    def authenticate(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        """aiosmtpd ``authenticator``: PLAIN and LOGIN give a LoginPassword."""
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode("utf-8", errors="replace")
        password = auth_data.password.decode("utf-8", errors="replace")
        expected = self._owner.username
        if expected is not None and (login, password) != (expected, self._owner.password):
            return AuthResult(success=False, handled=False)  # -> 535 5.7.8
        self._owner._record_login(login)
        return AuthResult(success=True, auth_data=login)


class _Smtp(SMTP):
    """One connection. Adds: tracking for a clean stop, and dropping after the greeting."""

    def __init__(self, controller: _Controller, handler: _Handler, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._controller = controller
        self._drop = False
        self.counted = False  # this connection already counts in SmtpServer.sessions

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.transport is None:  # the TCP connection, not the STARTTLS upgrade
            self._drop = self._controller.owner._take_drop()
            self._controller.connections.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        try:
            super().connection_lost(error)
        finally:
            self._controller.connections.discard(self)

    async def _handle_client(self) -> None:
        if not self._drop:
            await super()._handle_client()
            return
        await self.push(f"220 {self.hostname} {self.__ident__}")
        if self.transport is not None:
            self.transport.close()


class _Controller(Controller):
    """aiosmtpd's threaded controller, bound to a free port (or the one given)."""

    def __init__(self, owner: SmtpServer, *, port: int) -> None:
        context = _server_context(owner.certificate) if owner.certificate else None
        smtp_kwargs: dict[str, Any] = {
            "authenticator": owner._handler.authenticate,
            # Plain and implicit-TLS servers take AUTH as is; STARTTLS ones after it.
            "auth_require_tls": owner.tls == "starttls",
            "timeout": 60,
        }
        if owner.tls == "starttls":
            smtp_kwargs["tls_context"] = context
            smtp_kwargs["require_starttls"] = owner.require_starttls
        super().__init__(
            owner._handler,
            hostname=HOST,
            port=port,
            ssl_context=context if owner.tls == "implicit" else None,
            server_hostname=SERVER_NAME,  # else socket.getfqdn(), a DNS lookup per connection
            **smtp_kwargs,
        )
        self.owner = owner
        self.connections: set[_Smtp] = set()

    def factory(self) -> SMTP:
        # loop= spares aiosmtpd's fallback, which flips the process-wide warning filters
        # from this thread (warnings.catch_warnings is not thread-safe).
        return _Smtp(self, self.handler, loop=self.loop, **self.SMTP_kwargs)

    async def _create_server(self) -> asyncio.AbstractServer:
        server = await self.loop.create_server(
            self._factory_invoker,
            host=self.hostname,
            port=self.port,  # 0 on the first start: the system picks a free port
            ssl=self.ssl_context,
            ssl_handshake_timeout=5.0 if self.ssl_context else None,
            ssl_shutdown_timeout=2.0 if self.ssl_context else None,
        )
        self.port = server.sockets[0].getsockname()[1]
        return server

    async def close_everything(self) -> None:
        """In the server's loop: stop listening, abort connections, end every task."""
        if self.server is not None:
            self.server.close()
        for connection in list(self.connections):
            transport = connection.transport
            if isinstance(transport, asyncio.WriteTransport):
                transport.abort()  # close() would wait for a TLS close_notify from the client
            elif transport is not None:
                transport.close()
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:  # includes TLS handshakes still under way
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        deadline = time.monotonic() + _STOP_TIMEOUT
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.001)
        await asyncio.sleep(0)  # let the transports' last callbacks close their sockets


def _server_context(certificate: Certificate) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certificate.cert_file, certificate.key_file)
    return context


def _dispose(controller: _Controller) -> None:
    """Stop a controller cleanly, whether it started, half-started or failed to bind."""
    loop = controller.loop
    if loop.is_running():
        future = asyncio.run_coroutine_threadsafe(controller.close_everything(), loop)
        future.result(timeout=_STOP_TIMEOUT + 1)
    controller.stop(no_assert=True)  # stops the loop; its thread closes server and loop
    if not loop.is_closed():  # the thread ended early (e.g. the port was taken)
        loop.close()
