"""The Twilio SMS notifier, driven through the real ``twilio`` library and ``requests`` against
the fake Twilio API on loopback: what reaches the provider, how its errors are classified,
`was_sent`, threads, and that no secret or phone number leaks into logs, reprs or errors.
"""

from __future__ import annotations

import base64
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fake_twilio import FailureSpec, FakeTwilio
from loopback import free_port

from config.settings import Settings
from notifiers.base import Message, NotifierError, Recipient, SendResult, mask_addresses
from notifiers.console import ConsoleNotifier
from notifiers.registry import NotifierSet
from notifiers.sms import SmsNotifier

SENDER = "+15550001111"
SAM = "+15551230002"
SAM_MASKED = "+1*******002"
SERVICE = "MG" + "5e" * 16
CALLBACK = "https://tend.example.com/twilio/status"
KEY = "h/r/2026-01-01T20:00/sam/day_of/sms"
TIMEOUT = 1.0  # the fake answers in ms; under a loaded CI machine 0.3 s was seen to run out
T0 = datetime(2026, 3, 1, 18, 0, 5, tzinfo=UTC)

MakeNotifier = Callable[..., SmsNotifier]


def message(body: str = "Date night tonight at 8", *, phone: str | None = SAM) -> Message:
    return Message(
        recipient=Recipient(household="h", partner="sam", name="Sam", phone=phone),
        channel="sms",
        body=body,
        key=KEY,
    )


def kind(error: NotifierError) -> str:
    return "opt_out" if error.opt_out else "permanent" if error.permanent else "transient"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No .env file, no Twilio/SMTP/Tend settings and no proxy from the machine."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        upper = name.upper()
        if upper.startswith(("TWILIO_", "SMTP_", "TEND_")) or upper.endswith("_PROXY"):
            monkeypatch.delenv(name)


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as server:
        yield server
    assert server.server_errors == []


@pytest.fixture
def make_notifier(fake: FakeTwilio) -> Iterator[MakeNotifier]:
    """SmsNotifiers pointed at the fake; every one closed after the test."""
    made: list[SmsNotifier] = []

    def make(**overrides: Any) -> SmsNotifier:
        options: dict[str, Any] = {
            "account_sid": fake.account_sid,
            "auth_token": fake.auth_token,
            "from_number": SENDER,
            "api_base_url": fake.base_url,
            "status_callback": CALLBACK,
            "timeout": TIMEOUT,
            **overrides,
        }
        notifier = SmsNotifier(options.pop("account_sid"), options.pop("auth_token"), **options)
        made.append(notifier)
        return notifier

    yield make
    for notifier in made:
        notifier.close()


@pytest.fixture
def notifier(make_notifier: MakeNotifier) -> SmsNotifier:
    return make_notifier()


@pytest.fixture
def twilio_env(fake: FakeTwilio, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The environment of a deployment on the fake; tests add or remove variables."""
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", fake.account_sid)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", fake.auth_token)
    monkeypatch.setenv("TWILIO_FROM", SENDER)
    monkeypatch.setenv("TWILIO_API_BASE_URL", fake.base_url)
    monkeypatch.setenv("TEND_PUBLIC_URL", "https://tend.example.com")
    return monkeypatch


@pytest.fixture
def from_settings() -> Iterator[Callable[[], SmsNotifier]]:
    made: list[SmsNotifier] = []

    def make() -> SmsNotifier:
        notifier = SmsNotifier.from_settings(Settings())
        made.append(notifier)
        return notifier

    yield make
    for notifier in made:
        notifier.close()


# ---------------------------------------------------------------------------- sending


def test_a_send_returns_the_providers_sid_status_and_segments(
    fake: FakeTwilio, notifier: SmsNotifier
) -> None:
    result = notifier.send(message("Date night tonight at 8"))

    [recorded] = fake.messages
    assert result == SendResult(provider_id=recorded["sid"], status="queued", segments=1)
    assert recorded["sid"].startswith("SM")
    assert (recorded["to"], recorded["from"], recorded["body"]) == (
        SAM,
        SENDER,
        "Date night tonight at 8",
    )
    assert recorded["messaging_service_sid"] is None
    assert recorded["status_callback"] == CALLBACK
    [request] = fake.requests
    assert (request.method, request.status) == ("POST", 201)
    assert request.params == {
        "To": SAM,
        "From": SENDER,
        "Body": "Date night tonight at 8",
        "StatusCallback": CALLBACK,
    }


def test_a_long_body_reports_the_providers_segment_count(
    fake: FakeTwilio, notifier: SmsNotifier
) -> None:
    assert notifier.send(message("x" * 161)).segments == 2
    assert notifier.send(message("ł" * 71)).segments == 2  # UCS-2: 70 a segment
    assert [m["num_segments"] for m in fake.messages] == ["2", "2"]


def test_from_settings_sends_with_the_status_callback_under_the_public_url(
    fake: FakeTwilio, twilio_env: pytest.MonkeyPatch, from_settings: Callable[[], SmsNotifier]
) -> None:
    result = from_settings().send(message())

    [recorded] = fake.messages
    assert result.provider_id == recorded["sid"]
    assert (recorded["to"], recorded["from"]) == (SAM, SENDER)
    assert recorded["status_callback"] == "https://tend.example.com/twilio/status"
    assert fake.requests[0].params["StatusCallback"] == "https://tend.example.com/twilio/status"


def test_from_settings_without_a_public_url_asks_for_no_status_callback(
    fake: FakeTwilio, twilio_env: pytest.MonkeyPatch, from_settings: Callable[[], SmsNotifier]
) -> None:
    twilio_env.delenv("TEND_PUBLIC_URL")

    from_settings().send(message())

    [request] = fake.requests
    assert "StatusCallback" not in request.params
    assert fake.messages[0]["status_callback"] is None


def test_from_settings_with_a_messaging_service_sends_no_from(
    fake: FakeTwilio, twilio_env: pytest.MonkeyPatch, from_settings: Callable[[], SmsNotifier]
) -> None:
    twilio_env.delenv("TWILIO_FROM")
    twilio_env.setenv("TWILIO_MESSAGING_SERVICE_SID", SERVICE)

    from_settings().send(message())

    [request] = fake.requests
    assert request.params["MessagingServiceSid"] == SERVICE
    assert "From" not in request.params
    assert fake.messages[0]["messaging_service_sid"] == SERVICE


def test_from_settings_accepts_a_base_url_with_a_trailing_slash(
    fake: FakeTwilio, twilio_env: pytest.MonkeyPatch, from_settings: Callable[[], SmsNotifier]
) -> None:
    twilio_env.setenv("TWILIO_API_BASE_URL", fake.base_url + "/")

    from_settings().send(message())

    assert len(fake.messages) == 1
    assert fake.requests[0].path == f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json"


def test_from_settings_and_the_constructor_need_credentials_and_a_sender(
    twilio_env: pytest.MonkeyPatch,
) -> None:
    twilio_env.delenv("TWILIO_FROM")
    with pytest.raises(ValueError, match="TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID"):
        SmsNotifier.from_settings(Settings())
    twilio_env.delenv("TWILIO_AUTH_TOKEN")
    with pytest.raises(ValueError, match="TWILIO_AUTH_TOKEN"):
        SmsNotifier.from_settings(Settings())


@pytest.mark.parametrize("how", ["constructor", "settings"])
def test_twilio_region_and_edge_in_the_environment_do_not_reroute_the_client(
    fake: FakeTwilio,
    twilio_env: pytest.MonkeyPatch,
    make_notifier: MakeNotifier,
    from_settings: Callable[[], SmsNotifier],
    how: str,
) -> None:
    twilio_env.setenv("TWILIO_REGION", "au1")
    twilio_env.setenv("TWILIO_EDGE", "sydney")
    notifier = make_notifier() if how == "constructor" else from_settings()

    result = notifier.send(message())

    assert [m["sid"] for m in fake.messages] == [result.provider_id]
    assert notifier.was_sent(message(), since=datetime.now(UTC)) is not None


# ---------------------------------------------------------------------------- body care


def test_typography_reaches_the_provider_as_gsm7(fake: FakeTwilio, notifier: SmsNotifier) -> None:
    body = "\u201cTonight\u201d\u00a0\u2014 Sam\u2019s pick\u2026 8\u2009pm"

    result = notifier.send(message(body))

    [recorded] = fake.messages
    assert recorded["body"] == '"Tonight" - Sam\'s pick... 8 pm'
    assert recorded["num_segments"] == "1"
    assert result.segments == 1


def test_an_emoji_body_reaches_the_provider_unchanged(
    fake: FakeTwilio, notifier: SmsNotifier
) -> None:
    body = "Date night \u2014 \u201cyour pick\u201d \U0001f497"

    notifier.send(message(body))

    assert fake.messages[0]["body"] == body  # UCS-2 anyway: the typography costs nothing


def test_a_body_over_1600_characters_is_refused_before_any_request(
    fake: FakeTwilio, notifier: SmsNotifier
) -> None:
    with pytest.raises(NotifierError) as raised:
        notifier.send(message("x" * 1601))

    assert kind(raised.value) == "permanent"
    assert "1601" in str(raised.value)
    assert fake.requests == []

    result = notifier.send(message("x" * 1600))
    assert result.segments == 11
    assert len(fake.messages[0]["body"]) == 1600


def test_the_gsm7_replacement_never_makes_a_sendable_body_unsendable(
    fake: FakeTwilio, notifier: SmsNotifier
) -> None:
    body = "x" * 1598 + "\u2026"  # 1599 characters; to_gsm7 makes it 1601

    notifier.send(message(body))

    [recorded] = fake.messages
    assert len(recorded["body"]) <= 1600


def test_a_recipient_without_a_phone_is_refused_before_any_request(
    fake: FakeTwilio, notifier: SmsNotifier
) -> None:
    with pytest.raises(NotifierError) as raised:
        notifier.send(message(phone=None))

    assert kind(raised.value) == "permanent"
    assert "h/sam has no phone" in str(raised.value)
    assert fake.requests == []
    assert notifier.was_sent(message(phone=None), since=datetime.now(UTC)) is None
    assert fake.requests == []


# ---------------------------------------------------------------------------- provider errors

Setup = Callable[[FakeTwilio], "dict[str, Any] | None"]

ERRORS: list[tuple[str, Setup, str, str | None, float | None, bool]] = [
    # (id, setup -> notifier options, classification, code, retry_after, unsure)
    ("21610 stop", lambda f: f.fail_next(400, 21610), "opt_out", "21610", None, False),
    ("opted out", lambda f: f.opted_out.add(SAM), "opt_out", "21610", None, False),
    (
        "21211 quoting the number",
        lambda f: f.fail_next(
            400, 21211, message=f"The 'To' number {SAM} is not a valid phone number."
        ),
        "permanent",
        "21211",
        None,
        False,
    ),
    ("21614", lambda f: f.fail_next(400, 21614), "permanent", "21614", None, False),
    ("landline", lambda f: f.landlines.add(SAM), "permanent", "21614", None, False),
    ("21408", lambda f: f.fail_next(400, 21408), "permanent", "21408", None, False),
    (
        "429 retry-after",
        lambda f: f.fail_next(429, 20429, retry_after=7),
        "transient",
        "20429",
        7.0,
        False,
    ),
    ("500", lambda f: f.fail_next(500), "transient", "20500", None, False),
    ("503", lambda f: f.fail_next(503), "transient", "20503", None, False),
    (
        "503 retry-after",
        lambda f: f.fail_next(503, retry_after=30),
        "transient",
        "20503",
        30.0,
        False,
    ),
    ("401 wrong token", lambda f: {"auth_token": "0" * 32}, "transient", "20003", None, False),
    # Our messaging service (mistyped, or without numbers): keep the work, fix the settings.
    ("21701 no service", lambda f: f.fail_next(400, 21701), "transient", "21701", None, False),
    ("21704 no numbers", lambda f: f.fail_next(400, 21704), "transient", "21704", None, False),
    ("21705 bad service", lambda f: f.fail_next(400, 21705), "transient", "21705", None, False),
    ("21611 queue full", lambda f: f.fail_next(400, 21611), "transient", "21611", None, False),
    # Errors as RFC 9457 problem details (twilio 9 raises TwilioServiceException for them).
    (
        "problem 21610",
        lambda f: (setattr(f, "problem_details", True), f.fail_next(400, 21610))[1],
        "opt_out",
        "21610",
        None,
        False,
    ),
    (
        "problem 21211",
        lambda f: (setattr(f, "problem_details", True), f.fail_next(400, 21211))[1],
        "permanent",
        "21211",
        None,
        False,
    ),
    (
        "problem 429",
        lambda f: (setattr(f, "problem_details", True), f.fail_next(429, 20429, retry_after=9))[1],
        "transient",
        "20429",
        9.0,
        False,
    ),
    ("read timeout", lambda f: f.stall_next(2.0), "transient", None, None, True),
    (
        "connection refused",
        lambda f: {"api_base_url": f"http://127.0.0.1:{free_port()}"},
        "transient",
        None,
        None,
        False,
    ),
]


@pytest.mark.parametrize(
    ("setup", "expected", "code", "retry_after", "unsure"),
    [case[1:] for case in ERRORS],
    ids=[case[0] for case in ERRORS],
)
def test_provider_errors_are_classified(
    fake: FakeTwilio,
    make_notifier: MakeNotifier,
    setup: Setup,
    expected: str,
    code: str | None,
    retry_after: float | None,
    unsure: bool,
) -> None:
    notifier = make_notifier(**(setup(fake) or {}))

    with pytest.raises(NotifierError) as raised:
        notifier.send(message())

    error = raised.value
    assert (kind(error), error.code, error.retry_after, error.unsure) == (
        expected,
        code,
        retry_after,
        unsure,
    )
    assert len(fake.messages) == (1 if unsure else 0)  # a stalled create is recorded
    text = str(error)
    assert fake.auth_token not in text
    assert SAM not in mask_addresses(text)
    if code != "21211":
        assert SAM not in text
    if code == "20003":
        assert "check the Twilio settings" in text


def test_the_21211_text_quotes_the_number_and_mask_addresses_hides_it(
    fake: FakeTwilio, notifier: SmsNotifier
) -> None:
    fake.fail_next(400, 21211, message=f"The 'To' number {SAM} is not a valid phone number.")

    with pytest.raises(NotifierError) as raised:
        notifier.send(message())

    assert SAM in str(raised.value)  # Twilio's own words: the dispatcher must mask them
    masked = mask_addresses(str(raised.value))
    assert SAM not in masked
    assert SAM_MASKED in masked


def test_a_read_timeout_is_unsure_because_the_provider_has_the_message(
    fake: FakeTwilio, notifier: SmsNotifier
) -> None:
    fake.stall_next(2.0)  # stop() cuts the stall short at teardown

    with pytest.raises(NotifierError) as raised:
        notifier.send(message("ambiguous"))

    assert raised.value.unsure
    assert "may have been sent" in str(raised.value)
    [recorded] = fake.messages  # accepted although the client gave up
    assert notifier.was_sent(message("ambiguous"), since=datetime.now(UTC)) == SendResult(
        provider_id=recorded["sid"], status="queued"
    )
    assert notifier.send(message("next")).status == "queued"  # the pool recovered


class HangUp:
    """A server that reads one whole HTTP request and closes the connection unanswered:
    what a load balancer dropping the connection after the request went out looks like."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.requests: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        connection, _ = self._listener.accept()
        with connection:
            data = b""
            while b"\r\n\r\n" not in data:
                data += connection.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            while len(body) < length:
                body += connection.recv(65536)
            self.requests.append(body)

    def close(self) -> None:
        self._thread.join(5)
        self._listener.close()


def test_a_connection_dropped_after_the_request_went_out_is_unsure(
    make_notifier: MakeNotifier,
) -> None:
    server = HangUp()
    try:
        notifier = make_notifier(api_base_url=f"http://127.0.0.1:{server.port}", timeout=2.0)
        with pytest.raises(NotifierError) as raised:
            notifier.send(message())
    finally:
        server.close()

    assert len(server.requests) == 1 and b"Body=" in server.requests[0]  # it went out
    assert kind(raised.value) == "transient"
    assert raised.value.unsure


# ---------------------------------------------------------------------------- threads


def phone(n: int) -> str:
    return f"+1555987{n:04d}"


def numbered(n: int) -> Message:
    return Message(
        recipient=Recipient(household="h", partner=f"p{n}", name=f"P{n}", phone=phone(n)),
        channel="sms",
        body=f"hello number {n}",
        key=f"h/r/2026-01-01T20:00/p{n}/day_of/sms",
    )


def test_one_notifier_sends_from_eight_threads_over_pooled_connections(
    fake: FakeTwilio, notifier: SmsNotifier
) -> None:
    fake.latency = 0.03

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(notifier.send, [numbered(n) for n in range(40)]))

    assert len(fake.messages) == 40
    for n, result in enumerate(results):
        [recorded] = fake.sent_to(phone(n))
        assert recorded["body"] == f"hello number {n}"
        assert result.provider_id == recorded["sid"]  # each thread got its own answer
    assert fake.max_in_flight > 1
    assert fake.connections <= 16, "a connection per send: the session does not pool"


def test_retry_after_belongs_to_the_thread_that_got_it(
    fake: FakeTwilio, notifier: SmsNotifier
) -> None:
    """One recipient gets 429 + Retry-After while others get a 503 without one, or succeed,
    at the same time: the header is remembered per thread, never lent to another error."""
    fake.latency = 0.02
    throttled, busy = phone(0), {phone(n) for n in range(1, 40, 3)}

    def decide(form: dict[str, str]) -> FailureSpec | None:
        if form["To"] == throttled:
            return FailureSpec(429, 20429, retry_after=7)
        if form["To"] in busy:
            return FailureSpec(503)
        return None

    fake.on_create = decide

    def attempt(n: int) -> SendResult | NotifierError:
        try:
            return notifier.send(numbered(n))
        except NotifierError as error:
            return error

    for _ in range(3):  # several rounds: the 429 overlaps other answers in flight
        with ThreadPoolExecutor(max_workers=8) as pool:
            outcomes = dict(zip(range(40), pool.map(attempt, range(40)), strict=True))

        first = outcomes.pop(0)
        assert isinstance(first, NotifierError)
        assert (first.code, first.retry_after) == ("20429", 7.0)
        for n, outcome in outcomes.items():
            if phone(n) in busy:
                assert isinstance(outcome, NotifierError)
                assert (outcome.code, outcome.retry_after) == ("20503", None)
            else:
                assert isinstance(outcome, SendResult)
    assert fake.max_in_flight > 1


# ---------------------------------------------------------------------------- was_sent


def test_was_sent_finds_the_message_just_sent(fake: FakeTwilio, notifier: SmsNotifier) -> None:
    before = datetime.now(UTC)
    result = notifier.send(message())

    found = notifier.was_sent(message(), since=before)

    assert found is not None
    assert found.provider_id == result.provider_id
    assert found.status == "queued"
    listed = [r for r in fake.requests if r.method == "GET"]
    assert [r.params["To"] for r in listed] == [SAM]


def test_was_sent_with_another_body_finds_nothing(notifier: SmsNotifier) -> None:
    before = datetime.now(UTC)
    notifier.send(message("Date night tonight at 8"))

    assert notifier.was_sent(message("Date night tomorrow at 8"), since=before) is None
    other_partner = message(phone="+15551230003")
    assert notifier.was_sent(other_partner, since=before) is None


def test_was_sent_ignores_messages_created_before_since_less_a_minute_of_skew(
    make_notifier: MakeNotifier,
) -> None:
    clock = Clock(T0)
    with FakeTwilio(clock=clock) as fake:
        notifier = make_notifier(
            account_sid=fake.account_sid, auth_token=fake.auth_token, api_base_url=fake.base_url
        )
        sid = notifier.send(message()).provider_id  # created at T0

        assert notifier.was_sent(message(), since=T0 + timedelta(seconds=50)) is not None
        assert notifier.was_sent(message(), since=T0 + timedelta(minutes=5)) is None
        assert notifier.was_sent(message(), since=T0 - timedelta(days=1)) == SendResult(
            provider_id=sid, status="queued"
        )
        notifier.close()  # before the fake stops: no half-closed pooled connection


def test_was_sent_applies_the_same_body_care(fake: FakeTwilio, notifier: SmsNotifier) -> None:
    before = datetime.now(UTC)
    curly = message("\u201cTonight\u201d \u2014 Sam\u2019s pick")
    result = notifier.send(curly)
    assert fake.messages[0]["body"] == '"Tonight" - Sam\'s pick'

    found = notifier.was_sent(curly, since=before)

    assert found is not None
    assert found.provider_id == result.provider_id


def test_was_sent_finds_a_trial_accounts_prefixed_body(
    fake: FakeTwilio, notifier: SmsNotifier
) -> None:
    before = datetime.now(UTC)
    notifier.send(message("Sent from your Twilio trial account - Date night"))

    assert notifier.was_sent(message("Date night"), since=before) is not None


def test_was_sent_ignores_a_canceled_message(fake: FakeTwilio, notifier: SmsNotifier) -> None:
    before = datetime.now(UTC)
    sid = notifier.send(message()).provider_id
    assert sid is not None
    fake.set_status(sid, "canceled")

    assert notifier.was_sent(message(), since=before) is None


def test_was_sent_reports_a_delivered_message_with_its_status(
    fake: FakeTwilio, notifier: SmsNotifier
) -> None:
    before = datetime.now(UTC)
    sid = notifier.send(message()).provider_id
    assert sid is not None
    fake.set_status(sid, "delivered")

    assert notifier.was_sent(message(), since=before) == SendResult(sid, status="delivered")


def test_was_sent_finds_a_message_sent_through_the_messaging_service_when_from_is_also_set(
    fake: FakeTwilio, twilio_env: pytest.MonkeyPatch, from_settings: Callable[[], SmsNotifier]
) -> None:
    twilio_env.setenv("TWILIO_MESSAGING_SERVICE_SID", SERVICE)
    notifier = from_settings()
    before = datetime.now(UTC)
    result = notifier.send(message())
    assert fake.requests[0].params["MessagingServiceSid"] == SERVICE

    found = notifier.was_sent(message(), since=before)

    assert found is not None
    assert found.provider_id == result.provider_id


def test_was_sent_with_a_messaging_service_lists_by_recipient_only(
    fake: FakeTwilio, twilio_env: pytest.MonkeyPatch, from_settings: Callable[[], SmsNotifier]
) -> None:
    twilio_env.delenv("TWILIO_FROM")
    twilio_env.setenv("TWILIO_MESSAGING_SERVICE_SID", SERVICE)
    notifier = from_settings()
    before = datetime.now(UTC)
    result = notifier.send(message())

    found = notifier.was_sent(message(), since=before)

    assert found is not None
    assert found.provider_id == result.provider_id
    listed = [r.params for r in fake.requests if r.method == "GET"]
    assert listed == [{"To": SAM, "PageSize": "50"}]


@pytest.mark.parametrize("how", ["refused credentials", "provider down"])
def test_was_sent_raises_when_the_provider_cannot_be_asked(
    fake: FakeTwilio, notifier: SmsNotifier, how: str
) -> None:
    before = datetime.now(UTC)
    notifier.send(message())
    if how == "provider down":
        fake.stop()
    else:
        fake.auth_token = "0" * 32

    with pytest.raises(NotifierError) as raised:
        notifier.was_sent(message(), since=before)

    assert kind(raised.value) == "transient"
    assert "listing messages failed" in str(raised.value)
    assert SAM not in str(raised.value)


# ---------------------------------------------------------------------------- secrets


def test_no_secret_or_phone_number_in_logs_reprs_or_errors(
    fake: FakeTwilio, make_notifier: MakeNotifier, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    basic = base64.b64encode(f"{fake.account_sid}:{fake.auth_token}".encode()).decode()
    notifier = make_notifier()
    wrong_token = make_notifier(auth_token="0" * 32)
    errors: list[NotifierError] = []
    before = datetime.now(UTC)

    notifier.send(message())
    assert notifier.was_sent(message(), since=before) is not None
    assert notifier.was_sent(message("other"), since=before) is None
    fake.fail_next(400, 21211, message=f"The 'To' number {SAM} is not a valid phone number.")
    fake.fail_next(400, 21610)
    fake.fail_next(429, 20429, retry_after=7)
    fake.stall_next(2.0)
    for sender in (notifier, notifier, notifier, notifier, wrong_token):
        with pytest.raises(NotifierError) as raised:
            sender.send(message())
        errors.append(raised.value)
    with pytest.raises(NotifierError) as raised:
        wrong_token.was_sent(message(), since=before)
    errors.append(raised.value)

    assert [e.code for e in errors] == ["21211", "21610", "20429", None, "20003", None]
    texts = [r.getMessage() for r in caplog.records] + [caplog.text]
    assert any("127.0.0.1" in text for text in texts)  # the DEBUG records were captured
    for text in texts:
        assert fake.auth_token not in text
        assert basic not in text
        assert SAM not in text
    for shown in (repr(notifier), repr(wrong_token), str(notifier)):
        assert fake.auth_token not in shown
        assert "0" * 32 not in shown
        assert SENDER not in shown
    assert repr(notifier) == f"<SmsNotifier from=+1*******111 api={fake.base_url}>"
    for error in errors:
        assert fake.auth_token not in str(error)
        assert fake.auth_token not in repr(error)
        assert SAM not in mask_addresses(str(error))


def test_no_url_encoded_phone_number_in_debug_logs(
    notifier: SmsNotifier, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    before = datetime.now(UTC)
    notifier.send(message())
    notifier.was_sent(message(), since=before)

    assert SAM.removeprefix("+") not in caplog.text


# ---------------------------------------------------------------------------- the registry


def test_the_registry_uses_twilio_when_configured(
    fake: FakeTwilio, twilio_env: pytest.MonkeyPatch
) -> None:
    notifiers = NotifierSet(Settings())
    try:
        sms = notifiers.get("sms")
        assert isinstance(sms, SmsNotifier)
        assert notifiers.get("sms") is sms
        assert sms.send(message()).provider_id == fake.messages[0]["sid"]
    finally:
        notifiers.close()


def test_the_registry_uses_the_console_without_twilio_settings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    notifiers = NotifierSet(Settings())
    try:
        sms = notifiers.get("sms")
        assert isinstance(sms, ConsoleNotifier)
        assert sms.send(message()).provider_id == "console-1"
    finally:
        notifiers.close()
    assert SAM_MASKED in capsys.readouterr().out
