"""``GET /metrics``: the process's counters and the ledger's numbers in Prometheus' text
format; refused webhooks are counted by reason; a ledger that cannot be read is a 0, not a
failed scrape. Counters are process-wide: tests compare after with before."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_samples import Samples, delta, parse, value
from sqlalchemy import Engine, insert
from status_callbacks import NOW, PUBLIC, TOKEN, add_sent_sms, app, callback, post
from twilio.request_validator import RequestValidator

from notifiers.twilio_webhooks import MAX_BODY, TwilioWebhooks
from scheduler.ledger import Ledger
from scheduler.ledger.engine import make_engine
from scheduler.ledger.rows import WorkerHeartbeatRow
from tend.web import create_app


@pytest.fixture
def engine(ledger: Engine) -> Engine:
    """The SQLite ledger holding one SMS sent to Sam, the callbacks' subject."""
    add_sent_sms(ledger)
    return ledger


def scrape(client: TestClient) -> Samples:
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == CONTENT_TYPE_LATEST
    return parse(answer.content)


def test_metrics_shows_the_ledgers_deliveries_and_the_workers_heartbeat(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(
            insert(WorkerHeartbeatRow).values(
                worker_id="w",
                hostname="test",
                pid=1,
                started_at=NOW - timedelta(hours=1),
                beat_at=NOW - timedelta(seconds=12),
            )
        )

    samples = scrape(app(engine))

    assert value(samples, "tend_ledger_up") == 1
    assert value(samples, "tend_deliveries", status="sent", channel="sms") == 1
    assert value(samples, "tend_deliveries", status="pending", channel="sms") == 0
    assert value(samples, "tend_worker_heartbeat_age_seconds") == 12.0


def test_an_unreadable_ledger_still_scrapes_with_the_ledger_down(tmp_path: Path) -> None:
    broken = make_engine(f"sqlite:///{tmp_path / 'no-such-folder' / 'tend.db'}")
    try:
        samples = scrape(TestClient(create_app(Ledger(broken), clock=lambda: NOW)))
    finally:
        broken.dispose()

    assert value(samples, "tend_ledger_up") == 0
    assert not [name for name, _ in samples if name == "tend_deliveries"]


REJECTED = "tend_webhooks_rejected_total"


def test_a_forged_status_callback_is_counted_as_forged(engine: Engine) -> None:
    client = app(engine)
    before = scrape(client)

    assert post(client, callback("delivered"), sign=False) == 403
    assert post(client, callback("delivered"), url=f"{PUBLIC}/elsewhere") == 403

    after = scrape(client)
    assert delta(before, after, REJECTED, route="/twilio/status", reason="forged") == 2
    assert delta(before, after, REJECTED, route="/twilio/status", reason="malformed") == 0


def test_an_accepted_status_callback_is_not_counted(engine: Engine) -> None:
    client = app(engine)
    before = scrape(client)

    assert post(client, callback("delivered")) == 204

    after = scrape(client)
    refused = [
        name
        for name, labels in after
        if name == REJECTED and delta(before, after, name, **dict(labels))
    ]
    assert refused == []


FORM = "application/x-www-form-urlencoded"
NO_SID = {"MessageStatus": "delivered"}


@pytest.mark.parametrize(
    ("reason", "answer", "content_type", "body"),
    [
        ("too_large", 413, FORM, "Body=" + "x" * MAX_BODY),
        ("not_form", 415, "application/json", '{"MessageSid": "SM1"}'),
        ("malformed", 400, FORM, urlencode(NO_SID)),
    ],
)
def test_a_refused_status_callback_is_counted_by_reason(
    engine: Engine, reason: str, answer: int, content_type: str, body: str
) -> None:
    client = app(engine)
    before = scrape(client)
    # Signed, so that where the signature is checked, only the named fault is wrong.
    signature = RequestValidator(TOKEN).compute_signature(f"{PUBLIC}/twilio/status", NO_SID)
    headers = {"Content-Type": content_type, "X-Twilio-Signature": signature}

    assert client.post("/twilio/status", content=body, headers=headers).status_code == answer

    after = scrape(client)
    assert delta(before, after, REJECTED, route="/twilio/status", reason=reason) == 1


def test_a_status_callback_without_webhook_settings_is_counted_as_unconfigured(
    engine: Engine,
) -> None:
    client = TestClient(
        create_app(Ledger(engine), clock=lambda: NOW, twilio=TwilioWebhooks(None, None))
    )
    before = scrape(client)

    assert post(client, callback("delivered")) == 503

    after = scrape(client)
    assert delta(before, after, REJECTED, route="/twilio/status", reason="unconfigured") == 1
