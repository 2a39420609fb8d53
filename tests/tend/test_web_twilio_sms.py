"""Inbound SMS, ``POST /twilio/sms``: signed by Twilio over TEND_PUBLIC_URL + path, recorded
once by its MessageSid (and Twilio's idempotency token), applied to the ledger, answered with
TwiML; strangers learn nothing, a flood is answered once and then not at all, and no body,
however large or strange, records anything it should not.

The ledger is real: a small ritual file, synced and planned by the planner, with the
messages due before :data:`NOW` marked as sent. Runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import itertools
import string
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_setup import planned_file
from ritual_files import couple_file, household_table, partner_table, write_ritual_file
from sqlalchemy import Engine, func, select
from twilio.request_validator import RequestValidator

from config.model import RitualFile
from notifiers.twilio_webhooks import TwilioWebhooks
from scheduler.acts.replies import RATE_LIMIT, RATE_WINDOW
from scheduler.acts.wording import LIMITED, STRANGER
from scheduler.ledger import Ledger
from scheduler.ledger.rows import (
    CompletionRow,
    DeliveryRow,
    InboundMessageRow,
    OccurrenceRow,
    PartnerRow,
)
from scheduler.metrics import REGISTRY
from tend.web import MAX_BODY, create_app

TOKEN = "0123456789abcdef0123456789abcdef"
PUBLIC = "https://tend.example.com"
PATH = "/twilio/sms"
URL = f"{PUBLIC}{PATH}"
FORM = "application/x-www-form-urlencoded"

ALEX = "+15551230001"
SAM = "+15551230002"  # Sam is in two households, with one phone
KIM = "+15551230003"
STRANGER_NUMBER = "+15559990000"

# Planned from Monday 12 January 2026, midnight; replies arrive on Tuesday at 12:30, half an
# hour after Tuesday's check-in went out (Monday's went out too, and is still open).
PLANNED = datetime(2026, 1, 12, 0, 0, tzinfo=UTC)
NOW = datetime(2026, 1, 13, 12, 30, tzinfo=UTC)
TUESDAY = datetime(2026, 1, 13, 12, 0, tzinfo=UTC)

STREAKS = "No streaks yet: reply DONE after a ritual to start one."

RITUALS = couple_file(
    households=household_table(
        "sam-kim",
        partner_table("sam", phone=SAM, channels=["sms"]),
        partner_table("kim", phone=KIM, channels=["sms"]),
    ),
    rituals="""
[[rituals]]
id = "check-in"
kind = "check_in"
schedule = "daily at 12:00"
households = ["alex-sam"]
""",
)

# The test client's response (its httpx may not be the one this file would import).
Answer = Any

_sids = itertools.count(1)


def new_sid() -> str:
    """A MessageSid no other request in this run has used (34 characters, like Twilio's)."""
    return f"SM{next(_sids):032x}"


@dataclass
class Clock:
    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture
def rituals(engine: Engine, tmp_path: Path) -> RitualFile:
    """The file, synced and planned as the worker would, with what was due before NOW sent."""
    path = write_ritual_file(tmp_path, RITUALS)
    return planned_file(engine, path, PLANNED, 3, sent_before=NOW)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(engine: Engine, rituals: RitualFile, clock: Clock) -> TestClient:
    return app(engine, rituals, clock)


def app(
    engine: Engine,
    rituals: RitualFile,
    clock: Clock,
    twilio: TwilioWebhooks | None = None,
) -> TestClient:
    return TestClient(
        create_app(
            Ledger(engine),
            clock=clock,
            twilio=twilio or TwilioWebhooks(TOKEN, PUBLIC),
            rituals=lambda: rituals,
        )
    )


# ---------------------------------------------------------------------------- helpers


def inbound(sender: str = ALEX, body: str = "DONE", *, sid: str | None = None) -> dict[str, str]:
    """The form Twilio posts for an incoming SMS."""
    sid = sid or new_sid()
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "SmsMessageSid": sid,
        "AccountSid": "AC" + "0" * 32,
        "MessagingServiceSid": "MG" + "0" * 32,
        "From": sender,
        "To": "+15550001111",
        "Body": body,
        "NumMedia": "0",
        "NumSegments": "1",
        "ApiVersion": "2010-04-01",
    }


def sign(form: dict[str, str], url: str = URL, token: str = TOKEN) -> str:
    return str(RequestValidator(token).compute_signature(url, form))


def post(
    client: TestClient,
    form: dict[str, str],
    *,
    signature: str | None = "sign",
    headers: dict[str, str] | None = None,
) -> Answer:
    """POST the form to /twilio/sms, signed as Twilio would (or with `signature` as given)."""
    sent = {"Content-Type": FORM, **(headers or {})}
    if signature == "sign":
        signature = sign(form)
    if signature is not None:
        sent["X-Twilio-Signature"] = signature
    return client.post(PATH, content=urlencode(form), headers=sent)


def messages(answer: Answer) -> list[str]:
    """The texts of the TwiML answer's <Message>s; the answer must be well-formed TwiML."""
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].split(";")[0] == "application/xml"
    root = ET.fromstring(answer.content)
    assert root.tag == "Response"
    assert all(child.tag == "Message" for child in root)
    return [child.text or "" for child in root]


def count(engine: Engine, table: Any) -> int:
    with engine.connect() as connection:
        found: int = connection.execute(select(func.count()).select_from(table)).scalar_one()
        return found


def recorded(engine: Engine) -> tuple[int, int]:
    """How many inbound messages and completions the ledger holds."""
    return count(engine, InboundMessageRow), count(engine, CompletionRow)


def completions(engine: Engine) -> list[tuple[str, str, str, datetime]]:
    """(household, partner, action, occurrence time) of each completion."""
    with engine.connect() as connection:
        return [
            (r.household_id, r.partner_key, r.action, r.at.replace(tzinfo=UTC))
            for r in connection.execute(
                select(
                    OccurrenceRow.household_id,
                    CompletionRow.partner_key,
                    CompletionRow.action,
                    OccurrenceRow.at,
                )
                .join(OccurrenceRow, OccurrenceRow.id == CompletionRow.occurrence_id)
                .order_by(CompletionRow.id)
            )
        ]


def commands(engine: Engine) -> list[str | None]:
    with engine.connect() as connection:
        return list(
            connection.execute(select(InboundMessageRow.command).order_by(InboundMessageRow.id))
            .scalars()
            .all()
        )


def opted_out(engine: Engine) -> dict[tuple[str, str], datetime | None]:
    with engine.connect() as connection:
        return {
            (r.household_id, r.key): r.sms_opted_out_at
            for r in connection.execute(
                select(PartnerRow.household_id, PartnerRow.key, PartnerRow.sms_opted_out_at)
            )
        }


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def rejected(reason: str) -> float:
    return sample("tend_webhooks_rejected_total", route=PATH, reason=reason)


def replies(command: str) -> float:
    return sample("tend_inbound_replies_total", command=command)


# ---------------------------------------------------------------------------- confirming


def test_a_signed_done_from_a_partner_confirms_what_the_last_message_was_about(
    engine: Engine, client: TestClient
) -> None:
    before = replies("confirm")

    answer = post(client, inbound(ALEX, "DONE"))

    [text] = messages(answer)
    assert "check in" in text
    assert "in a row" in text or "your streak has begun" in text
    assert completions(engine) == [("alex-sam", "alex", "confirm", TUESDAY)]
    assert commands(engine) == ["confirm"]
    assert replies("confirm") - before == 1


def test_a_flood_is_answered_once_then_not_at_all_until_the_minute_has_passed(
    engine: Engine, client: TestClient, clock: Clock
) -> None:
    for _ in range(RATE_LIMIT):
        assert messages(post(client, inbound(ALEX, "STREAK"))) == [STREAKS]

    assert messages(post(client, inbound(ALEX, "DONE"))) == [LIMITED]
    assert messages(post(client, inbound(ALEX, "DONE 2"))) == []
    assert messages(post(client, inbound(ALEX, "DONE"))) == []
    assert completions(engine) == []
    assert commands(engine)[RATE_LIMIT:] == ["limited"] * 3

    # The limit is per number: Alex's flood does not silence Sam.
    [text] = messages(post(client, inbound(SAM, "STREAK")))
    assert text == STREAKS

    clock.now = NOW + RATE_WINDOW + timedelta(seconds=1)
    [text] = messages(post(client, inbound(ALEX, "DONE")))
    assert text.startswith("Marked the check in (Tue 13 Jan) as done.")
    assert completions(engine) == [("alex-sam", "alex", "confirm", TUESDAY)]


# ---------------------------------------------------------------------------- who may ask


@pytest.mark.parametrize(
    "how",
    [
        "no signature",
        "an empty signature",
        "a wrong token",
        "another host",
        "the request's own URL",  # what a proxy-unaware check would have used
        "the status path",
        "a changed field",
        "a garbage signature",
    ],
)
def test_a_forged_reply_is_refused_and_records_nothing(
    engine: Engine, client: TestClient, how: str
) -> None:
    form = inbound(ALEX, "DONE")
    signed_url, signed_form, token = URL, dict(form), TOKEN
    if how == "a wrong token":
        token = "f" * 32
    elif how == "another host":
        signed_url = "http://other.example/twilio/sms"
    elif how == "the request's own URL":
        signed_url = "http://testserver/twilio/sms"
    elif how == "the status path":
        signed_url = f"{PUBLIC}/twilio/status"
    elif how == "a changed field":
        form["Body"] = "SKIP"  # signed as DONE
    signature: str | None = sign(signed_form, signed_url, token)
    if how == "no signature":
        signature = None
    elif how == "an empty signature":
        signature = ""
    elif how == "a garbage signature":
        signature = "bm90IGEgc2lnbmF0dXJl"
    before = rejected("forged")

    answer = post(client, form, signature=signature)

    assert answer.status_code == 403
    assert recorded(engine) == (0, 0)
    assert rejected("forged") - before == 1


@pytest.mark.parametrize(("token", "public"), [(None, None), (None, PUBLIC), (TOKEN, None)])
def test_without_the_auth_token_or_public_url_no_reply_is_trusted(
    engine: Engine,
    rituals: RitualFile,
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
    token: str | None,
    public: str | None,
) -> None:
    client = app(engine, rituals, clock, TwilioWebhooks(token, public))
    before = rejected("unconfigured")

    assert post(client, inbound(ALEX, "DONE")).status_code == 503

    assert recorded(engine) == (0, 0)
    assert rejected("unconfigured") - before == 1
    assert "TWILIO_AUTH_TOKEN or TEND_PUBLIC_URL" in caplog.text


def test_a_stranger_learns_nothing_about_any_household(
    engine: Engine, client: TestClient, rituals: RitualFile
) -> None:
    [text] = messages(post(client, inbound(STRANGER_NUMBER, "DONE")))

    assert text == STRANGER
    secrets = {"check-in", "check in", "check_in", "Check-in"}
    for household in rituals.households:
        secrets.add(household.id)
        for partner in household.partners:
            secrets |= {partner.id, partner.name, partner.phone or ""}
            secrets.add((partner.phone or "")[-4:])
    for secret in secrets - {""}:
        assert secret.lower() not in text.lower(), secret
    assert completions(engine) == []
    assert commands(engine) == ["stranger"]


def test_a_stranger_is_answered_once_a_day_and_every_message_is_recorded(
    engine: Engine, client: TestClient, clock: Clock
) -> None:
    # Each answer is an SMS Tend pays for: an unknown number gets one a day, whatever it sends.
    assert messages(post(client, inbound(STRANGER_NUMBER, "DONE"))) == [STRANGER]
    clock.now = NOW + timedelta(minutes=5)
    assert messages(post(client, inbound(STRANGER_NUMBER, "HELP"))) == []
    clock.now = NOW + timedelta(hours=23, minutes=59)
    assert messages(post(client, inbound(STRANGER_NUMBER, "hello?"))) == []
    # Another unknown number has its own day; a partner is answered as ever.
    assert messages(post(client, inbound("+15559990001", "DONE"))) == [STRANGER]
    assert len(messages(post(client, inbound(ALEX, "STREAK")))) == 1

    clock.now = NOW + timedelta(hours=24, seconds=1)
    assert messages(post(client, inbound(STRANGER_NUMBER, "DONE"))) == [STRANGER]

    assert commands(engine) == ["stranger"] * 4 + ["streak", "stranger"]
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                InboundMessageRow.sender, InboundMessageRow.answer, InboundMessageRow.household_id
            )
            .where(InboundMessageRow.sender != ALEX)
            .order_by(InboundMessageRow.id)
        ).all()
    assert [tuple(r) for r in rows] == [
        (STRANGER_NUMBER, STRANGER, None),
        (STRANGER_NUMBER, "", None),
        (STRANGER_NUMBER, "", None),
        ("+15559990001", STRANGER, None),
        (STRANGER_NUMBER, STRANGER, None),
    ]
    assert completions(engine) == []


def test_a_strangers_flood_gets_no_answer_beyond_the_first(
    engine: Engine, client: TestClient, clock: Clock
) -> None:
    # The rate limit's "wait a minute" would be a second answer of the day: not sent.
    answers = [messages(post(client, inbound(STRANGER_NUMBER, "DONE"))) for _ in range(25)]
    assert answers == [[STRANGER]] + [[]] * 24
    assert commands(engine) == ["stranger"] * RATE_LIMIT + ["limited"] * 5


# ---------------------------------------------------------------------------- once only


def test_a_retried_message_gets_the_same_answer_and_is_applied_once(
    engine: Engine, client: TestClient
) -> None:
    before = replies("confirm")
    form = inbound(ALEX, "DONE")

    first = post(client, form)
    again = post(client, form)

    assert first.status_code == again.status_code == 200
    assert first.content == again.content
    assert len(messages(first)) == 1
    assert completions(engine) == [("alex-sam", "alex", "confirm", TUESDAY)]
    assert recorded(engine) == (1, 1)
    assert replies("confirm") - before == 1


def test_one_idempotency_token_on_two_message_ids_is_applied_once(
    engine: Engine, client: TestClient
) -> None:
    token = {"I-Twilio-Idempotency-Token": "6f6c1c3e-0b6a-4b5e-9a4f-2d1d2c7d9f00"}

    first = post(client, inbound(ALEX, "DONE"), headers=token)
    # "DONE 1" would confirm Monday's check-in if it were applied.
    second = post(client, inbound(ALEX, "DONE 1"), headers=token)

    assert first.content == second.content
    assert completions(engine) == [("alex-sam", "alex", "confirm", TUESDAY)]
    assert recorded(engine) == (1, 1)


# ---------------------------------------------------------------------------- bodies


def test_an_oversized_body_with_its_length_declared_is_refused(
    engine: Engine, client: TestClient
) -> None:
    form = inbound(ALEX, "DONE")
    body = urlencode(form) + "&Padding=" + "x" * MAX_BODY
    before = rejected("too_large")

    answer = client.post(
        PATH, content=body, headers={"Content-Type": FORM, "X-Twilio-Signature": sign(form)}
    )

    assert answer.status_code == 413
    assert recorded(engine) == (0, 0)
    assert rejected("too_large") - before == 1


def test_an_oversized_body_sent_in_chunks_is_refused(engine: Engine, client: TestClient) -> None:
    form = inbound(ALEX, "DONE")

    def chunks() -> Iterator[bytes]:
        yield urlencode(form).encode()
        for _ in range(70):
            yield b"&Padding=" + b"x" * 1024

    before = rejected("too_large")

    answer = client.post(
        PATH, content=chunks(), headers={"Content-Type": FORM, "X-Twilio-Signature": sign(form)}
    )

    assert "content-length" not in answer.request.headers
    assert answer.status_code == 413
    assert recorded(engine) == (0, 0)
    assert rejected("too_large") - before == 1


def test_a_body_streamed_past_the_limit_is_not_read_to_its_end(
    engine: Engine, rituals: RitualFile, clock: Clock
) -> None:
    """Straight through ASGI, one kilobyte per message, no Content-Length: the app stops
    reading soon after the limit rather than buffering whatever a client sends."""
    asgi = create_app(
        Ledger(engine), clock=clock, twilio=TwilioWebhooks(TOKEN, PUBLIC), rituals=lambda: rituals
    )
    read = 0
    total = 1000  # a megabyte
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal read
        if read >= total:
            return {"type": "http.disconnect"}
        read += 1
        return {"type": "http.request", "body": b"x" * 1024, "more_body": read < total}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": PATH,
        "raw_path": PATH.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"tend.example.com"), (b"content-type", FORM.encode())],
        "client": ("127.0.0.1", 5000),
        "server": ("tend.example.com", 443),
    }
    asyncio.run(asgi(scope, receive, send))  # type: ignore[arg-type]

    [start] = [m for m in sent if m["type"] == "http.response.start"]
    assert start["status"] == 413
    assert read <= MAX_BODY // 1024 + 2
    assert recorded(engine) == (0, 0)


@pytest.mark.parametrize(
    ("content_type", "content"),
    [
        ("application/json", '{"MessageSid": "SM1", "From": "+15551230001", "Body": "DONE"}'),
        ("text/plain", "MessageSid=SM1&From=%2B15551230001&Body=DONE"),
        ("multipart/form-data; boundary=x", "--x--"),
        ("", "MessageSid=SM1&From=%2B15551230001&Body=DONE"),
    ],
)
def test_a_body_that_is_not_a_form_is_refused(
    engine: Engine, client: TestClient, content_type: str, content: str
) -> None:
    before = rejected("not_form")
    headers = {"X-Twilio-Signature": sign(inbound(ALEX, sid="SM1"))}
    if content_type:
        headers["Content-Type"] = content_type

    answer = client.post(PATH, content=content, headers=headers)

    assert answer.status_code == 415
    assert recorded(engine) == (0, 0)
    assert rejected("not_form") - before == 1


@pytest.mark.parametrize(
    "body",
    [
        "DONE 🎉🎉🎉",
        "✅",
        "👍🏽",
        "👨‍👩‍👧‍👦 family night was lovely",
        "تم ✔ DONE",  # Arabic, right to left
        "\u202edone\u202c",  # a right-to-left override around the word
        "שלום, עשינו את זה",
        "D\u0301O\u0308N\u0303E\u0327",  # combining marks
        "\uff24\uff4f\uff4e\uff45\uff01\uff01",  # full-width "Done!!"
        "\x01\x02\x07\x08\x0b\x0c\x1b[31mDONE\x1b[0m\x7f\x85",  # control characters, no NUL
        "\ufeffDONE\u200b",
        "\U0010fffd\U0001f9ea private-use and chemistry",
        "é" * 1600,
        "DONE " + "🙂" * 1000,  # longer than Twilio's 1,600: kept cut
        "'; DROP TABLE completion; --",
        "DONE'); DELETE FROM inbound_message; --",
        'SKIP 1 " OR 1=1 --',
        "%00%27 <Response><Redirect>http://evil.example</Redirect></Response> ]]>",
        "",
        " \t\r\n ",
    ],
)
def test_any_body_gets_a_well_formed_answer_and_leaves_the_ledger_whole(
    engine: Engine, client: TestClient, body: str
) -> None:
    form = inbound(ALEX, body)
    planned = count(engine, PartnerRow), count(engine, OccurrenceRow), count(engine, DeliveryRow)

    texts = messages(post(client, form))

    assert len(texts) <= 1
    assert not any("evil" in text for text in texts)
    with engine.connect() as connection:
        row = connection.execute(
            select(InboundMessageRow.body, InboundMessageRow.sender, InboundMessageRow.provider_id)
        ).one()
    assert row == (body[:1600], ALEX, form["MessageSid"])
    # Every table the bodies name is still there and still answers.
    assert count(engine, CompletionRow) <= 1
    assert (
        count(engine, PartnerRow),
        count(engine, OccurrenceRow),
        count(engine, DeliveryRow),
    ) == planned


def test_a_nul_in_the_body_is_dropped_and_the_reply_applied(
    engine: Engine, client: TestClient
) -> None:
    """PostgreSQL text cannot hold NUL: kept, it failed every retry of the message with 503."""
    [text] = messages(post(client, inbound(ALEX, "DO\x00NE\x00")))

    assert text.startswith("Marked the check in (Tue 13 Jan) as done.")
    with engine.connect() as connection:
        assert connection.execute(select(InboundMessageRow.body)).scalar_one() == "DONE"
    assert completions(engine) == [("alex-sam", "alex", "confirm", TUESDAY)]


@pytest.mark.parametrize("field", ["From", "MessageSid"])
def test_a_nul_in_the_sender_or_message_id_is_malformed(
    engine: Engine, client: TestClient, field: str
) -> None:
    form = inbound(ALEX, "DONE")
    form[field] = form[field][:6] + "\x00" + form[field][6:]
    before = rejected("malformed")

    assert post(client, form).status_code == 400

    assert recorded(engine) == (0, 0)
    assert rejected("malformed") - before == 1


# ---------------------------------------------------------------------------- STOP / START


def test_stop_opts_the_number_out_everywhere_and_start_lets_it_back_in(
    engine: Engine, client: TestClient
) -> None:
    assert messages(post(client, inbound(SAM, "STOP"))) == []

    assert opted_out(engine) == {
        ("alex-sam", "alex"): None,
        ("alex-sam", "sam"): NOW,
        ("sam-kim", "sam"): NOW,
        ("sam-kim", "kim"): None,
    }
    assert commands(engine) == ["stop"]

    [text] = messages(post(client, inbound(SAM, "START")))

    assert "back" in text
    assert set(opted_out(engine).values()) == {None}
    assert completions(engine) == []


# ---------------------------------------------------------------------------- properties

SENDERS = st.sampled_from([ALEX, SAM, KIM, STRANGER_NUMBER, "+1 555-123-0001", "alex"])
# Any text, and commands with any arguments after them (ASCII, so the grammar is reached).
BODIES = st.one_of(
    st.text(max_size=2000),
    st.builds(
        "{}{}".format,
        st.sampled_from(
            [
                *("DONE", "done ", "DONE 99", "SKIP ", "SKIP 0 ", "SNOOZE ", "PAUSE "),
                *("RESUME", "STREAK", "STOP", "START", "YES", "HELP", "✅", "Loved “"),
            ]
        ),
        st.text(st.characters(max_codepoint=0x7F), max_size=40),
    ),
)
FIELD_NAMES = st.one_of(
    st.sampled_from(["To", "NumMedia", "MediaUrl0", "FromCity", "AccountSid", "x", ""]),
    st.text(max_size=20),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=BODIES,
    sender=st.one_of(SENDERS, st.text(max_size=80)),
    sid=st.sampled_from(["unique"] * 4 + ["missing", "too long"]),
    extra=st.dictionaries(FIELD_NAMES, st.text(max_size=60), max_size=5),
)
def test_any_signed_reply_gets_an_answer_never_a_crash(
    engine: Engine,
    client: TestClient,
    clock: Clock,
    body: str,
    sender: str,
    sid: str,
    extra: dict[str, str],
) -> None:
    clock.now += timedelta(seconds=5)  # a flood would answer everything the same way
    form = {**extra, "Body": body, "From": sender}
    if sid == "unique":
        form["MessageSid"] = new_sid()
    elif sid == "too long":
        form["MessageSid"] = "SM" + "0" * 100
    else:
        form.pop("MessageSid", None)
    form.pop("SmsSid", None)

    answer = post(client, form)

    assert answer.status_code in (200, 400), answer.text
    if answer.status_code == 200:
        assert len(messages(answer)) <= 1


SIGNATURES = st.one_of(
    st.none(),
    st.text(alphabet=string.ascii_letters + string.digits + "+/=", max_size=40),
    st.sampled_from(["wrong token", "other url", "status path"]),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    body=BODIES,
    sender=st.one_of(SENDERS, st.text(max_size=40)),
    extra=st.dictionaries(FIELD_NAMES, st.text(max_size=60), max_size=5),
    forgery=SIGNATURES,
)
def test_no_unsigned_or_forged_reply_records_anything(
    engine: Engine,
    client: TestClient,
    body: str,
    sender: str,
    extra: dict[str, str],
    forgery: str | None,
) -> None:
    form = {**extra, "MessageSid": new_sid(), "From": sender, "Body": body}
    signature = forgery
    if forgery == "wrong token":
        signature = sign(form, token="f" * 32)
    elif forgery == "other url":
        signature = sign(form, url="http://other.example/twilio/sms")
    elif forgery == "status path":
        signature = sign(form, url=f"{PUBLIC}/twilio/status")
    before = recorded(engine), opted_out(engine)

    answer = post(client, form, signature=signature)

    assert answer.status_code == 403
    assert (recorded(engine), opted_out(engine)) == before
