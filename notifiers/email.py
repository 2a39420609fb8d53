"""E-mail through SMTP, with the standard library's ``smtplib`` and ``EmailMessage``.

``SMTP_URL`` is ``smtp://user:pass@host:587?starttls=true`` (STARTTLS), ``smtps://…:465``
(TLS from the first byte) or ``smtp://host:25`` (plain, for a relay on the same network).
Each message has a plain-text body and an HTML alternative, a subject per ritual, a
``Message-ID`` derived from the delivery key under the sender's domain (the same delivery
always has the same id, so a repeat after a crash can be recognised by the receiving side),
a signed confirm link and ``List-Unsubscribe`` with one-click unsubscribe (RFC 8058) when
``TEND_PUBLIC_URL`` and ``TEND_SECRET_KEY`` are set.

Connections are pooled: a sending thread takes an open, logged-in connection, sends, and
gives it back, so a batch of deliveries shares a few connections instead of one handshake
each. Classification: refused recipients (5xx) -> permanent; a 5xx to the message itself
(policy, size) -> permanent; 4xx replies, connection errors and timeouts -> transient; login
and sender refusals -> transient with a hint to check the settings.
"""

from __future__ import annotations

import email.errors
import email.policy
import hashlib
import ipaddress
import logging
import math
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import TYPE_CHECKING, Literal
from urllib.parse import parse_qs, unquote, urlsplit

import idna
from jinja2 import Environment

from config.model import mask_address
from notifiers.base import Message, Notifier, NotifierError, SendResult
from notifiers.links import Links

if TYPE_CHECKING:
    from config.settings import Settings

__all__ = ["EmailNotifier", "SmtpTarget", "compose"]

log = logging.getLogger(__name__)

SMTP_TIMEOUT = 20.0  # seconds for connecting and for each SMTP command
MAX_IDLE = 60.0  # an idle pooled connection older than this is replaced (servers drop them)
CHECK_AFTER = 5.0  # a connection idle longer than this is checked with NOOP before reuse
BRIEF = 2.0  # seconds for NOOP and QUIT: housekeeping must not hang a sending thread
MAX_BODY = 100_000


class _Policy(email.policy.EmailPolicy):
    """The default policy, but a List-Unsubscribe URL is written on one line as it is.

    The policy folds long headers at whitespace and a URL has none, so at 78 columns it
    would go out as RFC 2047 encoded words, which mail clients do not decode there. (Raising
    ``max_line_length`` for the whole message instead makes over-long encoded words in
    non-ASCII subjects and names.) The URL is ASCII and well under SMTP's 998-octet limit.
    """

    def fold(self, name: str, value: str) -> str:
        if name.lower() in _UNFOLDED:
            return f"{name}: {value}{self.linesep}"
        return str(super().fold(name, value))

    def fold_binary(self, name: str, value: str) -> bytes:
        if name.lower() in _UNFOLDED:
            return f"{name}: {value}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)


_UNFOLDED = frozenset({"list-unsubscribe"})
_POLICY = _Policy()

_HTML = Environment(autoescape=True).from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ subject }}</title></head>
<body style="margin:0;padding:24px;font-family:-apple-system,Segoe UI,Helvetica,Arial,\
sans-serif;font-size:16px;line-height:1.5;color:#222">
{% for paragraph in paragraphs %}<p>{% for line in paragraph %}{{ line }}{% if not loop.last %}\
<br>{% endif %}{% endfor %}</p>
{% endfor %}{% if confirm_url %}<p style="margin:28px 0"><a href="{{ confirm_url }}" \
style="background:#2f6f5e;color:#fff;padding:12px 20px;border-radius:6px;\
text-decoration:none">Done it? Confirm</a></p>
{% endif %}<hr style="border:none;border-top:1px solid #ddd;margin-top:32px">
<p style="font-size:13px;color:#777">Sent by Tend for {{ name }}.{% if page_url %} \
<a href="{{ page_url }}" style="color:#777">Your page</a>: streaks, history, what is coming.\
{% endif %}{% if unsubscribe_url %} \
<a href="{{ unsubscribe_url }}" style="color:#777">Unsubscribe from these e-mails</a>.\
{% endif %}</p>
</body></html>
"""
)


@dataclass(frozen=True)
class SmtpTarget:
    """Where and how to connect, from ``SMTP_URL``. The password never appears in repr."""

    host: str
    port: int
    # plain: never TLS (asked for with starttls=false); auto: STARTTLS when the server offers
    # it, and no password in clear text to a host other than this one; starttls: required;
    # tls: from the first byte (smtps://).
    security: Literal["plain", "auto", "starttls", "tls"]
    username: str | None = None
    password: str | None = None
    timeout: float = SMTP_TIMEOUT

    @classmethod
    def parse(cls, url: str) -> SmtpTarget:
        # Never quote the parser's own error: it can repeat part of the password.
        unreadable = ValueError(
            "SMTP_URL is not smtp[s]://[user:password@]host[:port][?starttls=true] "
            "(percent-encode / ? # @ : in the user name and password)"
        )
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise unreadable from None
        if parts.scheme.lower() not in ("smtp", "smtps"):
            raise ValueError(
                f"SMTP_URL must start with smtp:// or smtps://, not {parts.scheme or '(none)'}://"
            )
        if not parts.hostname:
            raise ValueError("SMTP_URL has no host")
        if parts.path not in ("", "/") or parts.fragment:
            # "smtp://tend:2525/x@host" is host "tend" and a path: a password with a slash.
            raise unreadable
        query = {k.lower(): v[-1].lower() for k, v in parse_qs(parts.query).items()}
        unknown = set(query) - {"starttls", "timeout"}
        if unknown:
            raise ValueError(
                f"SMTP_URL: unknown option {', '.join(sorted(unknown))} "
                "(the options are starttls and timeout)"
            )
        starttls = query.get("starttls")
        if starttls not in (None, "true", "false", "1", "0", "yes", "no"):
            raise ValueError("SMTP_URL: starttls must be true or false")
        security: Literal["plain", "auto", "starttls", "tls"]
        if parts.scheme.lower() == "smtps":
            if starttls in ("true", "1", "yes"):
                raise ValueError("SMTP_URL: smtps:// is TLS already; drop starttls=true")
            security, default_port = "tls", 465
        elif port == 465:
            raise ValueError("SMTP_URL: port 465 is TLS from the first byte: write smtps://")
        elif starttls in ("true", "1", "yes") or (starttls is None and port == 587):
            security, default_port = "starttls", 587
        elif starttls is None:
            security, default_port = "auto", 25
        else:
            security, default_port = "plain", 25
        try:
            timeout = float(query.get("timeout", SMTP_TIMEOUT))
        except ValueError:
            raise ValueError("SMTP_URL: timeout must be a number of seconds") from None
        if not math.isfinite(timeout) or timeout <= 0:
            raise ValueError("SMTP_URL: timeout must be a positive number of seconds")
        return cls(
            host=parts.hostname,
            port=port or default_port,
            security=security,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
            timeout=timeout,
        )

    def __repr__(self) -> str:
        user = f"{self.username}:***@" if self.username else ""
        return f"SmtpTarget({self.security} {user}{self.host}:{self.port})"


class _Pool:
    """Open, logged-in connections, each used by one thread at a time."""

    def __init__(self, target: SmtpTarget, size: int) -> None:
        self.target = target
        self.size = size
        self._idle: list[tuple[smtplib.SMTP, float]] = []
        self._lock = threading.Lock()
        self._closed = False
        self.opened = 0  # connections opened so far (for tests and the benchmark)

    def _open(self) -> smtplib.SMTP:
        target = self.target
        context = ssl.create_default_context()
        # Our own name in EHLO without a DNS lookup (smtplib's default can take seconds).
        local = socket.gethostname()
        connection: smtplib.SMTP
        if target.security == "tls":
            connection = smtplib.SMTP_SSL(
                target.host,
                target.port,
                local_hostname=local,
                timeout=target.timeout,
                context=context,
            )
        else:
            connection = smtplib.SMTP(
                target.host, target.port, local_hostname=local, timeout=target.timeout
            )
        try:
            if target.security in ("starttls", "auto"):
                connection.ehlo()
                if target.security == "starttls" or connection.has_extn("starttls"):
                    if target.security == "auto" and not target.username:
                        # Opportunistic, as mail servers do among themselves: encrypted,
                        # with no password to protect, so a relay's self-signed
                        # certificate is no reason to send nothing.
                        context = ssl.create_default_context()
                        context.check_hostname = False
                        context.verify_mode = ssl.CERT_NONE
                    connection.starttls(context=context)
                    connection.ehlo()
                elif target.username and not _is_loopback(target.host):
                    raise smtplib.SMTPNotSupportedError(
                        f"{target.host} offers no STARTTLS: not sending the password in clear "
                        "text (add ?starttls=false to SMTP_URL to allow it)"
                    )
            if target.username:
                connection.login(target.username, target.password or "")
        except BaseException:
            _quietly_close(connection)
            raise
        with self._lock:
            self.opened += 1
        return connection

    def take(self) -> smtplib.SMTP:
        while True:
            with self._lock:
                if not self._idle:
                    break
                connection, since = self._idle.pop()
            idle = time.monotonic() - since
            if idle > MAX_IDLE:
                # No QUIT: on a path that went silent (NAT state gone) it would wait for the
                # whole timeout, once per pooled connection.
                connection.close()
                continue
            if idle > CHECK_AFTER:
                try:
                    with _brief(connection):
                        code, _ = connection.noop()
                except (smtplib.SMTPException, OSError):
                    code = 0
                if code != 250:
                    connection.close()
                    continue
            return connection
        return self._open()

    def give(self, connection: smtplib.SMTP) -> None:
        if connection.sock is None:  # smtplib closed it (a 421 reply, say): not reusable
            return
        with self._lock:
            if not self._closed and len(self._idle) < self.size:
                self._idle.append((connection, time.monotonic()))
                return
        _quietly_close(connection)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection, _ in idle:
            _quietly_close(connection)


def _quietly_close(connection: smtplib.SMTP) -> None:
    """QUIT politely, but not for long, and close."""
    try:
        with _brief(connection):
            connection.quit()
    except (smtplib.SMTPException, OSError):
        pass
    finally:
        connection.close()


@contextmanager
def _brief(connection: smtplib.SMTP, seconds: float = BRIEF) -> Iterator[None]:
    """A short socket timeout for a housekeeping command (NOOP, QUIT)."""
    sock = connection.sock
    previous = sock.gettimeout() if sock is not None else None
    if sock is not None:
        sock.settimeout(seconds)
    try:
        yield
    finally:
        if sock is not None and connection.sock is sock:
            sock.settimeout(previous)


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def compose(
    message: Message,
    *,
    sender: str,
    links: Links | None,
    now: datetime | None = None,
) -> EmailMessage:
    """The e-mail for `message`: headers, a plain-text body and an HTML alternative."""
    person = message.recipient
    assert person.email is not None
    subject = message.subject or "Tend"
    if "=?" in subject:  # would decode to header lines of its own on older Pythons
        raise ValueError("the subject has an encoded word ('=?')")
    confirm_url = unsubscribe_url = page_url = None
    if links is not None:
        if message.occurrence is not None:
            confirm_url = links.confirm_url(person.household, message.occurrence, person.partner)
        unsubscribe_url = links.unsubscribe_url(person.household, person.partner, "email")
        if message.page_generation is not None:
            page_url = links.page_url(person.household, person.partner, message.page_generation)

    mail = EmailMessage(policy=_POLICY)
    mail["Subject"] = subject
    mail["From"] = sender
    mail["To"] = _address(person.name, person.email)
    mail["Date"] = format_datetime(now or datetime.now(UTC))
    mail["Message-ID"] = message_id(message.key, sender)
    mail["Auto-Submitted"] = "auto-generated"  # asks auto-responders not to answer
    if unsubscribe_url:
        mail["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"

    text = message.body.rstrip()
    if confirm_url:
        text += f"\n\nDone it? Confirm here: {confirm_url}"
    text += f"\n\n-- \nSent by Tend for {person.name}."
    if page_url:
        text += f"\nYour page (streaks, history, what is coming): {page_url}"
    if unsubscribe_url:
        text += f"\nUnsubscribe from these e-mails: {unsubscribe_url}"
    mail.set_content(text + "\n")

    html = message.html or _HTML.render(
        subject=subject,
        paragraphs=[p.split("\n") for p in message.body.strip().split("\n\n") if p.strip()],
        confirm_url=confirm_url,
        unsubscribe_url=unsubscribe_url,
        page_url=page_url,
        name=person.name,
    )
    mail.add_alternative(html, subtype="html")
    return mail


def _address(name: str, address: str) -> Address:
    """``Name <local@domain>``, an internationalised domain in its ASCII (IDNA) form.

    ``ValueError`` for what no plain SMTP server takes: a non-ASCII local part (SMTPUTF8)."""
    local, _, domain = address.rpartition("@")
    if not local.isascii():
        raise ValueError("the part before the @ has non-ASCII characters (SMTPUTF8 is not used)")
    try:
        # IDNA 2008 with UTS 46 mapping, as the address check (email-validator) reads it;
        # Python's own "idna" codec is IDNA 2003, which turns faß.de into fass.de: another
        # domain.
        ascii_domain = idna.encode(domain, uts46=True, transitional=False).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise ValueError(f"the domain cannot be written in ASCII: {exc}") from None
    if "=?" in name:
        name = ""  # an encoded word in a name could decode to header lines on older Pythons
    return Address(display_name=name, username=local, domain=ascii_domain)


def message_id(key: str, sender: str) -> str:
    """``<digest@domain>``: stable for a delivery key, under the sender's domain."""
    address = parseaddr(sender)[1]
    domain = address.rpartition("@")[2] or "tend.invalid"
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return f"<{digest}@{domain}>"


class EmailNotifier(Notifier):
    channel = "email"
    max_length = MAX_BODY
    address_field = "email"

    def __init__(
        self,
        target: SmtpTarget,
        sender: str,
        *,
        links: Links | None = None,
        pool_size: int = 4,
    ) -> None:
        name, address = parseaddr(sender)
        if not address or "@" not in address or sender.count("<") != sender.count(">"):
            raise ValueError(
                f"SMTP_FROM {sender!r} is not an e-mail address "
                "(write tend@example.com or Tend <tend@example.com>)"
            )
        try:
            Address(addr_spec=address)
            checked = _address(name, address)
        except (ValueError, IndexError, email.errors.MessageError) as exc:
            raise ValueError(f"SMTP_FROM {sender!r} is not an e-mail address: {exc}") from None
        self.target = target
        self.sender = str(checked)
        self.links = links
        self._pool = _Pool(target, pool_size)

    @classmethod
    def from_settings(cls, settings: Settings) -> EmailNotifier:
        if settings.smtp_url is None or not settings.smtp_from:
            raise ValueError("set SMTP_URL and SMTP_FROM")
        links = Links.from_settings(settings)
        if links is None:
            log.warning(
                "TEND_PUBLIC_URL or TEND_SECRET_KEY is not set: e-mails go out without "
                "confirm and unsubscribe links"
            )
        return cls(
            SmtpTarget.parse(settings.smtp_url.get_secret_value()),
            settings.smtp_from,
            links=links,
            pool_size=settings.senders,
        )

    @property
    def connections_opened(self) -> int:
        return self._pool.opened

    def _send(self, message: Message) -> SendResult:
        try:
            mail = compose(message, sender=self.sender, links=self.links)
        except (ValueError, UnicodeError, email.errors.MessageError) as exc:
            # This message can never be built: permanent, so the next channel is tried.
            raise NotifierError(f"cannot write this e-mail: {exc}", permanent=True) from None
        to = message.recipient.email
        assert to is not None
        try:
            connection = self._pool.take()
        except smtplib.SMTPAuthenticationError as exc:
            raise _reply_error(exc.smtp_code, exc.smtp_error, "login refused", ours=True) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise NotifierError(
                f"SMTP: {exc} (check SMTP_URL: does the server offer STARTTLS and AUTH?)",
                config=True,
            ) from None
        except smtplib.SMTPResponseException as exc:
            # A server refusing us (554 on greeting, a HELO error) is not this message's
            # fault: transient, like a connection error.
            raise _reply_error(
                exc.smtp_code, exc.smtp_error, "refused the connection", ours=True
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            if isinstance(exc, ssl.SSLCertVerificationError):
                raise NotifierError(
                    f"SMTP: the server's certificate is not trusted ({exc.verify_message}); "
                    "check SMTP_URL's host, or name its CA in SSL_CERT_FILE",
                    config=True,
                ) from None
            raise NotifierError(f"SMTP: could not connect ({_describe(exc)})") from None
        try:
            refused = connection.send_message(mail, from_addr=parseaddr(self.sender)[1])
        except smtplib.SMTPRecipientsRefused as exc:
            self._pool.give(connection)  # smtplib reset the session: still usable
            code, reply = next(iter(exc.recipients.values()), (550, b"refused"))
            raise _reply_error(code, reply, "recipient refused") from None
        except smtplib.SMTPSenderRefused as exc:
            self._pool.give(connection)
            raise _reply_error(exc.smtp_code, exc.smtp_error, "sender refused", ours=True) from None
        except smtplib.SMTPDataError as exc:
            self._pool.give(connection)
            raise _reply_error(exc.smtp_code, exc.smtp_error, "message refused") from None
        except smtplib.SMTPNotSupportedError as exc:
            self._pool.give(connection)
            raise NotifierError(f"SMTP: {exc}", permanent=True) from None
        except smtplib.SMTPResponseException as exc:
            _quietly_close(connection)
            raise _reply_error(exc.smtp_code, exc.smtp_error, "refused", ours=True) from None
        except (smtplib.SMTPException, OSError) as exc:
            _quietly_close(connection)
            raise NotifierError(f"SMTP: connection lost while sending ({_describe(exc)})") from None
        self._pool.give(connection)
        if refused:  # only one recipient, so this cannot be partial; kept for safety
            code, reply = next(iter(refused.values()))
            raise _reply_error(code, reply, "recipient refused")
        return SendResult(provider_id=str(mail["Message-ID"]).strip("<>"), status="sent")

    def close(self) -> None:
        self._pool.close()

    def __repr__(self) -> str:
        return f"<EmailNotifier from={mask_address(parseaddr(self.sender)[1])} {self.target!r}>"


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _reply_error(code: int, reply: bytes | str, what: str, *, ours: bool = False) -> NotifierError:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    label = f"SMTP {code} {what}: {text}".strip()
    if ours:  # our login or our sender: fix the settings; the next channel would not help
        return NotifierError(f"{label} (check SMTP_URL and SMTP_FROM)", code=str(code), config=True)
    if 500 <= code < 600:
        return NotifierError(label, permanent=True, code=str(code))
    return NotifierError(label, code=str(code))
