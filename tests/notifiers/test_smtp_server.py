"""The test SMTP server (tests/support/smtp_server.py), exercised with plain smtplib."""

from __future__ import annotations

import smtplib
import socket
import ssl
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from smtp_server import Certificate, SmtpServer, make_certificate

FROM = "tend@example.com"
TO = "alex@example.com"
USER = "tend"
PASSWORD = "p@ss word/:%"  # smtplib encodes AUTH as ASCII


def email_message(subject: str = "Date night", body: str = "Friday, 19:30.\n") -> EmailMessage:
    message = EmailMessage()
    message["From"] = FROM
    message["To"] = TO
    message["Subject"] = subject
    message.set_content(body)
    return message


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    return make_certificate(tmp_path_factory.mktemp("smtp-cert"))


@pytest.fixture
def server() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
def trusted(monkeypatch: pytest.MonkeyPatch, certificate: Certificate) -> Certificate:
    """Clients trust ``certificate`` the way Tend would: through SSL_CERT_FILE."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate.cert_file))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    return certificate


def test_a_plain_send_is_recorded_and_parsed(server: SmtpServer) -> None:
    with smtplib.SMTP(server.host, server.port, timeout=5) as client:
        client.send_message(email_message())

    [received] = server.messages
    assert received.mail_from == FROM
    assert received.rcpt_tos == [TO]
    assert b"Subject: Date night\r\n" in received.data
    assert isinstance(received.message, EmailMessage)
    assert received.message["Subject"] == "Date night"
    assert received.message.get_content() == "Friday, 19:30.\n"
    assert received.tls is False
    assert received.username is None
    assert server.sessions == 1
    assert server.url() == f"smtp://127.0.0.1:{server.port}"


def test_starttls_is_verified_through_ssl_cert_file(trusted: Certificate) -> None:
    with SmtpServer(
        tls="starttls", certificate=trusted, username=USER, password=PASSWORD
    ) as server:
        with smtplib.SMTP(server.host, server.port, timeout=5) as client:
            client.ehlo()
            assert client.has_extn("starttls")
            assert not client.has_extn("auth")  # AUTH only once encrypted
            with pytest.raises(smtplib.SMTPSenderRefused) as refused:
                client.sendmail(FROM, [TO], b"Subject: in clear\r\n\r\nno\r\n")
            assert refused.value.smtp_code == 530  # "Must issue a STARTTLS command first"

            context = ssl.create_default_context()  # reads SSL_CERT_FILE now
            assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
            client.starttls(context=context)  # verifies the certificate against "127.0.0.1"
            client.login(USER, PASSWORD)
            client.send_message(email_message())

        [received] = server.messages
        assert received.tls is True
        assert received.username == USER
        url = f"smtp://tend:p%40ss%20word%2F%3A%25@127.0.0.1:{server.port}?starttls=true"
        assert server.url(starttls=True) == url


def test_without_ssl_cert_file_the_certificate_is_not_trusted(
    monkeypatch: pytest.MonkeyPatch, certificate: Certificate
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with (
        SmtpServer(tls="starttls", certificate=certificate) as server,
        smtplib.SMTP(server.host, server.port, timeout=5) as client,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        client.starttls(context=ssl.create_default_context())


def test_the_certificate_passes_strict_verification_for_both_names(trusted: Certificate) -> None:
    # Python 3.13 turns VERIFY_X509_STRICT on in create_default_context().
    context = ssl.create_default_context()
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    with SmtpServer(tls="implicit", certificate=trusted) as server:
        for name in ("localhost", "127.0.0.1"):
            with smtplib.SMTP_SSL(name, server.port, context=context, timeout=5) as client:
                assert client.noop()[0] == 250
                assert isinstance(client.sock, ssl.SSLSocket)
                peer = client.sock.getpeercert()
                assert peer is not None
                assert peer["subjectAltName"] == (("DNS", "localhost"), ("IP Address", "127.0.0.1"))


def test_implicit_tls_with_smtp_ssl(trusted: Certificate) -> None:
    with SmtpServer(
        tls="implicit", certificate=trusted, username=USER, password=PASSWORD
    ) as server:
        context = ssl.create_default_context()
        with smtplib.SMTP_SSL(server.host, server.port, context=context, timeout=5) as client:
            assert not client.has_extn("starttls")
            client.login(USER, PASSWORD)
            client.send_message(email_message())

        [received] = server.messages
        assert received.tls is True
        assert server.url("smtps").startswith("smtps://tend:")


def test_auth_is_required_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    with SmtpServer(username=USER, password=PASSWORD) as server:
        with smtplib.SMTP(server.host, server.port, timeout=5) as client:
            with pytest.raises(smtplib.SMTPSenderRefused) as refused:
                client.send_message(email_message())
            assert refused.value.smtp_code == 530

            with pytest.raises(smtplib.SMTPAuthenticationError) as wrong:
                client.login(USER, "wrong")
            assert wrong.value.smtp_code == 535

            client.login(USER, PASSWORD)  # AUTH PLAIN
            client.send_message(email_message())

        with smtplib.SMTP(server.host, server.port, timeout=5) as client:
            client.ehlo()
            client.user, client.password = USER, PASSWORD
            assert client.auth("LOGIN", client.auth_login)[0] == 235
            client.send_message(email_message("Second"))

        assert [m.message["Subject"] for m in server.messages] == ["Date night", "Second"]
        assert server.auth_logins == [USER, USER]
        assert server.url(with_auth=False) == f"smtp://127.0.0.1:{server.port}"


def test_refused_and_deferred_recipients(server: SmtpServer) -> None:
    server.refuse_recipients.add("gone@example.com")
    server.defer_recipients.add("busy@example.com")
    with smtplib.SMTP(server.host, server.port, timeout=5) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            client.sendmail(FROM, ["Gone@example.com"], b"Subject: x\r\n\r\nx\r\n")
        [(code, text)] = refused.value.recipients.values()
        assert (code, text) == (550, b"5.1.1 No such user")

        with pytest.raises(smtplib.SMTPRecipientsRefused) as deferred:
            client.sendmail(FROM, ["busy@example.com"], b"Subject: x\r\n\r\nx\r\n")
        assert deferred.value.recipients["busy@example.com"][0] == 450

        partly = client.sendmail(FROM, [TO, "gone@example.com"], b"Subject: y\r\n\r\ny\r\n")
        assert partly == {"gone@example.com": (550, b"5.1.1 No such user")}

    [received] = server.messages
    assert received.rcpt_tos == [TO]


def test_a_failed_data_is_not_recorded(server: SmtpServer) -> None:
    server.fail_data_next(451, "4.3.0 Try again later")
    server.fail_data_next(554, "5.6.0 Rejected")
    with smtplib.SMTP(server.host, server.port, timeout=5) as client:
        with pytest.raises(smtplib.SMTPDataError) as temporary:
            client.send_message(email_message())
        assert (temporary.value.smtp_code, temporary.value.smtp_error) == (
            451,
            b"4.3.0 Try again later",
        )
        assert server.messages == []

        with pytest.raises(smtplib.SMTPDataError) as permanent:
            client.send_message(email_message())
        assert permanent.value.smtp_code == 554

        client.send_message(email_message())  # the faults are used up
    assert len(server.messages) == 1


def test_one_connection_several_messages_is_one_session(server: SmtpServer) -> None:
    with smtplib.SMTP(server.host, server.port, timeout=5) as client:
        client.send_message(email_message("One"))
        client.send_message(email_message("Two"))
    assert server.sessions == 1

    with smtplib.SMTP(server.host, server.port, timeout=5) as client:
        client.send_message(email_message("Three"))
    assert server.sessions == 2
    assert [m.message["Subject"] for m in server.messages] == ["One", "Two", "Three"]


def test_a_dropped_connection_disconnects_the_client(server: SmtpServer) -> None:
    server.drop_next_connection()
    client = smtplib.SMTP(server.host, server.port, timeout=5)  # the greeting arrives
    try:
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.send_message(email_message())
    finally:
        client.close()

    with smtplib.SMTP(server.host, server.port, timeout=5) as client:  # only the next one
        client.send_message(email_message())
    assert len(server.messages) == 1


def test_the_server_goes_away_and_comes_back_on_the_same_port(server: SmtpServer) -> None:
    port = server.port
    client = smtplib.SMTP(server.host, port, timeout=5)
    try:
        client.ehlo()
        server.stop()
        with pytest.raises(smtplib.SMTPServerDisconnected):
            client.noop()
    finally:
        client.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((server.host, port), timeout=5).close()

    server.start()
    assert server.port == port
    with smtplib.SMTP(server.host, port, timeout=5) as client:
        client.send_message(email_message())
    assert len(server.messages) == 1


def test_make_certificate_writes_into_the_directory(tmp_path: Path) -> None:
    certificate = make_certificate(tmp_path / "certs")
    assert certificate.cert_file.parent == tmp_path / "certs"
    assert certificate.cert_file.read_text().startswith("-----BEGIN CERTIFICATE-----")
    ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(
        certificate.cert_file, certificate.key_file
    )
