"""TELL through the real webhook: signed requests to ``POST /twilio/sms``, the real
dispatcher sending through the real SMS notifier to the fake Twilio API on loopback, on
SQLite and on PostgreSQL.

Alex passes an appreciation on to Sam ("Alex: <text>") once per MessageSid, after Sam's
quiet hours (22:00-08:00), at most 320 characters and 5 a day; it counts as Alex's DONE of
the open appreciation nudge; a Sam who opted out gets nothing and Alex is told; the text is
in no log record and not in /metrics.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from fake_notifiers import FakeClock, FakeEmail
from fake_twilio import FakeTwilio
from ledger_setup import planned_file
from ritual_files import couple_file, household_table, partner_table, write_ritual_file
from signed_sms import FORM, PUBLIC, TOKEN, answer_text
from sqlalchemy import Engine, select
from twilio.request_validator import RequestValidator

from config.loader import load_ritual_file
from config.model import RitualFile
from notifiers.base import Message, SendResult
from notifiers.email import compose
from notifiers.links import Links
from notifiers.registry import NotifierSet
from notifiers.sms import SmsNotifier
from notifiers.twilio_webhooks import TwilioWebhooks
from rituals.planning import Plan
from scheduler.acts import acts
from scheduler.acts.wording import STRANGER
from scheduler.dispatch.dispatcher import Dispatcher
from scheduler.ledger import Ledger
from scheduler.ledger.rows import (
    CompletionRow,
    DeliveryRow,
    InboundMessageRow,
    OccurrenceRow,
)
from scheduler.planner import plan_horizon, sync_file
from tend.web import create_app

SENDER = "+15550001111"
LINKS = Links(PUBLIC, "tell-test-secret-key-0123456789")

ALEX = "+15551230001"
SAM = "+15551230002"
KIM = "+15551230003"
STRANGER_NUMBER = "+15559990000"

# Planned from Monday 12 January 2026; Alex's appreciation nudge went out on Tuesday at
# 12:00 and is open at 12:30, when Alex answers it.
PLANNED = datetime(2026, 1, 12, 0, 0, tzinfo=UTC)
NOW = datetime(2026, 1, 13, 12, 30, tzinfo=UTC)
APPRECIATION_AT = datetime(2026, 1, 13, 12, 0, tzinfo=UTC)
LATE = datetime(2026, 1, 13, 23, 0, tzinfo=UTC)  # Sam's quiet hours: until 08:00
MORNING = datetime(2026, 1, 14, 8, 0, tzinfo=UTC)

WORDS = "Thank you for making dinner, it meant a lot"

RITUALS = couple_file(
    partner_table("alex", phone=True, channels=["sms"]),
    partner_table(
        "sam", phone=True, email=True, channels=["sms", "email"], quiet_hours="22:00-08:00"
    ),
    households=household_table("kim-solo", partner_table("kim", phone=True, channels=["sms"])),
    rituals="""
[[rituals]]
id = "appreciation"
kind = "appreciation"
schedule = "daily at 12:00"
to = "alex"
households = ["alex-sam"]
""",
)

_sids = itertools.count(1)


def new_sid() -> str:
    return f"SM{next(_sids):032x}"


class Email(FakeEmail):
    """The e-mail channel, keeping what each message said."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.bodies: list[tuple[str, str]] = []  # (partner, body)
        self.messages: list[Message] = []

    def send(self, message: Message) -> SendResult:
        result = super().send(message)
        self.bodies.append((message.recipient.partner, message.body))
        self.messages.append(message)
        return result


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """No HTTP proxy from the environment between the notifier and the loopback Twilio."""
    for name in list(os.environ):
        if name.upper().endswith("_PROXY"):
            monkeypatch.delenv(name)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def rituals(engine: Engine, tmp_path: Path) -> RitualFile:
    """The file, synced and planned as the worker would, with what was due before NOW sent."""
    path = write_ritual_file(tmp_path, RITUALS)
    return planned_file(engine, path, PLANNED, 3, sent_before=NOW)


@pytest.fixture
def twilio(clock: FakeClock) -> Iterator[FakeTwilio]:
    with FakeTwilio(clock=clock) as server:
        yield server
    assert server.server_errors == []


@pytest.fixture
def email(clock: FakeClock) -> Email:
    return Email(clock)


@pytest.fixture
def dispatcher(
    engine: Engine, twilio: FakeTwilio, email: Email, clock: FakeClock
) -> Iterator[Dispatcher]:
    sms = SmsNotifier(
        twilio.account_sid,
        twilio.auth_token,
        from_number=SENDER,
        api_base_url=twilio.base_url,
        timeout=2.0,
    )
    made = Dispatcher(
        Ledger(engine),
        NotifierSet(overrides={"sms": sms, "email": email}),
        "worker-1",
        clock=clock,
    )
    yield made
    made.close()
    sms.close()


@pytest.fixture
def client(engine: Engine, rituals: RitualFile, clock: FakeClock) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    app = create_app(
        Ledger(engine),
        clock=clock,
        links=LINKS,
        twilio=TwilioWebhooks(TOKEN, PUBLIC),
        rituals=lambda: rituals,
    )
    with TestClient(app) as test_client:
        yield test_client


# ---------------------------------------------------------------------------- helpers


def inbound(sender: str, body: str, sid: str | None = None) -> dict[str, str]:
    sid = sid or new_sid()
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": "AC" + "0" * 32,
        "From": sender,
        "To": SENDER,
        "Body": body,
        "NumMedia": "0",
    }


def text(client: Any, sender: str, body: str, sid: str | None = None) -> str:
    """POST an SMS to the webhook, signed as Twilio signs it; the answer's text."""
    return answer_text(client, inbound(sender, body, sid))


def tells(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                select(DeliveryRow).where(DeliveryRow.role == "tell").order_by(DeliveryRow.id)
            ).all()
        )


def at_sam(twilio: FakeTwilio) -> list[str]:
    return [m["body"] for m in twilio.sent_to(SAM)]


def alex_done(engine: Engine) -> list[datetime]:
    """When the occurrences Alex confirmed were."""
    with engine.connect() as connection:
        return [
            at.replace(tzinfo=UTC)
            for at in connection.execute(
                select(OccurrenceRow.at)
                .join(CompletionRow, CompletionRow.occurrence_id == OccurrenceRow.id)
                .where(CompletionRow.partner_key == "alex", CompletionRow.action == "confirm")
            ).scalars()
        ]


# ---------------------------------------------------------------------------- passed on


def test_a_tell_reaches_sam_once_as_alex_colon_the_text_and_counts_as_alexs_done(
    engine: Engine, client: Any, dispatcher: Dispatcher, twilio: FakeTwilio
) -> None:
    answer = text(client, ALEX, f"TELL {WORDS}")

    assert answer == "Sent to Sam. Your appreciation counts as done."
    assert alex_done(engine) == [APPRECIATION_AT]
    [row] = tells(engine)
    assert (row.household_id, row.partner_key, row.channel) == ("alex-sam", "sam", "sms")
    assert row.occurrence_id is None and row.inbound_id.startswith("SM")

    assert dispatcher.run_until_idle() == 1
    assert at_sam(twilio) == [f"Alex: {WORDS}"]
    assert dispatcher.run_until_idle() == 0
    [row] = tells(engine)
    assert row.status == "sent"
    assert row.provider_id == twilio.sent_to(SAM)[0]["sid"]


def test_a_tell_with_no_nudge_open_is_passed_on_all_the_same(
    engine: Engine, client: Any, dispatcher: Dispatcher, twilio: FakeTwilio
) -> None:
    text(client, ALEX, "DONE")
    text(client, ALEX, "DONE")  # Monday's is open too, inside its reply window
    done = alex_done(engine)
    assert sorted(done) == [APPRECIATION_AT - timedelta(days=1), APPRECIATION_AT]
    assert text(client, ALEX, "tell love you") == "Sent to Sam."
    assert alex_done(engine) == done  # nothing more to count
    dispatcher.run_until_idle()
    assert at_sam(twilio) == ["Alex: love you"]


def test_a_replayed_tell_is_passed_on_once(
    engine: Engine, client: Any, dispatcher: Dispatcher, twilio: FakeTwilio
) -> None:
    sid = new_sid()
    first = text(client, ALEX, f"TELL {WORDS}", sid)
    dispatcher.run_until_idle()
    again = text(client, ALEX, f"TELL {WORDS}", sid)  # Twilio retried the webhook
    dispatcher.run_until_idle()

    assert again == first
    assert len(tells(engine)) == 1
    assert at_sam(twilio) == [f"Alex: {WORDS}"]
    with engine.connect() as connection:
        assert len(connection.execute(select(InboundMessageRow.id)).all()) == 1


def test_a_tell_from_an_unknown_number_sends_nothing(
    engine: Engine, client: Any, dispatcher: Dispatcher, twilio: FakeTwilio
) -> None:
    assert text(client, STRANGER_NUMBER, f"TELL {WORDS}") == STRANGER
    dispatcher.run_until_idle()
    assert tells(engine) == []
    assert twilio.messages == []


def test_a_tell_over_320_characters_sends_nothing_and_says_so(
    engine: Engine, client: Any, dispatcher: Dispatcher, twilio: FakeTwilio
) -> None:
    answer = text(client, ALEX, "TELL " + "x" * 321)
    dispatcher.run_until_idle()

    assert answer.startswith("That TELL is 321 characters; it can be at most 320.")
    assert tells(engine) == []
    assert at_sam(twilio) == []
    assert alex_done(engine) == []  # not done either: nothing was passed on


def test_the_sixth_tell_in_a_day_sends_nothing_and_the_next_day_is_new(
    engine: Engine, client: Any, dispatcher: Dispatcher, twilio: FakeTwilio, clock: FakeClock
) -> None:
    for n in range(5):
        assert text(client, ALEX, f"TELL thanks {n}").startswith("Sent to Sam.")
    sixth = text(client, ALEX, "TELL thanks 5")
    dispatcher.run_until_idle()

    assert sixth == (
        "You have passed on 5 messages today, the most for one day. "
        "Nothing was sent: try again tomorrow."
    )
    assert len(tells(engine)) == 5
    assert sorted(at_sam(twilio)) == [f"Alex: thanks {n}" for n in range(5)]

    clock.set(datetime(2026, 1, 14, 9, 0, tzinfo=UTC))  # Alex's next day
    assert text(client, ALEX, "TELL thanks again") == "Sent to Sam."
    dispatcher.run_until_idle()
    assert at_sam(twilio)[-1] == "Alex: thanks again"


def test_a_partner_alone_in_the_household_is_told_there_is_nobody_to_tell(
    engine: Engine, client: Any, twilio: FakeTwilio
) -> None:
    answer = text(client, KIM, "TELL hello")
    assert answer == "There is nobody else in your household to pass that on to. Nothing was sent."
    assert tells(engine) == []


def test_a_pause_of_the_household_stops_nudges_but_not_a_tell(
    engine: Engine, client: Any, dispatcher: Dispatcher, twilio: FakeTwilio
) -> None:
    assert text(client, SAM, "PAUSE 2w").startswith("Paused until")
    assert text(client, ALEX, f"TELL {WORDS}").startswith("Sent to Sam.")
    dispatcher.run_until_idle()
    assert at_sam(twilio) == [f"Alex: {WORDS}"]


def test_on_postgres_a_tell_wakes_the_workers_when_it_is_queued(
    engine: Engine, client: Any, backend: str
) -> None:
    if backend != "postgres":
        pytest.skip("NOTIFY is PostgreSQL's; SQLite's one process finds it by its poll")
    stopping, woken = threading.Event(), threading.Event()
    listener = threading.Thread(
        target=Ledger(engine).listen, args=(stopping, woken.set), kwargs={"timeout": 0.1}
    )
    listener.start()
    try:
        # A TELL queued before the listener's LISTEN ran wakes nobody: try a few (of 5).
        assert any(
            text(client, ALEX, f"TELL thanks {n}").startswith("Sent") and woken.wait(3)
            for n in range(4)
        ), "no worker was woken"
    finally:
        stopping.set()
        listener.join(10)


# ---------------------------------------------------------------------------- quiet hours


def test_a_tell_in_sams_quiet_hours_arrives_at_their_end_exactly_once(
    engine: Engine, client: Any, dispatcher: Dispatcher, twilio: FakeTwilio, clock: FakeClock
) -> None:
    clock.set(LATE)
    answer = text(client, ALEX, f"TELL {WORDS}")
    assert answer == (
        "Sam gets it tomorrow at 08:00, after their quiet hours. Your appreciation counts as done."
    )
    [row] = tells(engine)
    assert row.due_at.replace(tzinfo=UTC) == MORNING

    dispatcher.run_until_idle()
    clock.set(MORNING - timedelta(minutes=1))
    dispatcher.run_until_idle()
    assert at_sam(twilio) == []

    clock.set(MORNING)
    assert dispatcher.run_until_idle() == 1
    clock.set(MORNING + timedelta(hours=1))
    assert dispatcher.run_until_idle() == 0
    assert at_sam(twilio) == [f"Alex: {WORDS}"]
    [sent] = twilio.sent_to(SAM)
    assert sent["date_created"] is not None
    [row] = tells(engine)
    assert (row.status, row.sent_at.replace(tzinfo=UTC)) == ("sent", MORNING)


def test_the_planner_keeps_a_queued_tell_through_a_change_of_the_file(
    engine: Engine, client: Any, rituals: RitualFile, tmp_path: Path, clock: FakeClock
) -> None:
    clock.set(LATE)
    text(client, ALEX, f"TELL {WORDS}")
    changed = RITUALS.replace('schedule = "daily at 12:00"', 'schedule = "daily at 13:00"')
    path = write_ritual_file(tmp_path, changed, "changed.toml")
    file = load_ritual_file(path, today=LATE).file
    synced = sync_file(Ledger(engine), file, LATE)
    assert synced.changed
    plan_horizon(
        Ledger(engine), Plan(file), LATE, generation=synced.generation, changed=True, days=3
    )
    [row] = tells(engine)
    assert row.status == "pending"
    assert not Ledger(engine).plans.unfinished(["appreciation"], PLANNED, LATE, synced.generation)


# ---------------------------------------------------------------------------- opt-outs


def test_a_tell_to_a_partner_who_opted_out_of_everything_sends_nothing_and_says_so(
    engine: Engine, client: Any, dispatcher: Dispatcher, twilio: FakeTwilio, email: Email
) -> None:
    assert text(client, SAM, "STOP") == ""
    with Ledger(engine).transaction() as tx:  # and the e-mail's unsubscribe link
        acts.unsubscribe(tx, household="alex-sam", partner="sam", channel="email", now=NOW)

    answer = text(client, ALEX, f"TELL {WORDS}")
    dispatcher.run_until_idle()

    assert answer == (
        "That could not be passed on: Sam turned off Tend's messages. Nothing was sent."
    )
    assert tells(engine) == []
    assert at_sam(twilio) == [] and email.bodies == []
    assert alex_done(engine) == []


def test_a_tell_to_a_partner_who_stopped_texts_goes_by_their_next_channel(
    engine: Engine, client: Any, dispatcher: Dispatcher, twilio: FakeTwilio, email: Email
) -> None:
    text(client, SAM, "STOP")
    assert text(client, ALEX, f"TELL {WORDS}").startswith("Sent to Sam.")
    dispatcher.run_until_idle()
    dispatcher.run_until_idle()  # the fallback, made by the first run, is due now

    assert at_sam(twilio) == []
    assert email.bodies == [("sam", f"Alex: {WORDS}")]
    # As the e-mail notifier writes it: its subject, the words, no confirm link (no ritual).
    mail = compose(email.messages[0], sender="Tend <tend@example.com>", links=LINKS, now=NOW)
    assert mail["Subject"] == "Alex passed on an appreciation"
    plain = mail.get_body(("plain",))
    assert plain is not None and f"Alex: {WORDS}" in plain.get_content()
    assert "/confirm/" not in mail.as_string() and mail["List-Unsubscribe"]
    rows = tells(engine)
    assert [(r.channel, r.status) for r in rows] == [("sms", "cancelled"), ("email", "sent")]
    assert rows[1].fallback_of == rows[0].id and rows[1].inbound_id == rows[0].inbound_id


def test_an_opt_out_after_the_tell_was_queued_is_honoured_when_it_is_due(
    engine: Engine,
    client: Any,
    dispatcher: Dispatcher,
    twilio: FakeTwilio,
    email: Email,
    clock: FakeClock,
) -> None:
    clock.set(LATE)
    text(client, ALEX, f"TELL {WORDS}")
    clock.set(LATE + timedelta(minutes=30))
    text(client, SAM, "STOP")
    with Ledger(engine).transaction() as tx:
        acts.unsubscribe(tx, household="alex-sam", partner="sam", channel="email", now=LATE)

    clock.set(MORNING)
    dispatcher.run_until_idle()
    dispatcher.run_until_idle()

    assert at_sam(twilio) == [] and email.bodies == []
    assert [(r.channel, r.status) for r in tells(engine)] == [("sms", "cancelled")]


def test_a_tell_the_provider_refuses_moves_to_the_next_channel(
    engine: Engine, client: Any, dispatcher: Dispatcher, twilio: FakeTwilio, email: Email
) -> None:
    twilio.opted_out.add(SAM)  # Sam blocked the number at the carrier: Twilio says 21610
    text(client, ALEX, f"TELL {WORDS}")
    dispatcher.run_until_idle()
    dispatcher.run_until_idle()

    assert email.bodies == [("sam", f"Alex: {WORDS}")]
    assert [(r.channel, r.status) for r in tells(engine)] == [("sms", "failed"), ("email", "sent")]


# ---------------------------------------------------------------------------- receipts, calendar


def test_twilios_status_callback_for_a_tell_is_recorded_on_it(
    engine: Engine, client: Any, dispatcher: Dispatcher, twilio: FakeTwilio
) -> None:
    text(client, ALEX, f"TELL {WORDS}")
    dispatcher.run_until_idle()
    [sent] = twilio.sent_to(SAM)
    form = {
        "MessageSid": sent["sid"],
        "MessageStatus": "delivered",
        "AccountSid": "AC" + "0" * 32,
        "From": SENDER,
        "To": SAM,
    }
    signature = RequestValidator(TOKEN).compute_signature(f"{PUBLIC}/twilio/status", form)
    answer = client.post(
        "/twilio/status",
        content=urlencode(form),
        headers={"Content-Type": FORM, "X-Twilio-Signature": signature},
    )
    assert answer.status_code < 300, answer.text
    [row] = tells(engine)
    assert (row.status, row.provider_status) == ("sent", "delivered")


def test_a_tell_twilio_calls_undelivered_moves_to_the_next_channel_once(
    engine: Engine, client: Any, dispatcher: Dispatcher, twilio: FakeTwilio, email: Email
) -> None:
    text(client, ALEX, f"TELL {WORDS}")
    dispatcher.run_until_idle()
    [sent] = twilio.sent_to(SAM)
    form = {
        "MessageSid": sent["sid"],
        "MessageStatus": "undelivered",
        "ErrorCode": "30003",
        "AccountSid": "AC" + "0" * 32,
        "From": SENDER,
        "To": SAM,
    }
    signature = RequestValidator(TOKEN).compute_signature(f"{PUBLIC}/twilio/status", form)
    headers = {"Content-Type": FORM, "X-Twilio-Signature": signature}
    for _ in range(2):  # Twilio retries a callback: the second is a repeat
        answer = client.post("/twilio/status", content=urlencode(form), headers=headers)
        assert answer.status_code < 300, answer.text
    dispatcher.run_until_idle()

    assert email.bodies == [("sam", f"Alex: {WORDS}")]
    rows = tells(engine)
    assert [(r.channel, r.status) for r in rows] == [("sms", "failed"), ("email", "sent")]
    assert rows[1].inbound_id == rows[0].inbound_id and rows[1].fallback_of == rows[0].id


def test_the_calendar_feeds_are_the_same_with_a_tell_in_the_ledger(
    engine: Engine, client: Any, dispatcher: Dispatcher, twilio: FakeTwilio
) -> None:
    paths = [
        LINKS.calendar_url("alex-sam", partner).removeprefix(PUBLIC)
        for partner in (None, "alex", "sam")
    ]
    before = [client.get(path) for path in paths]
    # Sam has no appreciation nudge: the TELL changes no occurrence, only adds a delivery.
    assert text(client, SAM, f"TELL {WORDS}") == "Sent to Alex."
    dispatcher.run_until_idle()
    assert [m["body"] for m in twilio.sent_to(ALEX)] == [f"Sam: {WORDS}"]
    after = [client.get(path) for path in paths]

    assert [a.status_code for a in after] == [200, 200, 200]
    assert [a.text for a in after] == [b.text for b in before]
    assert "VEVENT" in after[1].text  # Alex's feed has the appreciations: not an empty test


# ---------------------------------------------------------------------------- privacy


def test_the_words_are_in_no_log_record_and_not_in_metrics(
    engine: Engine,
    client: Any,
    dispatcher: Dispatcher,
    twilio: FakeTwilio,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "our secret word is pamplemousse"
    caplog.set_level(logging.DEBUG)
    text(client, ALEX, f"TELL {secret}")
    text(client, ALEX, "TELL " + "pamplemousse " * 30)  # too long: refused
    dispatcher.run_until_idle()
    metrics = client.get("/metrics").text

    assert at_sam(twilio) == [f"Alex: {secret}"]  # it did go: the test would see it
    records = caplog.records
    assert records, "nothing was logged at all"
    for record in records:
        shown = record.getMessage() + (record.exc_text or "") + repr(record.args)
        assert "pamplemousse" not in shown, record
    assert "pamplemousse" not in metrics
    [row] = tells(engine)
    [claim] = Ledger(engine).claims.read([row.id])
    assert claim.body == f"Alex: {secret}" and "pamplemousse" not in repr(claim)
    assert "pamplemousse" not in repr(claim.message())
    assert 'tend_inbound_replies_total{command="tell"}' in metrics
