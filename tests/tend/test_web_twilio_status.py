"""Twilio's delivery receipts: signature checked against TEND_PUBLIC_URL + path; delivered is
noted; undelivered or failed moves the message to the partner's next channel, once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_setup import add_household
from sqlalchemy import Engine, insert, select
from twilio.request_validator import RequestValidator

from notifiers.twilio_webhooks import TwilioWebhooks
from scheduler.models import Delivery, Occurrence
from tend.web import create_app

NOW = datetime(2026, 12, 5, 19, 5, tzinfo=UTC)
TOKEN = "0123456789abcdef0123456789abcdef"
PUBLIC = "https://tend.example.com"
URL = f"{PUBLIC}/twilio/status"
SID = "SM" + "1" * 32


@pytest.fixture
def engine(ledger: Engine) -> Engine:
    partner = {"phone": "+15551230002", "email": "sam@example.com", "channels": "sms,email"}
    add_household(ledger, "h", {"sam": partner}, NOW)
    slot = datetime(2026, 12, 5, 19)
    with ledger.begin() as connection:
        occurrence = connection.execute(
            insert(Occurrence)
            .values(
                household_id="h",
                ritual_id="date-night",
                slot=slot,
                kind="date_night",
                at=slot.replace(tzinfo=UTC),
                created_at=NOW,
                updated_at=NOW,
            )
            .returning(Occurrence.id)
        ).scalar_one()
        due = slot.replace(tzinfo=UTC)
        connection.execute(
            insert(Delivery).values(
                occurrence_id=occurrence,
                household_id="h",
                partner_key="sam",
                role="day_of",
                channel="sms",
                status="sent",
                due_at=due,
                next_attempt_at=due,
                expires_at=due + timedelta(hours=2),
                attempts=1,
                body="Date night tonight, Sam.",
                provider_id=SID,
                sent_at=due,
                created_at=NOW,
                updated_at=NOW,
            )
        )
    return ledger


def app(engine: Engine, token: str | None = TOKEN, public: str | None = PUBLIC) -> TestClient:
    return TestClient(create_app(engine, clock=lambda: NOW, twilio=TwilioWebhooks(token, public)))


def callback(status: str, **extra: str) -> dict[str, str]:
    return {
        "MessageSid": SID,
        "SmsSid": SID,
        "MessageStatus": status,
        "SmsStatus": status,
        "AccountSid": "AC" + "0" * 32,
        "From": "+15550001111",
        "To": "+15551230002",
        "ApiVersion": "2010-04-01",
        **extra,
    }


def post(client: TestClient, form: dict[str, str], *, url: str = URL, sign: bool = True) -> int:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if sign:
        headers["X-Twilio-Signature"] = RequestValidator(TOKEN).compute_signature(url, form)
    return client.post("/twilio/status", content=urlencode(form), headers=headers).status_code


def rows(engine: Engine) -> list[tuple[str, str, str | None, str | None]]:
    with engine.connect() as connection:
        return [
            tuple(r)  # type: ignore[misc]
            for r in connection.execute(
                select(
                    Delivery.channel, Delivery.status, Delivery.provider_status, Delivery.last_error
                ).order_by(Delivery.id)
            )
        ]


def test_delivered_is_noted(engine: Engine) -> None:
    assert post(app(engine), callback("delivered")) == 204
    assert rows(engine) == [("sms", "sent", "delivered", None)]


def test_undelivered_moves_the_message_to_email_once(engine: Engine) -> None:
    client = app(engine)
    assert post(client, callback("undelivered", ErrorCode="30003")) == 204
    assert post(client, callback("undelivered", ErrorCode="30003")) == 204  # Twilio retried
    assert post(client, callback("delivered")) == 204  # out of order: the first word counts
    assert rows(engine) == [
        ("sms", "failed", "undelivered", "undelivered (provider error 30003)"),
        ("email", "pending", None, None),
    ]


def test_steps_before_the_final_word_change_nothing(engine: Engine) -> None:
    client = app(engine)
    for status in ("queued", "sending", "sent", "accepted"):
        assert post(client, callback(status)) == 204
    assert rows(engine) == [("sms", "sent", None, None)]


def test_an_unknown_message_is_acknowledged_and_ignored(engine: Engine) -> None:
    form = callback("failed", ErrorCode="30005")
    form["MessageSid"] = form["SmsSid"] = "SM" + "9" * 32
    assert post(app(engine), form) == 204
    assert rows(engine) == [("sms", "sent", None, None)]


@pytest.mark.parametrize(
    "how",
    [
        "no signature",
        "wrong token",
        "the request's own URL",  # what a proxy-unaware check would have used
        "another path",
        "a changed field",
    ],
)
def test_forged_callbacks_are_refused_and_change_nothing(engine: Engine, how: str) -> None:
    client = app(engine)
    form = callback("failed", ErrorCode="30005")
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    signed_url, signed_form, token = URL, dict(form), TOKEN
    if how == "wrong token":
        token = "f" * 32
    elif how == "the request's own URL":
        signed_url = "http://testserver/twilio/status"
    elif how == "another path":
        signed_url = f"{PUBLIC}/twilio/sms"
    elif how == "a changed field":
        form["ErrorCode"] = "30003"  # signed with 30005
    if how != "no signature":
        headers["X-Twilio-Signature"] = RequestValidator(token).compute_signature(
            signed_url, signed_form
        )
    answer = client.post("/twilio/status", content=urlencode(form), headers=headers)
    assert answer.status_code == 403
    assert rows(engine) == [("sms", "sent", None, None)]


def test_without_the_auth_token_or_public_url_nothing_is_trusted(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    assert post(app(engine, token=None), callback("failed")) == 503
    assert post(app(engine, public=None), callback("failed")) == 503
    assert rows(engine) == [("sms", "sent", None, None)]
    assert "TWILIO_AUTH_TOKEN or TEND_PUBLIC_URL" in caplog.text


def test_an_oversized_or_non_form_body_is_refused(engine: Engine) -> None:
    client = app(engine)
    big = client.post(
        "/twilio/status",
        content=b"a=" + b"x" * (70 * 1024),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert big.status_code == 413
    json = client.post("/twilio/status", json=callback("failed"))
    assert json.status_code == 415
    assert rows(engine) == [("sms", "sent", None, None)]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    form=st.dictionaries(
        st.sampled_from(["MessageSid", "MessageStatus", "ErrorCode", "To", "x", "SmsSid"]),
        st.text(max_size=40),
        max_size=5,
    )
)
def test_any_signed_form_gets_an_answer_never_a_crash(engine: Engine, form: dict[str, str]) -> None:
    status = post(app(engine), form)
    assert status in (204, 400)
    [(channel, state, *_)] = rows(engine)[:1]
    assert (channel, state) in {("sms", "sent"), ("sms", "failed")}
