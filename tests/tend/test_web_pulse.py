"""The pulse through the real webhook: signed requests to ``POST /twilio/sms``, the real
dispatcher sending through the real SMS notifier to the fake Twilio API on loopback, on
SQLite and on PostgreSQL.

Alex and Sam have a weekly check-in on Sundays at 19:00 (UTC) that asks for a 1-5 rating.
A rating counts as the partner's DONE, a second one replaces the first, one out of range
records nothing; PULSE answers the partner's own trend; with ``share_pulse`` each gets one
line with both ratings once both rated. A slip in the ratings makes the next check-in ask
the longer conversation, to both alike; after 4 such check-ins the support message goes out
once, and not again within 8 weeks. A rating is in no log record, not in /metrics and not on
an error page.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from fake_notifiers import FakeClock
from fake_twilio import FakeTwilio
from ledger_setup import planned_file
from ritual_files import couple_file, write_ritual_file
from signed_sms import PATH, PUBLIC, TOKEN
from signed_sms import signed as signed_form
from sqlalchemy import Engine, select, update
from typer.testing import CliRunner, Result

from config.model import RitualFile
from notifiers.links import Links
from notifiers.registry import NotifierSet
from notifiers.sms import SmsNotifier
from notifiers.twilio_webhooks import TwilioWebhooks
from rituals.planning import Plan
from rituals.pulse import DEFAULT_SUPPORT_MESSAGE, PULSE_LINE
from rituals.replies import RATING_RANGE
from scheduler.acts import acts
from scheduler.acts.wording import NOTHING_TO_RATE, STRANGER
from scheduler.dispatch.dispatcher import Dispatcher
from scheduler.ledger import Ledger
from scheduler.ledger.engine import make_engine
from scheduler.ledger.rows import (
    CompletionRow,
    DeliveryRow,
    InboundMessageRow,
    OccurrenceRow,
    PulseTurnRow,
    RatingRow,
)
from tend import cli
from tend.web import create_app

SENDER = "+15550001111"
LINKS = Links(PUBLIC, "pulse-test-secret-key-0123456789")

ALEX = "+15551230001"
SAM = "+15551230002"
STRANGER_NUMBER = "+15559990000"

PLANNED = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
FIRST_SUNDAY = datetime(2026, 1, 4, 19, 0, tzinfo=UTC)
WEEKS = 16  # check-ins planned

CHECK_IN = """
[[rituals]]
id = "check-in"
kind = "check_in"
schedule = "weekly on sun at 19:00"
pulse = true
"""
SUPPORT = "We notice check-ins have been hard lately. A couples counsellor can help."


def sunday(week: int) -> datetime:
    """The check-in of week `week` (0: the first)."""
    return FIRST_SUNDAY + timedelta(weeks=week)


_sids = itertools.count(1)


def new_sid() -> str:
    return f"SM{next(_sids):032x}"


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().endswith("_PROXY"):
            monkeypatch.delenv(name)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(sunday(0))


@pytest.fixture
def share() -> bool:
    return False


@pytest.fixture
def ritual_text(share: bool) -> str:
    text = couple_file(rituals=CHECK_IN + f'support_message = "{SUPPORT}"\n')
    if share:
        text = text.replace('id = "alex-sam"\n', 'id = "alex-sam"\nshare_pulse = true\n')
    return text


@pytest.fixture
def rituals(engine: Engine, tmp_path: Path, ritual_text: str) -> RitualFile:
    """The file, synced and planned for WEEKS weeks as the worker would."""
    path = write_ritual_file(tmp_path, ritual_text)
    return planned_file(engine, path, PLANNED, 7 * WEEKS)


@pytest.fixture
def twilio(clock: FakeClock) -> Iterator[FakeTwilio]:
    with FakeTwilio(clock=clock) as server:
        yield server
    assert server.server_errors == []


@pytest.fixture
def dispatcher(engine: Engine, twilio: FakeTwilio, clock: FakeClock) -> Iterator[Dispatcher]:
    sms = SmsNotifier(
        twilio.account_sid,
        twilio.auth_token,
        from_number=SENDER,
        api_base_url=twilio.base_url,
        timeout=2.0,
    )
    made = Dispatcher(Ledger(engine), NotifierSet(overrides={"sms": sms}), "worker-1", clock=clock)
    yield made
    made.close()
    sms.close()


def make_client(engine: Engine, rituals: RitualFile, clock: FakeClock, **options: Any) -> Any:
    from fastapi.testclient import TestClient

    app = create_app(
        Ledger(engine),
        clock=clock,
        links=LINKS,
        twilio=TwilioWebhooks(TOKEN, PUBLIC),
        rituals=lambda: rituals,
    )
    return TestClient(app, **options)


@pytest.fixture
def client(engine: Engine, rituals: RitualFile, clock: FakeClock) -> Iterator[Any]:
    with make_client(engine, rituals, clock) as test_client:
        yield test_client


# ---------------------------------------------------------------------------- helpers


def signed(sender: str, body: str, sid: str | None = None) -> tuple[str, dict[str, str]]:
    sid = sid or new_sid()
    form = {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": "AC" + "0" * 32,
        "From": sender,
        "To": SENDER,
        "Body": body,
        "NumMedia": "0",
    }
    return signed_form(form)


def text(client: Any, sender: str, body: str, sid: str | None = None) -> str:
    """POST an SMS to the webhook, signed as Twilio signs it; the answer's text."""
    content, headers = signed(sender, body, sid)
    answer = client.post(PATH, content=content, headers=headers)
    assert answer.status_code == 200, answer.text
    return "".join(child.text or "" for child in ET.fromstring(answer.content))


def send_week(dispatcher: Dispatcher, clock: FakeClock, week: int) -> None:
    """The check-in of `week` goes out; the clock is then an hour later (replies)."""
    clock.set(sunday(week))
    dispatcher.run_until_idle()
    clock.set(sunday(week) + timedelta(hours=1))


def ratings(engine: Engine) -> list[tuple[str, int, datetime]]:
    """(partner, rating, occurrence time), by occurrence then partner."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(RatingRow.partner_key, RatingRow.rating, OccurrenceRow.at)
            .join(OccurrenceRow, OccurrenceRow.id == RatingRow.occurrence_id)
            .order_by(OccurrenceRow.at, RatingRow.partner_key)
        ).all()
    return [(p, r, at.replace(tzinfo=UTC)) for p, r, at in rows]


def done_by(engine: Engine, partner: str) -> list[datetime]:
    with engine.connect() as connection:
        return [
            at.replace(tzinfo=UTC)
            for at in connection.execute(
                select(OccurrenceRow.at)
                .join(CompletionRow, CompletionRow.occurrence_id == OccurrenceRow.id)
                .where(CompletionRow.partner_key == partner, CompletionRow.action == "confirm")
            ).scalars()
        ]


def bodies(twilio: FakeTwilio, number: str) -> list[str]:
    return [m["body"] for m in twilio.sent_to(number)]


def shares(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        return list(
            connection.execute(select(DeliveryRow).where(DeliveryRow.role == "pulse")).all()
        )


# ---------------------------------------------------------------------------- a rating


def test_the_check_in_ends_with_the_pulse_line(
    client: Any, dispatcher: Dispatcher, twilio: FakeTwilio, clock: FakeClock
) -> None:
    send_week(dispatcher, clock, 0)
    [to_alex] = bodies(twilio, ALEX)
    [to_sam] = bodies(twilio, SAM)
    assert to_alex.endswith("\n" + PULSE_LINE) and to_sam.endswith("\n" + PULSE_LINE)
    assert "Reply DONE" not in to_alex  # the rating is the reply


def test_a_rating_is_recorded_and_counts_as_the_partners_done(
    engine: Engine, client: Any, dispatcher: Dispatcher, twilio: FakeTwilio, clock: FakeClock
) -> None:
    send_week(dispatcher, clock, 0)
    answer = text(client, ALEX, "4 - tired but good")

    assert answer.startswith(
        "Noted your 4 (only you see it). Marked the check in (Sun 4 Jan) as done."
    )
    assert ratings(engine) == [("alex", 4, sunday(0))]
    assert done_by(engine, "alex") == [sunday(0)]
    assert done_by(engine, "sam") == []
    dispatcher.run_until_idle()
    assert bodies(twilio, SAM) == [bodies(twilio, SAM)[0]]  # nothing more went to Sam
    assert shares(engine) == []


def test_a_second_rating_replaces_the_first(
    engine: Engine, client: Any, dispatcher: Dispatcher, clock: FakeClock
) -> None:
    send_week(dispatcher, clock, 0)
    text(client, ALEX, "PULSE 4")
    clock.set(clock.now + timedelta(minutes=5))
    assert text(client, ALEX, "2/5") == "Changed your rating to 2 (only you see it)."

    assert ratings(engine) == [("alex", 2, sunday(0))]
    assert done_by(engine, "alex") == [sunday(0)]  # once


@pytest.mark.parametrize("body", ["0", "6", "PULSE 9", "8/10"])
def test_a_rating_out_of_range_records_nothing_and_says_so(
    engine: Engine, client: Any, dispatcher: Dispatcher, clock: FakeClock, body: str
) -> None:
    send_week(dispatcher, clock, 0)
    assert text(client, ALEX, body) == RATING_RANGE
    assert ratings(engine) == []
    assert done_by(engine, "alex") == []


def test_a_rating_with_no_check_in_to_rate_records_nothing(
    engine: Engine, client: Any, clock: FakeClock
) -> None:
    clock.set(sunday(0) - timedelta(days=1))  # nothing sent yet
    assert text(client, ALEX, "4") == NOTHING_TO_RATE
    assert ratings(engine) == []


def test_a_rating_from_an_unknown_number_records_nothing(
    engine: Engine, client: Any, dispatcher: Dispatcher, clock: FakeClock
) -> None:
    send_week(dispatcher, clock, 0)
    assert text(client, STRANGER_NUMBER, "4") == STRANGER
    assert ratings(engine) == []
    assert done_by(engine, "alex") == [] and done_by(engine, "sam") == []


def test_a_replayed_rating_applies_once(
    engine: Engine, client: Any, dispatcher: Dispatcher, clock: FakeClock
) -> None:
    send_week(dispatcher, clock, 0)
    sid = new_sid()
    first = text(client, ALEX, "3", sid)
    text(client, ALEX, "5")  # a new rating in between
    again = text(client, ALEX, "3", sid)  # Twilio retried the first webhook

    assert again == first
    assert ratings(engine) == [("alex", 5, sunday(0))]  # the retry did not put 3 back
    with engine.connect() as connection:
        assert len(connection.execute(select(InboundMessageRow.id)).all()) == 2
        assert len(connection.execute(select(CompletionRow.id)).all()) == 1


def test_pulse_answers_the_partners_own_trend_and_nothing_of_the_other(
    client: Any, dispatcher: Dispatcher, clock: FakeClock
) -> None:
    assert text(client, ALEX, "PULSE").startswith("No ratings from you in the last 4 weeks.")
    for week, (alex, sam) in enumerate([(5, 1), (4, 1), (4, 1), (3, 1), (3, 1)]):
        send_week(dispatcher, clock, week)
        text(client, ALEX, str(alex))
        text(client, SAM, str(sam))
    assert text(client, ALEX, "pulse") == (
        "Your last 4 weeks: 4 4 3 3 (oldest first; only you see these)."
    )


# ---------------------------------------------------------------------------- share_pulse


@pytest.mark.parametrize("share", [True])
def test_with_share_pulse_each_gets_both_ratings_once_both_rated(
    engine: Engine, client: Any, dispatcher: Dispatcher, twilio: FakeTwilio, clock: FakeClock
) -> None:
    send_week(dispatcher, clock, 0)
    first = text(client, ALEX, "4")
    dispatcher.run_until_idle()
    assert "pulse:" not in first and shares(engine) == []  # Sam has not rated

    second = text(client, SAM, "3")
    assert second.endswith("Check-in pulse: Alex 4, Sam 3.")
    dispatcher.run_until_idle()
    assert bodies(twilio, ALEX)[1:] == ["Check-in pulse: Alex 4, Sam 3."]
    assert len(bodies(twilio, SAM)) == 1  # Sam had it in the answer

    text(client, SAM, "2")  # a change after both rated: no second line
    dispatcher.run_until_idle()
    assert bodies(twilio, ALEX)[1:] == ["Check-in pulse: Alex 4, Sam 3."]


def test_without_share_pulse_neither_ever_sees_the_others_rating(
    engine: Engine, client: Any, dispatcher: Dispatcher, twilio: FakeTwilio, clock: FakeClock
) -> None:
    send_week(dispatcher, clock, 0)
    assert "Alex" not in text(client, SAM, "3")
    assert "3" not in text(client, ALEX, "4").replace("Noted your 4", "")
    dispatcher.run_until_idle()
    assert shares(engine) == []
    assert len(bodies(twilio, ALEX)) == 1 and len(bodies(twilio, SAM)) == 1


# ---------------------------------------------------------------------------- a slip


def conversation(engine: Engine) -> list[tuple[datetime, bool, bool]]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(OccurrenceRow.at, PulseTurnRow.conversation, PulseTurnRow.support)
            .join(OccurrenceRow, OccurrenceRow.id == PulseTurnRow.occurrence_id)
            .order_by(OccurrenceRow.at)
        ).all()
    return [(at.replace(tzinfo=UTC), bool(c), bool(s)) for at, c, s in rows]


def test_two_low_ratings_make_the_next_check_in_a_longer_conversation_for_both(
    engine: Engine,
    rituals: RitualFile,
    client: Any,
    dispatcher: Dispatcher,
    twilio: FakeTwilio,
    clock: FakeClock,
) -> None:
    for week in (0, 1):
        send_week(dispatcher, clock, week)
        text(client, SAM, "2")  # Sam, twice low
        text(client, ALEX, "4")
    send_week(dispatcher, clock, 2)

    to_alex, to_sam = bodies(twilio, ALEX)[2], bodies(twilio, SAM)[2]
    plan = Plan(rituals)
    first, after = sunday(2).date(), sunday(3).date()
    [occurrence] = plan.occurrences("alex-sam", rituals.rituals[0], first, after)
    question = plan.conversation_item(occurrence)
    assert question in to_alex and question in to_sam
    assert to_alex.replace("Alex", "X") == to_sam.replace("Sam", "X")  # the same words
    for body in (to_alex, to_sam):
        assert body.endswith(PULSE_LINE)
        assert "2" not in body and "rated" not in body  # never who rated what
    assert occurrence.item not in to_alex
    # The weeks before asked their own deck's questions.
    assert all(question not in b for b in bodies(twilio, ALEX)[:2])
    assert [c for _, c, _ in conversation(engine)] == [False, False, True]


def test_a_slip_is_noticed_from_a_seeded_series_of_ratings(
    engine: Engine, client: Any, dispatcher: Dispatcher, twilio: FakeTwilio, clock: FakeClock
) -> None:
    # Alex's ratings fall: 5s for eight weeks, then 3s; Sam's stay at 4.
    seeded = [5] * 8 + [3] * 8
    for week in range(WEEKS):
        send_week(dispatcher, clock, week)
        text(client, ALEX, str(seeded[week]))
        text(client, SAM, "4")

    turns = conversation(engine)
    asked = [week for week, (_, c, _) in enumerate(turns) if c]
    supported = [week for week, (_, _, s) in enumerate(turns) if s]
    # Week 11's check-in follows three 3s (mean of 4 weeks 3.5 vs 12 weeks 4.45: not yet);
    # week 12's four (3.0 vs 4.33): a slip, until the 12-week mean has come down with them
    # (week 15: 3.0 vs 3.83).
    assert asked == [12, 13, 14]
    assert supported == []  # three in a row do not persist
    assert all(SUPPORT not in b for b in bodies(twilio, ALEX) + bodies(twilio, SAM))
    assert DEFAULT_SUPPORT_MESSAGE not in "".join(bodies(twilio, ALEX))
    plain = bodies(twilio, SAM)
    assert plain[12] != plain[11].replace(PULSE_LINE, "") and plain[15].endswith(PULSE_LINE)


def test_a_lasting_slip_sends_the_support_message_once_and_again_only_after_8_weeks(
    engine: Engine, client: Any, dispatcher: Dispatcher, twilio: FakeTwilio, clock: FakeClock
) -> None:
    for week in range(WEEKS):
        send_week(dispatcher, clock, week)
        text(client, ALEX, "1")  # low from the start: a slip from week 2 on

    supported = [week for week, (_, _, s) in enumerate(conversation(engine)) if s]
    assert supported == [5, 13]  # the 4th slipping check-in, then 8 weeks later
    sam = bodies(twilio, SAM)
    assert [week for week, b in enumerate(sam) if SUPPORT in b] == [5, 13]
    assert sam[5].endswith("\n\n" + SUPPORT) and PULSE_LINE in sam[5]
    assert [week for week, b in enumerate(bodies(twilio, ALEX)) if SUPPORT in b] == [5, 13]


# ---------------------------------------------------------------------------- privacy


def test_a_rating_is_in_no_log_record_and_metrics_has_counts_only(
    client: Any, dispatcher: Dispatcher, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    send_week(dispatcher, clock, 0)
    caplog.set_level(logging.DEBUG)
    caplog.clear()
    text(client, ALEX, "4 - worried about money")
    text(client, SAM, "PULSE 3")
    text(client, SAM, "PULSE")
    text(client, ALEX, "9")
    metrics = client.get("/metrics").text

    assert caplog.records, "nothing was logged at all"
    for record in caplog.records:
        shown = record.getMessage() + (record.exc_text or "") + repr(record.args)
        assert "worried" not in shown, record
        assert not re.search(r"\b[3-49]\b", shown), record
    assert "worried" not in metrics
    assert 'tend_inbound_replies_total{command="rate"}' in metrics
    assert 'tend_inbound_replies_total{command="pulse"}' in metrics
    assert "rating" not in metrics


def test_an_error_page_does_not_show_the_rating(
    engine: Engine,
    rituals: RitualFile,
    dispatcher: Dispatcher,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    send_week(dispatcher, clock, 0)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the ledger broke")

    monkeypatch.setattr(acts, "rate", broken)
    caplog.set_level(logging.DEBUG)
    with make_client(engine, rituals, clock, raise_server_exceptions=False) as client:
        content, headers = signed(ALEX, "4 - worried about money")
        answer = client.post(PATH, content=content, headers=headers)
    assert answer.status_code == 500
    assert "worried" not in answer.text and "4" not in answer.text
    for record in caplog.records:
        shown = record.getMessage() + (record.exc_text or "") + repr(record.args)
        assert "worried" not in shown, record
    assert ratings(engine) == []


# ---------------------------------------------------------------------------- tend reply


def tend(*args: str, url: str, config: Path, at: datetime) -> Result:
    engines: list[Engine] = []

    def make(cls: type[Ledger], url: str, **options: Any) -> Ledger:
        engines.append(make_engine(url, **options))
        return cls(engines[-1])

    with pytest.MonkeyPatch.context() as patch, time_machine.travel(at, tick=False):
        patch.setattr(Ledger, "at", classmethod(make))
        try:
            return CliRunner().invoke(
                cli.app, list(args), env={"DATABASE_URL": url, "TEND_CONFIG": str(config)}
            )
        finally:
            for engine in engines:
                engine.dispose()


def test_tend_reply_rates_through_the_same_code(
    engine: Engine,
    rituals: RitualFile,
    tmp_path: Path,
    ritual_text: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("TEND_CONFIG", "DATABASE_URL", "TEND_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    with engine.begin() as connection:
        connection.execute(
            update(DeliveryRow)
            .where(DeliveryRow.due_at <= sunday(0))
            .values(status="sent", sent_at=DeliveryRow.due_at)
        )
    config = write_ritual_file(tmp_path, ritual_text)
    url = engine.url.render_as_string(hide_password=False)
    at = sunday(0) + timedelta(hours=1)

    result = tend("reply", "--from", ALEX, "4", url=url, config=config, at=at)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Noted your 4 (only you see it).")
    assert ratings(engine) == [("alex", 4, sunday(0))]
    assert done_by(engine, "alex") == [sunday(0)]

    result = tend("reply", "--from", ALEX, "PULSE", url=url, config=config, at=at)
    assert result.stdout == "Your last 4 weeks: 4 (oldest first; only you see these).\n"
    result = tend("reply", "--from", ALEX, "7", url=url, config=config, at=at)
    assert result.stdout == RATING_RANGE + "\n"
