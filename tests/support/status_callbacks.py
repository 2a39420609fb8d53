"""Twilio's status callbacks about one sent SMS: the ledger row they are about, the app that
receives them, and callbacks signed (or not) as Twilio signs them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from fastapi.testclient import TestClient
from ledger_setup import add_household
from sqlalchemy import Engine, insert
from twilio.request_validator import RequestValidator

from notifiers.twilio_webhooks import TwilioWebhooks
from scheduler.ledger import Ledger
from scheduler.ledger.rows import DeliveryRow, OccurrenceRow
from tend.web import create_app

NOW = datetime(2026, 12, 5, 19, 5, tzinfo=UTC)
TOKEN = "0123456789abcdef0123456789abcdef"
PUBLIC = "https://tend.example.com"
URL = f"{PUBLIC}/twilio/status"
SID = "SM" + "1" * 32


def add_sent_sms(ledger: Engine) -> None:
    """Household h, Sam in it (SMS, then e-mail), and tonight's date-night text to Sam,
    sent with the message id `SID`: what a status callback is about."""
    partner = {"phone": "+15551230002", "email": "sam@example.com", "channels": "sms,email"}
    add_household(ledger, "h", {"sam": partner}, NOW)
    slot = datetime(2026, 12, 5, 19)
    with ledger.begin() as connection:
        occurrence = connection.execute(
            insert(OccurrenceRow)
            .values(
                household_id="h",
                ritual_id="date-night",
                slot=slot,
                kind="date_night",
                at=slot.replace(tzinfo=UTC),
                created_at=NOW,
                updated_at=NOW,
            )
            .returning(OccurrenceRow.id)
        ).scalar_one()
        due = slot.replace(tzinfo=UTC)
        connection.execute(
            insert(DeliveryRow).values(
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


def app(engine: Engine, token: str | None = TOKEN, public: str | None = PUBLIC) -> TestClient:
    return TestClient(
        create_app(Ledger(engine), clock=lambda: NOW, twilio=TwilioWebhooks(token, public))
    )


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
