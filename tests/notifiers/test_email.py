"""The e-mail notifier against a real SMTP server (aiosmtpd on 127.0.0.1): no mocked smtplib.

What the server receives (headers, both bodies, signed links), each transport (plain,
STARTTLS, implicit TLS, AUTH), how refusals are classified, the connection pool, secrets
kept out of logs and texts, and the clock.
"""

from __future__ import annotations

import logging
import os
import re
import smtplib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import quote

import pytest
import time_machine
from smtp_server import Certificate, ReceivedMessage, SmtpServer, default_certificate

import notifiers.email as email_module
from config.settings import Settings
from notifiers.base import Message, NotifierError, Recipient, SendResult
from notifiers.email import EmailNotifier, SmtpTarget
from notifiers.links import BadLink, Links

SENDER = "Tend <tend@example.com>"
PUBLIC_URL = "https://tend.example.com"
SECRET = "test-secret-for-links"
LINKS = Links(PUBLIC_URL, SECRET)
USER = "tend"
PASSWORD = "s3cret p@ss/:%word"  # distinctive, and needs percent-encoding in a URL

SAM = Recipient(household="alex-sam", partner="sam", name="Sam Lee", email="sam@example.com")
ALEX = Recipient(household="alex-sam", partner="alex", name="Alex Kim", email="alex@example.com")
BODY = "Date night on Saturday.\n\nYour turn to plan: try the new ramen place."
MESSAGE = Message(
    recipient=SAM,
    channel="email",
    body=BODY,
    subject="Tend: Date night",
    key="alex-sam/date-night/2026-12-05T19:00/sam/day_of/email",
    ritual="date-night",
    occurrence=42,
)
# A second, unrelated message: what must still go out after a failure.
NEXT = replace(
    MESSAGE, recipient=ALEX, key="alex-sam/date-night/2026-12-05T19:00/alex/day_of/email"
)

MESSAGE_ID = re.compile(r"<([0-9a-f]{32})@example\.com>")
CONFIRM = re.compile(r"https://tend\.example\.com/confirm/([A-Za-z0-9_.-]+)")
UNSUBSCRIBE = re.compile(r"https://tend\.example\.com/unsubscribe/([A-Za-z0-9_.-]+)")

MakeNotifier = Callable[..., EmailNotifier]


# -- fixtures and helpers ----------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
def make_notifier() -> Iterator[MakeNotifier]:
    """``make(url, links=..., pool_size=...)``; every notifier made is closed afterwards."""
    made: list[EmailNotifier] = []

    def make(url: str, *, links: Links | None = LINKS, pool_size: int = 4) -> EmailNotifier:
        notifier = EmailNotifier(SmtpTarget.parse(url), SENDER, links=links, pool_size=pool_size)
        made.append(notifier)
        return notifier

    yield make
    for notifier in made:
        notifier.close()


@pytest.fixture
def trusted(monkeypatch: pytest.MonkeyPatch) -> Certificate:
    """The test certificate, trusted the way Tend trusts a CA: through SSL_CERT_FILE."""
    certificate = default_certificate()
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate.cert_file))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    return certificate


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """A clean environment for ``Settings()``: no .env file, no TWILIO_/SMTP_/TEND_ vars."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("TWILIO_", "SMTP_", "TEND_")) or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    return monkeypatch


def plain(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert isinstance(part, EmailMessage)
    content = part.get_content()
    assert isinstance(content, str)
    return content


def html(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert isinstance(part, EmailMessage)
    content = part.get_content()
    assert isinstance(content, str)
    return content


def only(server: SmtpServer) -> ReceivedMessage:
    [received] = server.messages
    return received


def raw_headers(received: ReceivedMessage) -> str:
    """The header block as it went over the wire, unfolded (CRLF + WSP -> WSP)."""
    head = received.data.split(b"\r\n\r\n", 1)[0].decode("ascii")
    return re.sub(r"\r\n([ \t])", r"\1", head)


def subjects(server: SmtpServer) -> list[str]:
    return [str(m.message["Subject"]) for m in server.messages]


def open_connections(server: SmtpServer) -> int:
    """Connections the server holds open (the support module's own bookkeeping)."""
    controller = server._controller
    return 0 if controller is None else len(controller.connections)


def wait_until(condition: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


# -- SMTP_URL ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "security", "host", "port"),
    [
        # STARTTLS when offered (and a password never in clear text to another host)
        ("smtp://mail.example.com", "auto", "mail.example.com", 25),
        ("smtp://mail.example.com:2525", "auto", "mail.example.com", 2525),
        ("smtp://u:p@mail.example.com:587", "starttls", "mail.example.com", 587),  # 587 implies it
        ("smtp://mail.example.com:587?starttls=false", "plain", "mail.example.com", 587),
        ("smtp://mail.example.com:2525?starttls=true", "starttls", "mail.example.com", 2525),
        ("smtp://mail.example.com?starttls=TRUE", "starttls", "mail.example.com", 587),
        ("smtp://mail.example.com?starttls=yes", "starttls", "mail.example.com", 587),
        ("smtps://mail.example.com", "tls", "mail.example.com", 465),
        ("smtps://mail.example.com:2465?starttls=false", "tls", "mail.example.com", 2465),
        ("SMTP://Mail.Example.COM", "auto", "mail.example.com", 25),
        ("smtp://mail.example.com?starttls=false", "plain", "mail.example.com", 25),
    ],
)
def test_smtp_url_security_and_port(url: str, security: str, host: str, port: int) -> None:
    target = SmtpTarget.parse(url)
    assert (target.security, target.host, target.port) == (security, host, port)
    assert target.timeout == email_module.SMTP_TIMEOUT


def test_smtp_url_credentials_are_percent_decoded() -> None:
    target = SmtpTarget.parse("smtp://tend%40corp:p%40ss%20w%2Ford%3A%25@mail.example.com:587")
    assert target.username == "tend@corp"
    assert target.password == "p@ss w/ord:%"
    assert SmtpTarget.parse("smtp://mail.example.com").username is None
    assert SmtpTarget.parse("smtp://mail.example.com").password is None
    assert SmtpTarget.parse("smtp://h?timeout=2.5").timeout == 2.5


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("http://mail.example.com", "must start with smtp:// or smtps://, not http://"),
        ("mail.example.com:25", "must start with smtp:// or smtps://"),
        ("smtp://", "has no host"),
        ("smtp://:25", "has no host"),
        ("smtps://mail.example.com?starttls=true", "smtps:// is TLS already; drop starttls=true"),
        ("smtp://mail.example.com?tls=on", "unknown option tls"),
        ("smtp://mail.example.com?starttls=maybe", "starttls must be true or false"),
        ("smtp://mail.example.com?timeout=abc", "timeout must be a number of seconds"),
        ("smtp://mail.example.com?timeout=0", "timeout must be a positive number"),
        ("smtp://mail.example.com?timeout=-1", "timeout must be a positive number"),
        ("smtp://mail.example.com:99999", "SMTP_URL is not smtp[s]://"),
        ("smtp://mail.example.com:465", "port 465 is TLS from the first byte"),
    ],
)
def test_smtp_url_errors_say_what_is_wrong(url: str, error: str) -> None:
    with pytest.raises(ValueError, match=re.escape(error)):
        SmtpTarget.parse(url)


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_smtp_url_timeout_must_be_a_finite_number(value: str) -> None:
    with pytest.raises(ValueError, match="timeout"):
        SmtpTarget.parse(f"smtp://mail.example.com?timeout={value}")


def test_the_password_never_shows_in_a_target_repr() -> None:
    target = SmtpTarget.parse(f"smtp://{USER}:{quote(PASSWORD, safe='')}@mail.example.com:587")
    assert target.password == PASSWORD
    for text in (repr(target), str(target)):
        assert text == "SmtpTarget(starttls tend:***@mail.example.com:587)"
    assert (
        repr(SmtpTarget.parse("smtps://mail.example.com")) == "SmtpTarget(tls mail.example.com:465)"
    )


def test_an_unreadable_smtp_url_does_not_quote_the_password() -> None:
    with pytest.raises(ValueError) as caught:
        SmtpTarget.parse("smtp://tend:hunter2/x@mail.example.com:587")
    assert "hunter2" not in str(caught.value)


# -- what the server receives ---------------------------------------------------------------


def test_the_headers_of_a_sent_message(server: SmtpServer, make_notifier: MakeNotifier) -> None:
    result = make_notifier(server.url()).send(MESSAGE)

    received = only(server)
    mail = received.message
    assert received.mail_from == "tend@example.com"
    assert received.rcpt_tos == ["sam@example.com"]
    assert mail["From"] == "Tend <tend@example.com>"
    assert mail["To"] == "Sam Lee <sam@example.com>"
    assert mail["To"].addresses[0].display_name == "Sam Lee"
    assert mail["Subject"] == "Tend: Date night"
    assert mail["Date"].datetime.tzinfo is not None
    assert abs(mail["Date"].datetime - datetime.now(UTC)) < timedelta(minutes=1)
    found = MESSAGE_ID.fullmatch(str(mail["Message-ID"]))
    assert found is not None
    assert mail["Auto-Submitted"] == "auto-generated"
    token = mail["List-Unsubscribe"].removeprefix(f"<{PUBLIC_URL}/unsubscribe/").removesuffix(">")
    assert mail["List-Unsubscribe"] == f"<{PUBLIC_URL}/unsubscribe/{token}>"
    unsubscribe = LINKS.read_unsubscribe(token)
    assert (unsubscribe.household, unsubscribe.partner, unsubscribe.channel) == (
        "alex-sam",
        "sam",
        "email",
    )
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert result == SendResult(provider_id=f"{found.group(1)}@example.com", status="sent")
    assert result.provider_id == str(mail["Message-ID"]).strip("<>")


def test_the_subject_is_the_rituals(server: SmtpServer, make_notifier: MakeNotifier) -> None:
    notifier = make_notifier(server.url())
    notifier.send(replace(MESSAGE, subject="Tend: Weekly check-in", ritual="check-in"))
    notifier.send(replace(MESSAGE, subject=None))
    assert subjects(server) == ["Tend: Weekly check-in", "Tend"]


def test_list_unsubscribe_goes_over_the_wire_as_a_url(
    server: SmtpServer, make_notifier: MakeNotifier
) -> None:
    make_notifier(server.url()).send(MESSAGE)
    head = raw_headers(only(server))
    assert "=?" not in head
    assert re.search(
        rf"^List-Unsubscribe: <{re.escape(PUBLIC_URL)}/unsubscribe/[\w.-]+>\r?$", head, re.M
    )


def test_the_message_id_is_stable_for_a_delivery_key(
    server: SmtpServer, make_notifier: MakeNotifier
) -> None:
    notifier = make_notifier(server.url())
    first = notifier.send(MESSAGE)
    again = notifier.send(MESSAGE)  # the same delivery, repeated after a crash
    other = notifier.send(replace(MESSAGE, key=MESSAGE.key.replace("day_of", "day_before")))

    ids = [str(m.message["Message-ID"]) for m in server.messages]
    assert ids[0] == ids[1] != ids[2]
    assert all(MESSAGE_ID.fullmatch(i) for i in ids)
    assert first.provider_id == again.provider_id != other.provider_id


def test_both_bodies_carry_the_text_and_the_signed_links(
    server: SmtpServer, make_notifier: MakeNotifier
) -> None:
    make_notifier(server.url()).send(MESSAGE)

    mail = only(server).message
    assert mail.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in mail.iter_parts()] == ["text/plain", "text/html"]
    text, page = plain(mail), html(mail)
    assert text.startswith(BODY + "\n\n")
    for line in BODY.split("\n\n"):
        assert line in page

    for body in (text, page):
        [confirm] = CONFIRM.findall(body)
        link = LINKS.read_confirm(confirm)
        assert (link.household, link.occurrence, link.partner) == ("alex-sam", 42, "sam")
        [unsubscribe] = UNSUBSCRIBE.findall(body)
        found = LINKS.read_unsubscribe(unsubscribe)
        assert (found.household, found.partner, found.channel) == ("alex-sam", "sam", "email")
    assert f'<a href="{PUBLIC_URL}/confirm/' in page
    assert "Sent by Tend for Sam Lee." in text and "Sent by Tend for Sam Lee." in page


def test_a_token_of_one_kind_is_not_accepted_as_the_other(
    server: SmtpServer, make_notifier: MakeNotifier
) -> None:
    make_notifier(server.url()).send(MESSAGE)
    text = plain(only(server).message)
    [confirm], [unsubscribe] = CONFIRM.findall(text), UNSUBSCRIBE.findall(text)
    with pytest.raises(BadLink):
        LINKS.read_unsubscribe(confirm)
    with pytest.raises(BadLink):
        LINKS.read_confirm(unsubscribe)
    with pytest.raises(BadLink):
        Links(PUBLIC_URL, "another-secret").read_confirm(confirm)


def test_the_html_escapes_the_body_and_makes_paragraphs(
    server: SmtpServer, make_notifier: MakeNotifier
) -> None:
    body = "Tom & Jerry <script>alert(1)</script>\nsecond line\n\n\n\nLast paragraph."
    make_notifier(server.url()).send(replace(MESSAGE, body=body, subject="A <b>&</b>"))

    mail = only(server).message
    page = html(mail)
    assert "<script>" not in page
    assert "Tom &amp; Jerry &lt;script&gt;alert(1)&lt;/script&gt;<br>second line" in page
    assert re.findall(r"<p>(.*?)</p>", page) == [
        "Tom &amp; Jerry &lt;script&gt;alert(1)&lt;/script&gt;<br>second line",
        "Last paragraph.",
    ]
    assert "<title>A &lt;b&gt;&amp;&lt;/b&gt;</title>" in page
    assert plain(mail).startswith(body)  # the text part is text: nothing to escape
    assert mail["Subject"] == "A <b>&</b>"


def test_no_confirm_link_without_an_occurrence(
    server: SmtpServer, make_notifier: MakeNotifier
) -> None:
    make_notifier(server.url()).send(replace(MESSAGE, occurrence=None))

    mail = only(server).message
    for body in (plain(mail), html(mail)):
        assert "/confirm/" not in body
        assert "Confirm" not in body
        assert len(UNSUBSCRIBE.findall(body)) == 1
    assert mail["List-Unsubscribe"] is not None


def test_without_links_there_is_no_unsubscribe_and_no_link(
    server: SmtpServer, make_notifier: MakeNotifier
) -> None:
    make_notifier(server.url(), links=None).send(MESSAGE)

    mail = only(server).message
    assert mail["List-Unsubscribe"] is None
    assert mail["List-Unsubscribe-Post"] is None
    for body in (plain(mail), html(mail)):
        assert "https://" not in body
        assert "Date night on Saturday." in body
    assert MESSAGE_ID.fullmatch(str(mail["Message-ID"]))


def test_from_settings_reads_the_environment(server: SmtpServer, env: pytest.MonkeyPatch) -> None:
    env.setenv("SMTP_URL", server.url())
    env.setenv("SMTP_FROM", SENDER)
    env.setenv("TEND_PUBLIC_URL", PUBLIC_URL)
    env.setenv("TEND_SECRET_KEY", SECRET)
    notifier = EmailNotifier.from_settings(Settings())
    try:
        notifier.send(MESSAGE)
    finally:
        notifier.close()

    mail = only(server).message
    assert mail["From"] == SENDER
    [confirm] = CONFIRM.findall(plain(mail))
    assert LINKS.read_confirm(confirm).occurrence == 42  # signed with TEND_SECRET_KEY
    assert mail["List-Unsubscribe"].startswith(f"<{PUBLIC_URL}/unsubscribe/")


def test_from_settings_without_a_secret_key_warns_and_sends_without_links(
    server: SmtpServer, env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    env.setenv("SMTP_URL", server.url())
    env.setenv("SMTP_FROM", SENDER)
    env.setenv("TEND_PUBLIC_URL", PUBLIC_URL)
    with caplog.at_level(logging.WARNING, logger="notifiers.email"):
        notifier = EmailNotifier.from_settings(Settings())
    try:
        notifier.send(MESSAGE)
    finally:
        notifier.close()

    [warning] = [r for r in caplog.records if r.name == "notifiers.email"]
    assert warning.levelno == logging.WARNING
    assert "TEND_SECRET_KEY" in warning.getMessage()
    mail = only(server).message
    assert mail["List-Unsubscribe"] is None
    assert "https://" not in plain(mail) and "https://" not in html(mail)


def test_from_settings_needs_url_and_sender(env: pytest.MonkeyPatch) -> None:
    env.setenv("SMTP_URL", "smtp://mail.example.com")
    with pytest.raises(ValueError, match="set SMTP_URL and SMTP_FROM"):
        EmailNotifier.from_settings(Settings())
    env.setenv("SMTP_FROM", "not an address")
    with pytest.raises(ValueError, match="SMTP_FROM"):
        EmailNotifier.from_settings(Settings())


# -- the clock ------------------------------------------------------------------------------


def test_the_date_header_is_the_time_of_sending(
    server: SmtpServer, make_notifier: MakeNotifier
) -> None:
    notifier = make_notifier(server.url())
    instant = datetime(2026, 12, 5, 18, tzinfo=UTC)
    with time_machine.travel(instant, tick=False):
        notifier.send(MESSAGE)

    date = only(server).message["Date"]
    assert date.datetime == instant
    assert str(date) == "Sat, 05 Dec 2026 18:00:00 +0000"


def test_a_confirm_link_expires_after_seven_days(
    server: SmtpServer, make_notifier: MakeNotifier
) -> None:
    notifier = make_notifier(server.url())
    now = datetime(2026, 12, 5, 18, tzinfo=UTC)
    with time_machine.travel(now - timedelta(days=8), tick=False):
        notifier.send(replace(MESSAGE, occurrence=8))
    with time_machine.travel(now - timedelta(days=6), tick=False):
        notifier.send(replace(MESSAGE, occurrence=6))

    old, recent = (CONFIRM.findall(plain(m.message))[0] for m in server.messages)
    with time_machine.travel(now, tick=False):
        with pytest.raises(BadLink) as caught:
            LINKS.read_confirm(old)
        assert caught.value.expired
        assert LINKS.read_confirm(recent).occurrence == 6
        assert LINKS.read_unsubscribe(UNSUBSCRIBE.findall(plain(server.messages[0].message))[0])


# -- transports -----------------------------------------------------------------------------


def test_plain_smtp(server: SmtpServer, make_notifier: MakeNotifier) -> None:
    make_notifier(server.url()).send(MESSAGE)
    received = only(server)
    assert received.tls is False
    assert received.username is None
    assert server.auth_logins == []


def test_starttls_verified_through_ssl_cert_file(
    trusted: Certificate, make_notifier: MakeNotifier
) -> None:
    with SmtpServer(
        tls="starttls", certificate=trusted, username=USER, password=PASSWORD
    ) as server:
        notifier = make_notifier(server.url(starttls=True))
        assert notifier.target.security == "starttls"
        notifier.send(MESSAGE)
        notifier.close()
        received = only(server)
    assert received.tls is True
    assert received.username == USER
    assert server.auth_logins == [USER]


def test_starttls_with_an_untrusted_certificate_is_transient(
    monkeypatch: pytest.MonkeyPatch, make_notifier: MakeNotifier
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with SmtpServer(tls="starttls", certificate=default_certificate()) as server:
        notifier = make_notifier(server.url(starttls=True))
        with pytest.raises(NotifierError) as caught:
            notifier.send(MESSAGE)
        assert server.messages == []
        assert server.sessions == 0
    error = caught.value
    assert not error.permanent and not error.opt_out
    assert error.config  # our settings: logged as an error
    assert "certificate is not trusted" in str(error)
    assert "SSL_CERT_FILE" in str(error)
    assert notifier.connections_opened == 0


def test_without_a_password_starttls_is_used_even_with_a_self_signed_certificate(
    monkeypatch: pytest.MonkeyPatch, make_notifier: MakeNotifier
) -> None:
    # smtp://relay:25: a relay on one's own network, often with Postfix's self-signed
    # certificate. Encrypted without checking is better than plain, and far better than
    # nothing sent.
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with SmtpServer(tls="starttls", certificate=default_certificate()) as server:
        notifier = make_notifier(server.url())
        assert notifier.target.security == "auto"
        notifier.send(MESSAGE)
        notifier.close()
        assert only(server).tls


def test_implicit_tls(trusted: Certificate, make_notifier: MakeNotifier) -> None:
    with SmtpServer(
        tls="implicit", certificate=trusted, username=USER, password=PASSWORD
    ) as server:
        notifier = make_notifier(server.url("smtps"))
        assert notifier.target.security == "tls"
        notifier.send(MESSAGE)
        notifier.close()
        received = only(server)
    assert received.tls is True
    assert received.username == USER


def test_auth_with_the_credentials_of_the_url(make_notifier: MakeNotifier) -> None:
    with SmtpServer(username=USER, password=PASSWORD) as server:
        notifier = make_notifier(server.url())
        assert notifier.target.password == PASSWORD  # percent-decoded from the URL
        notifier.send(MESSAGE)
        notifier.send(NEXT)  # the pooled connection is still logged in
        notifier.close()
        assert server.auth_logins == [USER]
        assert [m.username for m in server.messages] == [USER, USER]


def test_a_wrong_password_is_transient_and_points_at_the_settings(
    make_notifier: MakeNotifier,
) -> None:
    with SmtpServer(username=USER, password=PASSWORD) as server:
        notifier = make_notifier(f"smtp://{USER}:wrong-password@{server.host}:{server.port}")
        with pytest.raises(NotifierError) as caught:
            notifier.send(MESSAGE)
        assert server.messages == [] and server.auth_logins == []
    error = caught.value
    assert not error.permanent
    assert error.code == "535"
    assert "check SMTP_URL" in str(error)
    assert "wrong-password" not in str(error)


def test_without_credentials_a_server_that_wants_them_is_a_settings_problem(
    make_notifier: MakeNotifier,
) -> None:
    with SmtpServer(username=USER, password=PASSWORD) as server:
        notifier = make_notifier(server.url(with_auth=False))
        with pytest.raises(NotifierError) as caught:
            notifier.send(MESSAGE)
    assert not caught.value.permanent
    assert caught.value.code == "530"
    assert "check SMTP_URL" in str(caught.value)


def test_plain_smtp_to_a_server_that_requires_starttls_is_a_settings_problem(
    trusted: Certificate, make_notifier: MakeNotifier
) -> None:
    with SmtpServer(
        tls="starttls", certificate=trusted, username=USER, password=PASSWORD
    ) as server:
        # starttls=false: plain on purpose, and AUTH is not offered before TLS
        notifier = make_notifier(server.url() + "?starttls=false")
        with pytest.raises(NotifierError) as caught:
            notifier.send(MESSAGE)
        assert server.messages == []
    assert not caught.value.permanent
    assert "check SMTP_URL" in str(caught.value)
    assert PASSWORD not in str(caught.value)


# -- classification -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "permanent", "code"),
    [
        ("refuse", True, "550"),
        ("defer", False, "450"),
        ("data554", True, "554"),
        ("data451", False, "451"),
    ],
)
def test_refusals_are_classified_and_the_connection_recovers(
    server: SmtpServer, make_notifier: MakeNotifier, fault: str, permanent: bool, code: str
) -> None:
    notifier = make_notifier(server.url())
    notifier.send(replace(MESSAGE, subject="Before"))
    if fault == "refuse":
        server.refuse_recipients.add("SAM@example.com")  # matched without regard to case
    elif fault == "defer":
        server.defer_recipients.add("sam@example.com")
    elif fault == "data554":
        server.fail_data_next(554, "5.7.1 Message rejected by policy")
    else:
        server.fail_data_next(451, "4.3.0 Temporary failure, try again")

    with pytest.raises(NotifierError) as caught:
        notifier.send(MESSAGE)
    assert caught.value.permanent is permanent
    assert not caught.value.opt_out
    assert caught.value.code == code
    assert str(caught.value).startswith(f"SMTP {code} ")

    notifier.send(replace(NEXT, subject="After"))  # the same notifier, another recipient
    assert subjects(server) == ["Before", "After"]
    assert server.sessions == 1  # smtplib's RSET left the pooled connection usable
    assert notifier.connections_opened == 1


def test_a_connection_dropped_after_the_greeting_is_transient(
    server: SmtpServer, make_notifier: MakeNotifier
) -> None:
    notifier = make_notifier(server.url())
    server.drop_next_connection()
    with pytest.raises(NotifierError) as caught:
        notifier.send(MESSAGE)
    assert not caught.value.permanent
    notifier.send(NEXT)
    assert [m.rcpt_tos for m in server.messages] == [["alex@example.com"]]


def test_a_server_that_is_down_is_transient(
    server: SmtpServer, make_notifier: MakeNotifier
) -> None:
    notifier = make_notifier(server.url())
    server.stop()
    with pytest.raises(NotifierError) as caught:
        notifier.send(MESSAGE)
    assert not caught.value.permanent
    assert "could not connect" in str(caught.value)
    assert "ConnectionRefusedError" in str(caught.value)

    server.start()
    notifier.send(NEXT)
    assert [m.rcpt_tos for m in server.messages] == [["alex@example.com"]]


def test_a_message_over_the_size_limit_is_permanent_before_connecting(
    server: SmtpServer, make_notifier: MakeNotifier
) -> None:
    notifier = make_notifier(server.url())
    with pytest.raises(NotifierError) as caught:
        notifier.send(replace(MESSAGE, body="x" * (email_module.MAX_BODY + 1)))
    assert caught.value.permanent
    with pytest.raises(NotifierError, match="no email"):
        notifier.send(replace(MESSAGE, recipient=replace(SAM, email=None)))
    assert notifier.connections_opened == 0


# -- the connection pool --------------------------------------------------------------------


def test_messages_in_a_row_share_one_connection(
    server: SmtpServer, make_notifier: MakeNotifier
) -> None:
    notifier = make_notifier(server.url())
    for n in range(5):
        notifier.send(replace(MESSAGE, key=f"k{n}", subject=f"#{n}"))
    assert subjects(server) == [f"#{n}" for n in range(5)]
    assert server.sessions == 1
    assert notifier.connections_opened == 1


def test_threads_share_a_few_connections(server: SmtpServer, make_notifier: MakeNotifier) -> None:
    notifier = make_notifier(server.url())
    messages = [replace(MESSAGE, key=f"k{n}", subject=f"#{n}") for n in range(20)]
    start = threading.Barrier(4)

    def send(chunk: list[Message]) -> list[SendResult]:
        start.wait(timeout=5)
        return [notifier.send(m) for m in chunk]

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = [r for rs in pool.map(send, [messages[i::4] for i in range(4)]) for r in rs]

    received = server.wait_for_messages(20)
    assert sorted(subjects(server)) == sorted(f"#{n}" for n in range(20))  # each once
    ids = {str(m.message["Message-ID"]).strip("<>") for m in received}
    assert ids == {r.provider_id for r in results} and len(ids) == 20
    assert 1 <= server.sessions <= 4
    assert 1 <= notifier.connections_opened <= 4


def test_a_stale_pooled_connection_is_replaced_after_a_server_restart(
    server: SmtpServer, make_notifier: MakeNotifier
) -> None:
    notifier = make_notifier(server.url())
    notifier.send(replace(MESSAGE, subject="Before"))
    server.stop()
    server.start()  # same port; the pooled connection is dead

    try:
        notifier.send(replace(MESSAGE, subject="Maybe"))
    except NotifierError as error:
        assert not error.permanent
    notifier.send(replace(MESSAGE, subject="After"))
    assert subjects(server)[0] == "Before" and subjects(server)[-1] == "After"
    assert server.sessions == 2
    assert notifier.connections_opened == 2


def test_a_connection_idle_for_a_while_is_checked_before_reuse(
    server: SmtpServer, make_notifier: MakeNotifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(email_module, "CHECK_AFTER", 0.0)  # "a while": any time at all
    notifier = make_notifier(server.url())
    notifier.send(replace(MESSAGE, subject="Before"))
    server.stop()
    server.start()
    notifier.send(replace(MESSAGE, subject="After"))  # NOOP failed: a new connection, no error
    assert subjects(server) == ["Before", "After"]
    assert notifier.connections_opened == 2


def test_a_connection_idle_too_long_is_replaced(
    server: SmtpServer, make_notifier: MakeNotifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(email_module, "MAX_IDLE", 0.0)
    notifier = make_notifier(server.url())
    notifier.send(MESSAGE)
    notifier.send(NEXT)
    assert server.sessions == 2
    assert notifier.connections_opened == 2
    assert wait_until(lambda: open_connections(server) == 1)  # the old one was closed


def test_close_ends_the_pooled_connections(server: SmtpServer, make_notifier: MakeNotifier) -> None:
    notifier = make_notifier(server.url())
    notifier.send(MESSAGE)
    assert open_connections(server) == 1
    notifier.close()
    assert wait_until(lambda: open_connections(server) == 0)

    notifier.send(NEXT)  # still usable; the connection is opened anew (and not kept)
    assert server.sessions == 2
    assert notifier.connections_opened == 2
    assert wait_until(lambda: open_connections(server) == 0)
    notifier.close()  # twice: harmless


# -- secrets --------------------------------------------------------------------------------


def test_no_password_or_address_in_logs_or_errors(
    trusted: Certificate, make_notifier: MakeNotifier, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[NotifierError] = []

    def attempt(notifier: EmailNotifier, message: Message = MESSAGE) -> None:
        try:
            notifier.send(message)
        except NotifierError as error:
            errors.append(error)

    with SmtpServer(
        tls="starttls", certificate=trusted, username=USER, password=PASSWORD
    ) as server:
        url = server.url(starttls=True)
        notifier = make_notifier(url)
        attempt(notifier)
        server.refuse_recipients.add("sam@example.com")
        attempt(notifier)
        server.refuse_recipients.clear()
        server.defer_recipients.add("sam@example.com")
        attempt(notifier)
        server.defer_recipients.clear()
        server.fail_data_next(554, "5.7.1 Rejected")
        attempt(notifier)
        wrong = make_notifier(url.replace(quote(PASSWORD, safe=""), quote(PASSWORD[::-1], safe="")))
        attempt(wrong)
        cleartext = make_notifier(server.url() + "?starttls=false")  # AUTH not offered
        attempt(cleartext)
        server.stop()
        attempt(notifier)
        attempt(make_notifier(url))
        notifier.close()
        assert len(server.messages) == 1

    assert len(errors) == 7
    # The capture works across threads: the test server's own logger (aiosmtpd's
    # "mail.log", which logs every command it receives) is there. Those records are the
    # stand-in provider's, not Tend's, so they are left out of the check.
    assert any(r.name == "mail.log" for r in caplog.records)
    ours = [r.getMessage() for r in caplog.records if r.name not in ("mail.log", "asyncio")]
    passwords = (PASSWORD, quote(PASSWORD, safe=""), PASSWORD[::-1])
    texts = [*ours, *(str(e) for e in errors), *(repr(e) for e in errors)]
    texts += [repr(notifier), str(notifier), repr(notifier.target)]
    for text in texts:
        assert not any(password in text for password in passwords), text
    for text in ours:
        assert "sam@example.com" not in text, text


def test_the_repr_of_a_notifier_masks_the_sender_and_hides_the_password(
    make_notifier: MakeNotifier,
) -> None:
    notifier = make_notifier(f"smtp://{USER}:{quote(PASSWORD, safe='')}@mail.example.com:587")
    text = repr(notifier)
    target = "SmtpTarget(starttls tend:***@mail.example.com:587)"
    assert text == f"<EmailNotifier from=t***@example.com {target}>"
    assert "tend@example.com" not in text
    assert PASSWORD not in text and quote(PASSWORD, safe="") not in text


def test_a_421_closes_the_connection_and_the_next_send_opens_a_new_one(
    server: SmtpServer, make_notifier: MakeNotifier
) -> None:
    # smtplib closes the connection itself on a 421 ("service closing"); handing that closed
    # connection back to the pool made the next send fail once for nothing.
    notifier = make_notifier(server.url())
    notifier.send(replace(MESSAGE, subject="Before"))
    server.fail_data_next(421, "4.3.2 Service shutting down")
    with pytest.raises(NotifierError) as caught:
        notifier.send(MESSAGE)
    assert not caught.value.permanent
    notifier.send(replace(NEXT, subject="After"))  # no error: a fresh connection
    assert subjects(server) == ["Before", "After"]
    assert notifier.connections_opened == 2


def test_without_starttls_in_the_url_it_is_used_when_the_server_offers_it(
    trusted: Certificate, make_notifier: MakeNotifier
) -> None:
    # smtp://user:pass@host:2525 (SendGrid's, Mailgun's and Postmark's other port): the
    # password must not cross the network in clear text when the server can do better.
    with SmtpServer(
        tls="starttls", certificate=trusted, username=USER, password=PASSWORD
    ) as server:
        notifier = make_notifier(server.url())
        assert notifier.target.security == "auto"
        notifier.send(MESSAGE)
        [received] = server.messages
    assert received.tls
    assert received.username == USER


def test_a_password_is_not_sent_in_clear_text_to_another_host(
    make_notifier: MakeNotifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The test server (no STARTTLS) is on loopback, where clear text is allowed; pretend
    # it is across the network.
    monkeypatch.setattr(email_module, "_is_loopback", lambda host: False)
    with SmtpServer(username=USER, password=PASSWORD) as server:
        notifier = make_notifier(server.url())
        with pytest.raises(NotifierError) as caught:
            notifier.send(MESSAGE)
        assert not caught.value.permanent  # our settings: keep the work
        assert "offers no STARTTLS" in str(caught.value)
        assert "starttls=false" in str(caught.value)
        assert server.messages == []
        assert server.auth_logins == []
        # Allowed when asked for.
        make_notifier(server.url() + "?starttls=false").send(MESSAGE)
        assert len(server.messages) == 1
        assert server.auth_logins == [USER]


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("localhost", True), ("127.0.0.1", True), ("::1", True), ("10.0.0.2", False),
     ("smtp.example.com", False)],
)  # fmt: skip
def test_which_hosts_count_as_this_machine(host: str, loopback: bool) -> None:
    assert email_module._is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("domain", "ascii_form"),
    [
        ("exämple.de", "xn--exmple-cua.de"),
        ("faß.de", "xn--fa-hia.de"),  # IDNA 2008: not fass.de, someone else's domain
        ("Example.COM", "example.com"),
    ],
)
def test_domains_are_written_in_ascii_by_idna_2008(domain: str, ascii_form: str) -> None:
    assert email_module._address("Sam", f"sam@{domain}").domain == ascii_form


def test_an_internationalised_domain_is_sent_in_its_ascii_form(
    server: SmtpServer, make_notifier: MakeNotifier
) -> None:
    person = replace(SAM, name="José Ñandú", email="sam@exämple.de")
    make_notifier(server.url()).send(replace(MESSAGE, recipient=person))
    received = only(server)
    assert received.rcpt_tos == ["sam@xn--exmple-cua.de"]
    assert received.message["To"].addresses[0].display_name == "José Ñandú"


@pytest.mark.parametrize(
    ("person", "why"),
    [
        (replace(SAM, email="josé@example.com"), "non-ASCII"),  # would need SMTPUTF8
        (replace(SAM, name="Sam\nBcc: eve@example.com"), "cannot write this e-mail"),
    ],
)
def test_an_email_that_can_never_be_written_is_permanent_and_nothing_is_sent(
    server: SmtpServer, make_notifier: MakeNotifier, person: Recipient, why: str
) -> None:
    # Permanent, so the dispatcher moves on to the partner's next channel at once instead of
    # retrying what can never work.
    with pytest.raises(NotifierError) as caught:
        make_notifier(server.url()).send(replace(MESSAGE, recipient=person))
    assert caught.value.permanent
    assert why in str(caught.value)
    assert server.messages == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("subject", "Tend: =?utf-8?q?x=0D=0AReply-To:_eve@example.com?="),
        ("name", "Sam =?utf-8?q?=0D=0AX-Injected:_yes?="),
    ],
)
def test_an_encoded_word_cannot_smuggle_header_lines(
    server: SmtpServer, make_notifier: MakeNotifier, field: str, value: str
) -> None:
    # Python before 3.11.10 decodes an RFC 2047 word into header lines (CVE-2024-6923). The
    # ritual file refuses '=?' in names and titles; the notifier holds the line as well.
    message = (
        replace(MESSAGE, subject=value)
        if field == "subject"
        else replace(MESSAGE, recipient=replace(SAM, name=value))
    )
    notifier = make_notifier(server.url())
    try:
        notifier.send(message)
    except NotifierError as error:
        assert error.permanent
    for received in server.messages:
        head = received.data.split(b"\r\n\r\n", 1)[0]
        assert b"X-Injected" not in head
        assert b"Reply-To" not in head
        assert received.message["X-Injected"] is None


def test_closing_a_connection_to_a_silent_server_does_not_wait_for_the_timeout() -> None:
    # A pooled connection whose path went silent (NAT state dropped): QUIT would wait for the
    # whole SMTP timeout, once per pooled connection, holding up a send or a stop.
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def serve() -> None:
        peer, _ = listener.accept()
        accepted.append(peer)
        peer.sendall(b"220 silent.example ESMTP\r\n")
        peer.recv(1024)  # EHLO
        peer.sendall(b"250 silent.example\r\n")
        # ... and never another word

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        connection = smtplib.SMTP("127.0.0.1", listener.getsockname()[1], timeout=30)
        connection.ehlo()
        started = time.monotonic()
        email_module._quietly_close(connection)
        took = time.monotonic() - started
    finally:
        thread.join(5)
        for peer in accepted:
            peer.close()
        listener.close()
    assert took < email_module.BRIEF + 1, took
    assert connection.sock is None


@pytest.mark.parametrize(
    "sender", ["@example.com", "tend@example.com.", "Tend <tend@example.com", "not an address"]
)
def test_a_bad_smtp_from_is_one_clear_error(sender: str) -> None:
    with pytest.raises(ValueError, match=r"^SMTP_FROM .* is not an e-mail address"):
        EmailNotifier(SmtpTarget.parse("smtp://relay.example.com"), sender)


def test_an_internationalised_sender_domain_goes_out_in_ascii(
    server: SmtpServer, make_notifier: MakeNotifier
) -> None:
    notifier = EmailNotifier(SmtpTarget.parse(server.url()), "Tënd <tend@exämple.com>")
    try:
        notifier.send(MESSAGE)
    finally:
        notifier.close()
    received = only(server)
    assert received.mail_from == "tend@xn--exmple-cua.com"
    assert received.message["From"].addresses[0].display_name == "Tënd"
