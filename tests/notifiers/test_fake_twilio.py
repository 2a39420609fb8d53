"""The fake Twilio server, driven through the real twilio library (and raw HTTP where the
library hides what Twilio answers)."""

from __future__ import annotations

import base64
import http.client
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from fake_twilio import FailureSpec, FakeTwilio, num_segments
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

SENDER = "+15550000001"
ALICE = "+15551230001"
BOB = "+15551230002"
T0 = datetime(2025, 3, 1, 9, 30, 15, tzinfo=UTC)

ClientFactory = Callable[..., Client]


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def fake(clock: Clock) -> Iterator[FakeTwilio]:
    with FakeTwilio(clock=clock) as server:
        yield server
    assert server.server_errors == []


@pytest.fixture
def make_client(fake: FakeTwilio) -> Iterator[ClientFactory]:
    """Real twilio Clients pointed at the fake; their pooled sessions closed afterwards."""
    clients: list[Client] = []

    def make(
        account_sid: str | None = None,
        auth_token: str | None = None,
        *,
        username: str | None = None,
        timeout: float | None = None,
    ) -> Client:
        http_client = TwilioHttpClient(timeout=timeout)
        assert http_client.session is not None
        http_client.session.trust_env = False  # no HTTP(S)_PROXY from the environment
        client = Client(
            username or fake.account_sid,
            auth_token or fake.auth_token,
            account_sid=account_sid,
            http_client=http_client,
        )
        client.api.base_url = fake.base_url
        clients.append(client)
        return client

    yield make
    for client in clients:
        session = getattr(client.http_client, "session", None)
        if session is not None:
            session.close()


@pytest.fixture
def client(make_client: ClientFactory) -> Client:
    return make_client()


def raw(fake: FakeTwilio, method: str, path: str, *, token: str | None = None) -> Any:
    """One request over http.client: (status, headers, JSON body)."""
    credentials = f"{fake.account_sid}:{token or fake.auth_token}".encode()
    connection = http.client.HTTPConnection("127.0.0.1", fake.port, timeout=5)
    try:
        connection.request(
            method,
            path,
            headers={"Authorization": "Basic " + base64.b64encode(credentials).decode()},
        )
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), json.loads(response.read())
    finally:
        connection.close()


def send(client: Client, to: str = ALICE, body: str = "hello", **kwargs: Any) -> Any:
    kwargs.setdefault("from_", SENDER)
    return client.messages.create(to=to, body=body, **kwargs)


# --------------------------------------------------------------------------- create


def test_create_answers_a_queued_message_and_records_it(fake: FakeTwilio, client: Client) -> None:
    message = send(client, body="Date night?", status_callback="https://tend.example/cb")

    assert message.sid.startswith("SM") and len(message.sid) == 34
    assert message.status == "queued"
    assert (message.to, message.from_, message.body) == (ALICE, SENDER, "Date night?")
    assert message.date_created == T0
    assert message.date_sent is None
    assert message.num_segments == "1"
    assert message.direction == "outbound-api"

    [recorded] = fake.messages
    assert recorded["sid"] == message.sid
    assert (recorded["to"], recorded["from"], recorded["body"]) == (ALICE, SENDER, "Date night?")
    assert recorded["status_callback"] == "https://tend.example/cb"
    assert recorded["date_created"] == "Sat, 01 Mar 2025 09:30:15 +0000"
    assert fake.sent_to(ALICE) == [recorded]
    assert fake.sent_to(BOB) == []
    [request] = fake.requests
    assert request.method == "POST"
    assert request.path == f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json"
    assert request.params["StatusCallback"] == "https://tend.example/cb"
    assert request.status == 201


def test_the_resource_has_twilios_keys_and_the_callback_stays_private(
    fake: FakeTwilio, client: Client
) -> None:
    sid = send(client, status_callback="https://tend.example/cb").sid
    status, _, body = raw(
        fake, "GET", f"/2010-04-01/Accounts/{fake.account_sid}/Messages/{sid}.json"
    )

    assert status == 200
    assert set(body) == {
        "account_sid", "api_version", "body", "date_created", "date_sent", "date_updated",
        "direction", "error_code", "error_message", "from", "messaging_service_sid",
        "num_media", "num_segments", "price", "price_unit", "sid", "status",
        "subresource_uris", "to", "uri",
    }  # fmt: skip
    assert body["api_version"] == "2010-04-01"
    assert body["uri"] == f"/2010-04-01/Accounts/{fake.account_sid}/Messages/{sid}.json"
    assert (body["num_media"], body["price"], body["price_unit"]) == ("0", None, "USD")


def test_a_messaging_service_can_stand_in_for_from(fake: FakeTwilio, client: Client) -> None:
    service = "MG" + "0" * 32
    message = client.messages.create(to=ALICE, messaging_service_sid=service, body="hi")

    assert message.messaging_service_sid == service
    assert message.from_ is None
    assert len(fake.messages) == 1


# ----------------------------------------------------------------------------- auth


def test_a_wrong_token_is_401_authenticate(fake: FakeTwilio, make_client: ClientFactory) -> None:
    client = make_client(auth_token="0" * 32)
    with pytest.raises(TwilioRestException) as raised:
        send(client)

    assert (raised.value.status, raised.value.code) == (401, 20003)
    assert "Authenticate" in raised.value.msg
    assert fake.messages == []
    assert [r.status for r in fake.requests] == [401]


def test_another_accounts_path_is_401(fake: FakeTwilio, make_client: ClientFactory) -> None:
    client = make_client(account_sid="AC" + "1" * 32)  # right credentials, wrong account path
    with pytest.raises(TwilioRestException) as raised:
        send(client)
    assert (raised.value.status, raised.value.code) == (401, 20003)


def test_errors_have_twilios_shape(fake: FakeTwilio) -> None:
    status, headers, body = raw(fake, "GET", "/2010-04-01/Accounts/x/Calls.json", token="bad")
    assert status == 401
    assert body == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }
    assert headers["WWW-Authenticate"] == 'Basic realm="Twilio API"'

    status, _, body = raw(fake, "GET", f"/2010-04-01/Accounts/{fake.account_sid}/Calls.json")
    assert (status, body["code"], body["status"]) == (404, 20404, 404)


def test_a_list_error_is_a_plain_twilio_exception(make_client: ClientFactory) -> None:
    """twilio 9.13 raises TwilioException (no status, no code) for a failed list page."""
    client = make_client(auth_token="0" * 32)
    with pytest.raises(TwilioException) as raised:
        client.messages.list(to=ALICE)

    assert not isinstance(raised.value, TwilioRestException)
    message, response = raised.value.args
    assert message == "Unable to fetch page"
    assert response.status_code == 401
    assert json.loads(response.text)["code"] == 20003


# ----------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("to", "kwargs", "code"),
    [
        ("555-1234", {}, 21211),
        ("", {}, 21211),
        ("+0123456789", {}, 21211),
        (ALICE, {"from_": None}, 21603),
        (ALICE, {"body": ""}, 21602),
        (ALICE, {"body": "x" * 1601}, 21617),
    ],
)
def test_invalid_requests_are_refused_with_twilios_code(
    fake: FakeTwilio, client: Client, to: str, kwargs: dict[str, Any], code: int
) -> None:
    kwargs = {"from_": SENDER, "body": "hi", **kwargs}
    with pytest.raises(TwilioRestException) as raised:
        client.messages.create(to=to, **kwargs)

    assert (raised.value.status, raised.value.code) == (400, code)
    assert fake.messages == []


def test_the_to_error_names_the_number(client: Client) -> None:
    with pytest.raises(TwilioRestException) as raised:
        send(client, to="555")
    assert raised.value.msg.endswith("The 'To' number 555 is not a valid phone number.")


def test_1600_characters_is_still_one_message(fake: FakeTwilio, client: Client) -> None:
    message = send(client, body="x" * 1600)
    assert message.num_segments == "11"
    assert len(fake.messages) == 1


def test_opted_out_and_landline_numbers_are_refused(fake: FakeTwilio, client: Client) -> None:
    fake.opted_out.add(ALICE)
    fake.landlines.add(BOB)

    with pytest.raises(TwilioRestException) as opted_out:
        send(client, to=ALICE)
    with pytest.raises(TwilioRestException) as landline:
        send(client, to=BOB)

    assert (opted_out.value.status, opted_out.value.code) == (400, 21610)
    assert "Attempt to send to unsubscribed recipient" in opted_out.value.msg
    assert (landline.value.status, landline.value.code) == (400, 21614)
    assert "'To' number is not a valid mobile number" in landline.value.msg
    assert fake.messages == []


# ------------------------------------------------------------------------- failures


def test_a_429_carries_retry_after(fake: FakeTwilio, client: Client) -> None:
    fake.fail_next(429, code=20429, retry_after=7)

    with pytest.raises(TwilioRestException) as raised:
        send(client)

    assert (raised.value.status, raised.value.code) == (429, 20429)
    # The exception has no headers; the client's last response does.
    last = client.http_client._test_only_last_response
    assert last is not None
    assert last.headers["Retry-After"] == "7"
    assert fake.messages == []
    assert send(client).status == "queued"  # only the next one failed
    assert [r.status for r in fake.requests] == [429, 201]


def test_a_503_and_several_in_a_row(fake: FakeTwilio, client: Client) -> None:
    fake.fail_next(503, times=2)

    for _ in range(2):
        with pytest.raises(TwilioRestException) as raised:
            send(client)
        assert (raised.value.status, raised.value.code) == (503, 20503)
    send(client)

    assert len(fake.messages) == 1


def test_fail_next_takes_any_code_and_message(fake: FakeTwilio, client: Client) -> None:
    fake.fail_next(400, code=30007, message="Message filtered")
    with pytest.raises(TwilioRestException) as raised:
        send(client)
    assert (raised.value.status, raised.value.code) == (400, 30007)
    assert raised.value.msg.endswith("Message filtered")


def test_a_stalled_create_times_out_but_the_message_was_accepted(
    fake: FakeTwilio, make_client: ClientFactory
) -> None:
    client = make_client(timeout=0.2)
    fake.stall_next(2.0)  # stop() cuts the stall short at teardown

    started = time.monotonic()
    with pytest.raises(requests.exceptions.ReadTimeout):
        send(client, body="ambiguous")
    assert time.monotonic() - started < 1.0

    [recorded] = fake.messages  # the provider has it although the client gave up
    assert recorded["body"] == "ambiguous"
    assert send(client, body="next").status == "queued"  # the pool recovers


def test_a_stall_without_create_records_nothing(
    fake: FakeTwilio, make_client: ClientFactory
) -> None:
    client = make_client(timeout=0.2)
    fake.stall_next(2.0, then_create=False)

    with pytest.raises(requests.exceptions.ReadTimeout):
        send(client)
    assert fake.messages == []


def test_on_create_hook_decides_per_request(fake: FakeTwilio, client: Client) -> None:
    seen: list[dict[str, str]] = []

    def chaos(form: dict[str, str]) -> FailureSpec | None:
        seen.append(form)
        return FailureSpec(500) if form["To"] == BOB else None

    fake.on_create = chaos
    send(client, to=ALICE)
    with pytest.raises(TwilioRestException) as raised:
        send(client, to=BOB)

    assert (raised.value.status, raised.value.code) == (500, 20500)
    assert [form["To"] for form in seen] == [ALICE, BOB]
    assert [m["to"] for m in fake.messages] == [ALICE]


# ------------------------------------------------------------------------ list/fetch


def test_list_is_newest_first_and_filters_by_to(
    fake: FakeTwilio, client: Client, clock: Clock
) -> None:
    for i, to in enumerate([ALICE, BOB, ALICE, BOB, ALICE]):
        clock.now = T0 + timedelta(minutes=i)
        send(client, to=to, body=f"m{i}")

    listed = client.messages.list(to=ALICE, limit=20)

    assert [m.body for m in listed] == ["m4", "m2", "m0"]
    assert {m.to for m in listed} == {ALICE}
    assert fake.requests[-1].params == {"To": ALICE, "PageSize": "20"}


def test_list_pages_across_next_page_uri(fake: FakeTwilio, client: Client) -> None:
    for i in range(5):
        send(client, body=f"m{i}")

    listed = client.messages.list(to=ALICE, page_size=2)

    assert [m.body for m in listed] == ["m4", "m3", "m2", "m1", "m0"]
    pages = [r for r in fake.requests if r.method == "GET"]
    assert [r.params.get("Page") for r in pages] == [None, "1", "2"]
    assert all(r.params["To"] == ALICE and r.params["PageSize"] == "2" for r in pages)


def test_a_list_page_has_twilios_keys(fake: FakeTwilio, client: Client) -> None:
    for i in range(3):
        send(client, body=f"m{i}")
    status, _, page = raw(
        fake, "GET", f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json?PageSize=2"
    )

    assert status == 200
    assert set(page) == {
        "messages", "end", "first_page_uri", "next_page_uri", "page", "page_size",
        "previous_page_uri", "start", "uri",
    }  # fmt: skip
    assert (page["start"], page["end"], page["page"], page["page_size"]) == (0, 1, 0, 2)
    assert page["previous_page_uri"] is None
    second = raw(fake, "GET", page["next_page_uri"])[2]
    assert [m["body"] for m in second["messages"]] == ["m0"]
    assert (second["start"], second["end"], second["next_page_uri"]) == (2, 2, None)
    assert raw(fake, "GET", second["previous_page_uri"])[2]["messages"] == page["messages"]


def test_date_sent_filters_as_the_library_sends_them(
    fake: FakeTwilio, client: Client, clock: Clock
) -> None:
    early, late, queued = (send(client, body=b) for b in ("early", "late", "queued"))
    fake.set_status(early.sid, "delivered")  # date_sent: T0
    clock.now = T0 + timedelta(hours=2)
    fake.set_status(late.sid, "sent")  # date_sent: T0 + 2 h; "queued" stays unsent

    after = client.messages.list(date_sent_after=T0 + timedelta(hours=1))
    before = client.messages.list(date_sent_before=T0 + timedelta(hours=1))
    on_day = client.messages.list(date_sent=T0.date())

    assert [m.body for m in after] == ["late"]
    assert [m.body for m in before] == ["early"]
    assert [m.body for m in on_day] == ["late", "early"]  # a queued message has no date_sent
    assert after[0].date_sent == T0 + timedelta(hours=2)
    gets = [r.params for r in fake.requests if r.method == "GET"]
    assert gets[0] == {"DateSent>": "2025-03-01T10:30:15Z"}
    assert gets[1] == {"DateSent<": "2025-03-01T10:30:15Z"}
    assert gets[2] == {"DateSent": "2025-03-01T00:00:00Z"}  # a date goes out as a date-time
    assert queued.status == "queued"


def test_fetch_by_sid(fake: FakeTwilio, client: Client) -> None:
    sid = send(client, body="fetch me").sid

    fetched = client.messages(sid).fetch()

    assert (fetched.sid, fetched.body, fetched.status) == (sid, "fetch me", "queued")
    with pytest.raises(TwilioRestException) as raised:
        client.messages("SM" + "0" * 32).fetch()
    assert (raised.value.status, raised.value.code) == (404, 20404)


# ---------------------------------------------------------------------- concurrency


def test_concurrent_creates_share_pooled_keep_alive_connections(
    fake: FakeTwilio, client: Client
) -> None:
    fake.latency = 0.05
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            for i in range(3):
                send(client, body=f"w{n}-{i}")
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sorted(m["body"] for m in fake.messages) == sorted(
        f"w{n}-{i}" for n in range(8) for i in range(3)
    )
    assert fake.max_in_flight > 1
    assert 1 <= fake.connections <= 8  # 24 requests over at most 8 connections


# -------------------------------------------------------------------------- helpers


def test_num_segments() -> None:
    assert num_segments("a" * 160) == 1
    assert num_segments("a" * 161) == 2
    assert num_segments("é" * 160) == 1  # é is in the GSM-7 basic set
    assert num_segments("€" * 80) == 1  # the extension table costs two septets
    assert num_segments("€" * 81) == 2
    assert num_segments("ł" * 70) == 1  # not GSM-7: UCS-2
    assert num_segments("ł" * 71) == 2
    assert num_segments("😀" * 35) == 1  # two UTF-16 units each
    assert num_segments("😀" * 36) == 2


def test_reset_forgets_everything(fake: FakeTwilio, client: Client) -> None:
    send(client)
    fake.fail_next(500)
    fake.opted_out.add(BOB)

    fake.reset()

    assert (fake.messages, fake.requests, fake.connections) == ([], [], 0)
    assert fake.opted_out == set()
    assert send(client, to=BOB).status == "queued"


def test_stop_closes_kept_alive_connections_promptly(clock: Clock) -> None:
    fake = FakeTwilio(clock=clock).start()
    http_client = TwilioHttpClient()
    client = Client(fake.account_sid, fake.auth_token, http_client=http_client)
    client.api.base_url = fake.base_url
    try:
        send(client)
        started = time.monotonic()
        fake.stop()  # the client still holds its connection open
        assert time.monotonic() - started < 1.0
        fake.stop()  # idempotent
        with pytest.raises(RuntimeError):
            _ = fake.base_url
    finally:
        assert http_client.session is not None
        http_client.session.close()
        fake.stop()
