"""Twilio's delivery receipts: signature checked against TEND_PUBLIC_URL + path; delivered is
noted; undelivered or failed moves the message to the partner's next channel, once."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select
from status_callbacks import PUBLIC, TOKEN, URL, add_sent_sms, app, callback, post
from twilio.request_validator import RequestValidator

from scheduler.ledger.rows import DeliveryRow


@pytest.fixture
def engine(ledger: Engine) -> Engine:
    """The SQLite ledger holding one SMS sent to Sam, the callbacks' subject."""
    add_sent_sms(ledger)
    return ledger


def rows(engine: Engine) -> list[tuple[str, str, str | None, str | None]]:
    with engine.connect() as connection:
        return [
            tuple(r)  # type: ignore[misc]
            for r in connection.execute(
                select(
                    DeliveryRow.channel,
                    DeliveryRow.status,
                    DeliveryRow.provider_status,
                    DeliveryRow.last_error,
                ).order_by(DeliveryRow.id)
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
