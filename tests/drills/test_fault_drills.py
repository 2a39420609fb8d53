"""Fault drills: Tend's promises held against a misbehaving world, end to end.

Each drill drives the real code (planner, dispatcher or worker, the ``twilio`` library, the
FastAPI app under uvicorn) against real servers on loopback (the fake Twilio API of
``tests/support/fake_twilio.py``, an aiosmtpd server), with time on a clock the test moves:
nothing is slept through. Each prints one line of figures (``pytest -s`` shows it) for
docs/PERFORMANCE.md.

1. **Flaky provider.** A few hundred SMS fall due while the fake Twilio fails a seeded 30 %
   of creates: 500, 429 with ``Retry-After``, or a stall past the notifier's read timeout,
   after which the fake either has the message (the ambiguous case) or not. The clock steps
   until nothing is pending. Every message reaches the provider exactly once (a timed-out
   create the provider took is found by ``was_sent``, not created again); no attempt comes
   before the backoff the ledger promised, and each promise follows the real
   :class:`RetryPolicy` (and is at least the ``Retry-After``); a permanent error (21211,
   invalid number) is tried once, never again, and the message moves to e-mail.
2. **Six hours down.** A day of rituals with graces of 30 minutes, 2 hours (the default) and
   8 hours. The worker runs at 06:00, stops, and a new worker starts at 12:00: what is late
   by more than its grace is marked missed and never reaches the provider; what is late by
   at most its grace (the boundary included) is sent once; nothing due later is sent early.
3. **Forged and replayed webhooks.** ``tend web``'s app served by uvicorn on a loopback port:
   forged requests of every kind (no, empty or garbage signature, another token, another
   URL, a body changed after signing) are refused with 403 and record nothing; replays of
   signed replies and status callbacks, sent concurrently, are applied once and answered
   the same every time.
"""

from __future__ import annotations

import base64
import http.client
import itertools
import os
import random
import socket
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import uvicorn
from fake_twilio import FakeTwilio, RequestRecord
from smtp_server import SmtpServer
from sqlalchemy import Engine, func, select, update
from twilio.request_validator import RequestValidator

from config.loader import load_ritual_file
from notifiers.email import EmailNotifier, SmtpTarget
from notifiers.links import Links
from notifiers.registry import NotifierSet
from notifiers.sms import SmsNotifier
from notifiers.twilio_webhooks import TwilioWebhooks
from rituals.planning import Plan
from scheduler.dispatch.dispatcher import UNSURE, Dispatcher, RetryPolicy
from scheduler.ledger import Ledger
from scheduler.ledger.rows import (
    CompletionRow,
    DeliveryRow,
    InboundMessageRow,
    OccurrenceRow,
    PartnerRow,
    ProviderReceiptRow,
)
from scheduler.metrics import REGISTRY
from scheduler.planner import plan_horizon, sync_file
from scheduler.source import FileSource, SyncedSource
from scheduler.worker.worker import Worker, WorkerOptions
from tend.web import create_app

SENDER = "+15550001111"


class Clock:
    """The only time the code under test sees; the test moves it."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def set(self, when: datetime) -> None:
        with self._lock:
            self.now = when


def phone(household: int, partner: int) -> str:
    """A distinct E.164 number per partner: +1 555 2, the partner's digit, the household's."""
    return f"+15552{partner}{household:05d}"


def household_block(index: int, prefix: str) -> str:
    """Two partners, texted first and e-mailed when a text cannot go."""
    partners = "".join(
        f"""
  [[households.partners]]
  id = "p{p}"
  name = "P{p}"
  phone = "{phone(index, p)}"
  email = "p{p}.{prefix}{index:03d}@example.com"
  channels = ["sms", "email"]
"""
        for p in (1, 2)
    )
    return f'\n[[households]]\nid = "{prefix}{index:03d}"\n{partners}'


def write_file(path: Path, households: int, prefix: str, rituals: str) -> Path:
    text = 'timezone = "UTC"\n'
    text += "".join(household_block(i, prefix) for i in range(households))
    path.write_text(text + rituals, encoding="utf-8")
    return path


def plan_file(engine: Engine, path: Path, now: datetime, days: int) -> None:
    """Sync the file and plan its next days, as the worker does at `now`."""
    file = load_ritual_file(path, today=now).file
    synced = sync_file(Ledger(engine), file, now)
    plan_horizon(
        Ledger(engine),
        Plan(file),
        now,
        generation=synced.generation,
        changed=synced.changed,
        days=days,
    )


def rows(engine: Engine, *where: Any) -> list[dict[str, Any]]:
    """Delivery rows with their ritual and partner's phone and e-mail, by id."""
    query = (
        select(
            *DeliveryRow.__table__.c, OccurrenceRow.ritual_id, PartnerRow.phone, PartnerRow.email
        )
        .join(OccurrenceRow, OccurrenceRow.id == DeliveryRow.occurrence_id)
        .join(
            PartnerRow,
            (PartnerRow.household_id == DeliveryRow.household_id)
            & (PartnerRow.key == DeliveryRow.partner_key),
        )
        .where(*where)
        .order_by(DeliveryRow.id)
    )
    with engine.connect() as connection:
        found = [dict(r) for r in connection.execute(query).mappings()]
    for row in found:  # SQLite hands back naive datetimes; the ledger's are UTC
        for name in ("due_at", "next_attempt_at", "expires_at", "sent_at"):
            if row[name] is not None and row[name].tzinfo is None:
                row[name] = row[name].replace(tzinfo=UTC)
    return found


def count(engine: Engine, table: Any) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(table)).scalar_one())


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loopback only: a proxy from the environment must not sit between client and fake."""
    for name in list(os.environ):
        if name.upper().endswith("_PROXY"):
            monkeypatch.delenv(name)


# ================================================================ 1. a flaky provider

FLAKY_HOUSEHOLDS = 150  # 300 SMS deliveries, one per number
FLAKY_RATE = 0.3
FLAKY_SEED = 20260112
DUE = datetime(2026, 1, 12, 12, 0, tzinfo=UTC)  # Monday noon: everything falls due at once
READ_TIMEOUT = 0.4  # the notifier's timeout for one API call (seconds, real time)
STALL = 1.2  # the fake's "timeout": longer than READ_TIMEOUT
RETRY_AFTER = (2, 10, 30)  # seconds a 429 asks for
POLICY = RetryPolicy(max_attempts=12, base=timedelta(seconds=4), cap=timedelta(seconds=64))
STEP = timedelta(seconds=2)  # the clock's smallest move between dispatcher runs
MAX_STEPS = 400
# Numbers Twilio refuses as invalid (21211): permanent, never retried, moved to e-mail.
INVALID = {phone(7, 2), phone(42, 1), phone(99, 2), phone(123, 1)}

FLAKY_RITUAL = """
[[rituals]]
id = "check-in"
kind = "check_in"
schedule = "daily at 12:00"
grace = "12h"
"""


@dataclass
class Attempt:
    """One attempt at a delivery, as the ledger recorded it after the clock's step."""

    number: int  # 1-based
    at: datetime  # the clock when it was made
    status: str  # the delivery's status after it
    next_attempt_at: datetime | None  # the promise, when it went back to pending
    last_error: str | None


def ledger_state(engine: Engine) -> dict[int, dict[str, Any]]:
    return {r["id"]: r for r in rows(engine)}


def test_a_flaky_provider_gets_every_message_once_and_backoff_is_honoured(
    sqlite_engine: Engine, tmp_path: Path
) -> None:
    engine = sqlite_engine
    started = time.perf_counter()
    clock = Clock(DUE - timedelta(hours=3))
    path = write_file(tmp_path / "tend.toml", FLAKY_HOUSEHOLDS, "h", FLAKY_RITUAL)
    plan_file(engine, path, clock(), days=0)
    planned = ledger_state(engine).values()  # today's noon check-in, to everyone; no more
    assert len(planned) == 2 * FLAKY_HOUSEHOLDS
    assert {(r["due_at"], r["channel"]) for r in planned} == {(DUE, "sms")}

    with FakeTwilio(clock=clock) as twilio, SmtpServer() as smtp:
        twilio.invalid |= INVALID
        twilio.flaky(FLAKY_RATE, seed=FLAKY_SEED, retry_after=RETRY_AFTER, stall=STALL)
        sms = SmsNotifier(
            twilio.account_sid,
            twilio.auth_token,
            from_number=SENDER,
            api_base_url=twilio.base_url,
            timeout=READ_TIMEOUT,
            pool_size=16,
        )
        email = EmailNotifier(SmtpTarget.parse(smtp.url()), "Tend <tend@example.com>")
        dispatcher = Dispatcher(
            Ledger(engine),
            NotifierSet(overrides={"sms": sms, "email": email}),
            "drill-worker",
            clock=clock,
            senders=16,
            retry=POLICY,
            rng=random.Random(FLAKY_SEED),
        )
        history: dict[int, list[Attempt]] = defaultdict(list)
        before = ledger_state(engine)
        steps = 0
        try:
            clock.set(DUE)
            while True:
                dispatcher.run_until_idle()
                now = clock()
                after = ledger_state(engine)
                for delivery_id, row in after.items():
                    assert row["status"] != "sending", f"delivery {delivery_id} left in sending"
                    was = before.get(delivery_id)
                    done = row["attempts"] - (was["attempts"] if was else 0)
                    assert done in (0, 1), f"delivery {delivery_id}: {done} attempts in one step"
                    if not done:
                        continue
                    if was is not None:  # the ledger's promise, honoured
                        assert now >= was["next_attempt_at"], (
                            f"delivery {delivery_id}: attempt {row['attempts']} at {now}, "
                            f"promised not before {was['next_attempt_at']}"
                        )
                    history[delivery_id].append(
                        Attempt(
                            row["attempts"],
                            now,
                            row["status"],
                            row["next_attempt_at"] if row["status"] == "pending" else None,
                            row["last_error"],
                        )
                    )
                before = after
                waiting = [r for r in after.values() if r["status"] == "pending"]
                if not waiting:
                    break
                steps += 1
                assert steps < MAX_STEPS, f"not converged: {len(waiting)} still pending"
                clock.set(max(now + STEP, min(r["next_attempt_at"] for r in waiting)))
        finally:
            dispatcher.close()
            sms.close()
            email.close()
    # Read once the servers stopped: a stalled create is on record only when its stall ends.
    requests_seen = twilio.requests
    messages = twilio.messages
    mails = smtp.messages
    injected = twilio.injected
    assert twilio.server_errors == []

    final = ledger_state(engine)
    sms_rows = {r["phone"]: r for r in final.values() if r["channel"] == "sms"}
    email_rows = [r for r in final.values() if r["channel"] == "email"]
    by_number: dict[str, list[RequestRecord]] = defaultdict(list)
    for record in requests_seen:
        by_number[record.params.get("To", "")].append(record)

    # Everything delivered; each message exactly once at the provider.
    created = Counter(m["to"] for m in messages)
    valid = set(sms_rows) - INVALID
    assert set(created) == valid
    duplicates = sum(n - 1 for n in created.values())
    assert duplicates == 0, [n for n, c in created.items() if c > 1]
    sid_of = {m["to"]: m["sid"] for m in messages}
    for number in valid:
        row = sms_rows[number]
        assert row["status"] == "sent", (number, row["last_error"])
        assert row["provider_id"] == sid_of[number]

    # A permanent error: one attempt, failed, never retried; the partner gets an e-mail.
    for number in INVALID:
        row = sms_rows[number]
        assert (row["status"], row["attempts"]) == ("failed", 1)
        assert "21211" in row["last_error"]
        assert [(r.method, r.status) for r in by_number[number]] == [("POST", 400)]
        assert len(history[row["id"]]) == 1
    assert len(email_rows) == len(INVALID)
    assert {r["status"] for r in email_rows} == {"sent"}
    assert {r["fallback_of"] for r in email_rows} == {sms_rows[n]["id"] for n in INVALID}
    assert sorted(m.rcpt_tos[0] for m in mails) == sorted(sms_rows[n]["email"] for n in INVALID)

    # Backoff: each promise follows the policy (and Retry-After); the provider saw requests
    # only at the instants the ledger counted attempts (none before a promise, checked above).
    lookups_found = 0
    for number, row in sms_rows.items():
        attempts = history[row["id"]]
        assert [a.number for a in attempts] == list(range(1, len(attempts) + 1))
        assert {r.at for r in by_number[number]} == {a.at for a in attempts}, (
            number,
            attempts,
            by_number[number],
        )
        for attempt in attempts:
            if attempt.status != "pending":
                continue
            assert attempt.next_attempt_at is not None
            delay = attempt.next_attempt_at - attempt.at
            ceiling = min(POLICY.cap, POLICY.base * 2 ** (attempt.number - 1))
            said = [
                r.retry_after
                for r in by_number[number]
                if r.at == attempt.at and r.method == "POST" and r.retry_after is not None
            ]
            if said and "20429" in (attempt.last_error or ""):  # the client read the 429
                assert delay >= timedelta(seconds=said[0]), (number, attempt)
                assert delay <= max(ceiling, timedelta(seconds=said[0])), (number, attempt)
            else:
                assert ceiling / 2 <= delay <= ceiling, (number, attempt, ceiling)
        # After an unsure attempt, the next one asks the provider before any create, and
        # creates nothing when the provider had it.
        for earlier, later in itertools.pairwise(attempts):
            if not (earlier.last_error or "").startswith(UNSURE):
                continue
            at_later = [r for r in by_number[number] if r.at == later.at]
            assert at_later and at_later[0].method == "GET", (number, later)
            # A create answered 201 before: a stalled one the client gave up on.
            had_it = any(
                r.method == "POST" and r.status == 201 and r.at < later.at
                for r in by_number[number]
            )
            if had_it:
                assert all(r.method == "GET" for r in at_later), (number, later)
                lookups_found += 1

    attempts_made = sum(len(a) for a in history.values() if a)
    sms_attempts = sum(len(history[r["id"]]) for r in sms_rows.values())
    creates = sum(1 for r in requests_seen if r.method == "POST")
    lists = sum(1 for r in requests_seen if r.method == "GET")
    unsure = sum(
        1
        for r in sms_rows.values()
        for a in history[r["id"]]
        if (a.last_error or "").startswith(UNSURE)
    )
    wall = time.perf_counter() - started
    print(
        f"\nflaky-provider: deliveries={len(sms_rows)} sms_attempts={sms_attempts} "
        f"creates={creates} lists={lists} injected_500={injected['500']} "
        f"injected_429={injected['429']} "
        f"injected_timeouts={injected['timeout_taken'] + injected['timeout_lost']} "
        f"(taken={injected['timeout_taken']} lost={injected['timeout_lost']}) "
        f"unsure_attempts={unsure} found_by_lookup={lookups_found} "
        f"retries={sms_attempts - len(sms_rows)} duplicates={duplicates} "
        f"max_attempts={max(r['attempts'] for r in sms_rows.values())} "
        f"permanent={len(INVALID)}x1_attempt emails={len(mails)} "
        f"all_attempts={attempts_made} clock_steps={steps + 1} "
        f"simulated={(clock() - DUE).total_seconds():.0f}s wall={wall:.1f}s"
    )
    assert injected["500"] and injected["429"] and injected["timeout_taken"]
    assert injected["timeout_lost"]


# ================================================================ 2. six hours down

DOWN_HOUSEHOLDS = 10
DOWN_AT = datetime(2026, 1, 12, 6, 0, tzinfo=UTC)  # the worker runs, then stops
BACK_AT = DOWN_AT + timedelta(hours=6)  # a new worker starts
MIDNIGHT = datetime(2026, 1, 13, 0, 0, tzinfo=UTC)  # the end of the drill's day
# id, local time (the households are on UTC), grace (None: the default, 2 h)
DAY = [
    ("early", "05:00", None),  # 1 h late at 06:00: sent then
    ("breakfast", "07:00", None),  # 5 h late at 12:00: missed
    ("standup", "08:00", "8h"),  # 4 h late, grace 8 h: sent
    ("walk", "09:30", "30m"),  # missed
    ("coffee", "10:00", None),  # exactly 2 h late: the boundary, sent
    ("snack", "11:00", "30m"),  # 1 h late, grace 30 m: missed
    ("lunch", "11:45", "30m"),  # 15 m late: sent
    ("noon", "12:00", None),  # due now: sent
    ("tea", "15:00", "8h"),  # later: waits
    ("dinner", "19:00", "30m"),  # later: waits
]
DAY_RITUALS = "".join(
    f'\n[[rituals]]\nid = "{ritual}"\nkind = "check_in"\nschedule = "daily at {at}"\n'
    + (f'grace = "{grace}"\n' if grace else "")
    for ritual, at, grace in DAY
)
GRACE = {"30m": timedelta(minutes=30), "8h": timedelta(hours=8), None: timedelta(hours=2)}


def sms_to(twilio: FakeTwilio) -> SmsNotifier:
    return SmsNotifier(
        twilio.account_sid, twilio.auth_token, from_number=SENDER, api_base_url=twilio.base_url
    )


def run_worker(engine: Engine, path: Path, twilio: FakeTwilio, clock: Clock) -> Worker:
    """A worker process's object, started: it plans, settles and dispatches at `clock`."""
    ledger = Ledger(engine)
    worker = Worker(
        ledger,
        FileSource(path, ledger=ledger),
        NotifierSet(overrides={"sms": sms_to(twilio)}),
        clock=clock,
        options=WorkerOptions(horizon_days=1, senders=8),
    )
    worker.start()
    # Its wake-up job runs on APScheduler's real clock; dispatch here too, so the test knows
    # the run at this instant is over (one run at a time: the second finds nothing left).
    worker.dispatch()
    return worker


def test_after_six_hours_down_late_messages_are_missed_or_sent_by_their_grace(
    engine: Engine, tmp_path: Path
) -> None:
    started = time.perf_counter()
    path = write_file(tmp_path / "tend.toml", DOWN_HOUSEHOLDS, "d", DAY_RITUALS)
    clock = Clock(DOWN_AT)
    graces = {ritual: GRACE[grace] for ritual, _, grace in DAY}
    partners = 2 * DOWN_HOUSEHOLDS

    with FakeTwilio(clock=clock) as twilio:
        worker = run_worker(engine, path, twilio, clock)
        try:
            at_first = rows(engine)
            sent_first = [r for r in at_first if r["status"] == "sent"]
            assert {r["ritual_id"] for r in sent_first} == {"early"}
            assert len(sent_first) == partners
            assert len(twilio.messages) == partners
        finally:
            worker.stop()  # down from 06:00 to 12:00: nothing runs

        clock.set(BACK_AT)
        worker = run_worker(engine, path, twilio, clock)
        try:
            at_back = rows(engine)
            sent_back = len(twilio.messages) - partners
            # Nothing due later goes early: one second before tea, still nothing; at 15:00, tea.
            clock.set(datetime(2026, 1, 12, 14, 59, 59, tzinfo=UTC))
            worker.dispatch()
            assert len(twilio.messages) == partners + sent_back
            clock.set(datetime(2026, 1, 12, 15, 0, tzinfo=UTC))
            worker.dispatch()
            tea = [r for r in rows(engine) if r["ritual_id"] == "tea" and r["status"] == "sent"]
            tea_sent = [r for r in tea if r["due_at"] == clock()]
        finally:
            worker.stop()
        messages = twilio.messages
        posts = sum(1 for r in twilio.requests if r.method == "POST")
        assert twilio.server_errors == []

    missed, sent, later = [], [], []
    for row in at_back:
        if row["ritual_id"] == "early" and row["due_at"] < DOWN_AT:
            continue  # sent before the downtime
        late = BACK_AT - row["due_at"]
        if late > graces[row["ritual_id"]]:
            missed.append(row)
        elif late >= timedelta(0):
            sent.append(row)
        else:
            later.append(row)
    # The three groups, from the plan: 3 rituals missed, 4 sent, 2 today and all of
    # tomorrow waiting.
    assert Counter(r["ritual_id"] for r in missed) == dict.fromkeys(
        ("breakfast", "walk", "snack"), partners
    )
    assert Counter(r["ritual_id"] for r in sent) == dict.fromkeys(
        ("standup", "coffee", "lunch", "noon"), partners
    )
    today_later = [r for r in later if r["due_at"] < MIDNIGHT]
    assert Counter(r["ritual_id"] for r in today_later) == dict.fromkeys(
        ("tea", "dinner"), partners
    )

    for row in missed:
        assert (row["status"], row["attempts"], row["provider_id"]) == ("missed", 0, None), row
        assert "grace" in row["last_error"]
    for row in sent:
        assert (row["status"], row["attempts"]) == ("sent", 1), row
        assert row["sent_at"] == BACK_AT
    for row in later:
        assert (row["status"], row["attempts"]) == ("pending", 0), row

    # At the provider: each sent delivery once, and nothing else, ever.
    sids = Counter(m["sid"] for m in messages)
    recorded = {r["provider_id"] for r in sent_first + sent} | {r["provider_id"] for r in tea}
    assert set(sids) == recorded
    assert posts == len(messages) == len(recorded) == partners * 6
    assert sent_back == len(sent)
    assert len(tea_sent) == partners
    wall = time.perf_counter() - started
    print(
        f"\nsix-hours-down[{engine.dialect.name}]: planned_today="
        f"{sum(1 for r in at_back if r['due_at'] < MIDNIGHT)} "
        f"sent_at_06:00={len(sent_first)} missed={len(missed)} sent_at_12:00={len(sent)} "
        f"(boundary coffee={sum(1 for r in sent if r['ritual_id'] == 'coffee')}) "
        f"waiting_later={len(later)} sent_early=0 tea_at_15:00={len(tea_sent)} "
        f"provider_creates={posts} duplicates={sum(n - 1 for n in sids.values())} "
        f"wall={wall:.1f}s"
    )


# ================================================================ 3. forged and replayed webhooks

TOKEN = "0123456789abcdef0123456789abcdef"
PUBLIC = "https://tend.example.com"
FORM = "application/x-www-form-urlencoded"
WEB_HOUSEHOLDS = 5  # 10 partners, each with two open check-ins
WEB_PLANNED = datetime(2026, 1, 12, 0, 0, tzinfo=UTC)  # Monday
WEB_NOW = datetime(2026, 1, 13, 12, 30, tzinfo=UTC)  # Tuesday, 30 minutes after the check-in
MONDAY = datetime(2026, 1, 12, 12, 0, tzinfo=UTC)
TUESDAY = datetime(2026, 1, 13, 12, 0, tzinfo=UTC)
FORGED_SMS = 500
FORGED_STATUS = 100
DONES_PER_PARTNER = 5  # 10 partners x 5 = 50 distinct replies (under the rate limit of 20)
REPLAYS = 10  # each reply sent this many times, all at once
RECEIPT_REPLAYS = 5  # each status callback sent this many times
CLIENTS = 16  # concurrent HTTP clients

WEB_RITUAL = """
[[rituals]]
id = "check-in"
kind = "check_in"
schedule = "daily at 12:00"
"""

FORGERIES = (
    "no signature",
    "empty signature",
    "garbage signature",
    "another token",
    "another host",
    "the server's own URL",
    "http instead of https",
    "the other webhook's path",
    "a query string added",
    "body changed after signing",
    "sender changed after signing",
    "field added after signing",
    "field removed after signing",
    "another message's signature",
)

_sids = itertools.count(1)


def new_sid() -> str:
    return f"SM{next(_sids):032x}"


def sign(url: str, form: dict[str, str], token: str = TOKEN) -> str:
    return str(RequestValidator(token).compute_signature(url, form))


def reply_form(sender: str, body: str, sid: str) -> dict[str, str]:
    """The form Twilio posts for an incoming SMS."""
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "SmsMessageSid": sid,
        "AccountSid": "AC" + "0" * 32,
        "From": sender,
        "To": SENDER,
        "Body": body,
        "NumMedia": "0",
        "NumSegments": "1",
        "ApiVersion": "2010-04-01",
    }


def status_form(sid: str, status: str, to: str, error: str | None = None) -> dict[str, str]:
    form = {
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "AccountSid": "AC" + "0" * 32,
        "From": SENDER,
        "To": to,
        "ApiVersion": "2010-04-01",
    }
    if error:
        form["ErrorCode"] = error
    return form


@dataclass(frozen=True)
class Call:
    """One webhook request: the path (and query) it is posted to, its form, its headers."""

    target: str
    form: tuple[tuple[str, str], ...]
    headers: tuple[tuple[str, str], ...]
    key: str  # what the test groups answers by


def signed(path: str, form: dict[str, str], key: str) -> Call:
    signature = sign(PUBLIC + path, form)
    return Call(path, tuple(form.items()), (("X-Twilio-Signature", signature),), key)


def forged(path: str, form: dict[str, str], how: str, other: dict[str, str], base: str) -> Call:
    """`form` posted to `path` with a signature that is wrong in the way `how` says."""
    url, sent, target = PUBLIC + path, dict(form), path
    signature: str | None = sign(url, form)
    if how == "no signature":
        signature = None
    elif how == "empty signature":
        signature = ""
    elif how == "garbage signature":
        signature = base64.b64encode(random.Random(str(form)).randbytes(20)).decode()
    elif how == "another token":
        signature = sign(url, form, token="f" * 32)
    elif how == "another host":
        signature = sign("https://evil.example.com" + path, form)
    elif how == "the server's own URL":
        signature = sign(base + path, form)
    elif how == "http instead of https":
        signature = sign(url.replace("https://", "http://"), form)
    elif how == "the other webhook's path":
        other_path = "/twilio/status" if path == "/twilio/sms" else "/twilio/sms"
        signature = sign(PUBLIC + other_path, form)
    elif how == "a query string added":
        target = path + "?retry=1"
    elif how == "body changed after signing":
        if "Body" in sent:
            sent["Body"] = "SKIP"
        else:
            sent["MessageStatus"] = "failed" if sent["MessageStatus"] != "failed" else "delivered"
    elif how == "sender changed after signing":
        changed = other["From"] if other["From"] != sent["From"] else "+15559990000"
        sent["From"] = changed
    elif how == "field added after signing":
        sent["ErrorMessage" if "ErrorCode" in sent else "ErrorCode"] = "30007"
    elif how == "field removed after signing":
        sent.pop("ApiVersion")
    elif how == "another message's signature":
        signature = sign(url, other)
    else:
        raise AssertionError(how)
    headers = () if signature is None else (("X-Twilio-Signature", signature),)
    return Call(target, tuple(sent.items()), headers, how)


@contextmanager
def served(app: Any) -> Iterator[str]:
    """`app` under uvicorn on a free loopback port, in a thread; yields its base URL."""
    listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listening.bind(("127.0.0.1", 0))
    listening.listen(2048)
    port = listening.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        ws="none",
        timeout_keep_alive=300,  # the clients' connections stay open for the whole drill
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [listening]}, name="drill-uvicorn", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started:  # waiting for a condition, not for time to pass
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)
        listening.close()
        assert not thread.is_alive(), "uvicorn did not stop"


class Clients:
    """A pool of threads, each with its own keep-alive HTTP connection, posting calls at once."""

    def __init__(self, base: str, size: int) -> None:
        self.port = int(base.rsplit(":", 1)[1])
        self._local = threading.local()
        self._connections: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(size, thread_name_prefix="drill-client")

    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def _post(self, call: Call) -> tuple[int, bytes]:
        connection = self._connection()
        headers = {"Content-Type": FORM, **dict(call.headers)}
        connection.request("POST", call.target, body=urlencode(call.form), headers=headers)
        answer = connection.getresponse()
        return answer.status, answer.read()

    def post_all(self, calls: list[Call]) -> list[tuple[int, bytes]]:
        return list(self._pool.map(self._post, calls))

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for connection in self._connections:
            connection.close()


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def state(engine: Engine) -> dict[str, Any]:
    """Everything a webhook could have written."""
    with engine.connect() as connection:
        deliveries = connection.execute(
            select(
                DeliveryRow.id,
                DeliveryRow.channel,
                DeliveryRow.status,
                DeliveryRow.provider_status,
                DeliveryRow.fallback_of,
            ).order_by(DeliveryRow.id)
        ).all()
        occurrences = connection.execute(
            select(OccurrenceRow.id, OccurrenceRow.status).order_by(OccurrenceRow.id)
        ).all()
    return {
        "inbound": count(engine, InboundMessageRow),
        "completions": count(engine, CompletionRow),
        "receipts": count(engine, ProviderReceiptRow),
        "deliveries": [tuple(r) for r in deliveries],
        "occurrences": [tuple(r) for r in occurrences],
    }


def test_forged_webhooks_are_refused_and_replays_are_applied_once(
    engine: Engine, tmp_path: Path
) -> None:
    started = time.perf_counter()
    clock = Clock(WEB_NOW)
    path = write_file(tmp_path / "tend.toml", WEB_HOUSEHOLDS, "w", WEB_RITUAL)
    file = load_ritual_file(path, today=WEB_PLANNED).file
    plan_file(engine, path, WEB_PLANNED, days=3)
    with engine.begin() as connection:  # what was due went out: the partners wait on it
        connection.execute(
            update(DeliveryRow)
            .where(DeliveryRow.due_at <= WEB_NOW)
            .values(status="sent", sent_at=DeliveryRow.due_at, attempts=1)
        )
        for delivery_id in connection.execute(
            select(DeliveryRow.id).where(DeliveryRow.status == "sent")
        ).scalars():
            connection.execute(
                update(DeliveryRow)
                .where(DeliveryRow.id == delivery_id)
                .values(provider_id=f"SM{delivery_id:032x}")
            )
    sent = [r for r in rows(engine) if r["status"] == "sent"]
    assert len(sent) == 2 * 2 * WEB_HOUSEHOLDS  # Monday's and Tuesday's, to everyone
    partners = [(f"w{h:03d}", f"p{p}", phone(h, p)) for h in range(WEB_HOUSEHOLDS) for p in (1, 2)]

    app = create_app(  # as `tend web` builds it (tend.cli.service._serve), on the drill's clock
        Ledger(engine),
        clock=clock,
        links=Links(PUBLIC, "drill-secret"),
        twilio=TwilioWebhooks(TOKEN, PUBLIC),
        rituals=SyncedSource(Ledger(engine), fallback=file, clock=clock),
    )
    shuffle = random.Random(7).shuffle
    with served(app) as base:
        clients = Clients(base, CLIENTS)
        try:
            # ---- forged: every kind, at once, against the replies and the receipts routes
            before = state(engine)
            rejected_sms = metric(
                "tend_webhooks_rejected_total", route="/twilio/sms", reason="forged"
            )
            rejected_status = metric(
                "tend_webhooks_rejected_total", route="/twilio/status", reason="forged"
            )
            calls = []
            for i in range(FORGED_SMS):
                _, _, number = partners[i % len(partners)]
                _, _, neighbour = partners[(i + 1) % len(partners)]
                form = reply_form(number, "DONE", new_sid())
                other = reply_form(neighbour, "DONE", new_sid())
                how = FORGERIES[i % len(FORGERIES)]
                calls.append(forged("/twilio/sms", form, how, other, base))
            for i in range(FORGED_STATUS):
                row, neighbour_row = sent[i % len(sent)], sent[(i + 1) % len(sent)]
                form = status_form(row["provider_id"], "undelivered", row["phone"], "30003")
                other = status_form(neighbour_row["provider_id"], "undelivered", row["phone"])
                how = FORGERIES[i % len(FORGERIES)]
                calls.append(forged("/twilio/status", form, how, other, base))
            shuffle(calls)
            phase = time.perf_counter()
            answers = clients.post_all(calls)
            forged_seconds = time.perf_counter() - phase
            by_kind: dict[str, Counter[int]] = defaultdict(Counter)
            for call, (status, _) in zip(calls, answers, strict=True):
                by_kind[call.key][status] += 1
            let_through = {how: c for how, c in by_kind.items() if set(c) != {403}}
            assert not let_through, let_through
            assert state(engine) == before  # nothing recorded, nothing changed
            assert before["inbound"] == before["completions"] == before["receipts"] == 0
            assert (
                metric("tend_webhooks_rejected_total", route="/twilio/sms", reason="forged")
                - rejected_sms
                == FORGED_SMS
            )
            assert (
                metric("tend_webhooks_rejected_total", route="/twilio/status", reason="forged")
                - rejected_status
                == FORGED_STATUS
            )

            # ---- replies: 50 signed DONEs, each sent REPLAYS times, all at once
            confirms = metric("tend_inbound_replies_total", command="confirm")
            texts = ("DONE", "done", "Done!", "DONE.", "done")
            replies = [
                signed("/twilio/sms", reply_form(number, texts[k], new_sid()), f"{h}/{p}")
                for h, p, number in partners
                for k in range(DONES_PER_PARTNER)
            ]
            calls = [call for call in replies for _ in range(REPLAYS)]
            shuffle(calls)
            phase = time.perf_counter()
            answers = clients.post_all(calls)
            replies_seconds = time.perf_counter() - phase
            reply_answers: dict[str, set[tuple[int, bytes]]] = defaultdict(set)
            for call, answer in zip(calls, answers, strict=True):
                reply_answers[dict(call.form)["MessageSid"]].add(answer)

            # ---- receipts: each sent SMS reported RECEIPT_REPLAYS times (half of Tuesday's
            # undelivered), with a non-final "sent" for each in the mix, all at once
            undelivered = {r["provider_id"] for r in sent if r["due_at"] == TUESDAY}
            undelivered = set(sorted(undelivered)[:WEB_HOUSEHOLDS])
            receipts = []
            for row in sent:
                sid = row["provider_id"]
                final = "undelivered" if sid in undelivered else "delivered"
                error = "30003" if final == "undelivered" else None
                receipts.append(
                    signed("/twilio/status", status_form(sid, final, row["phone"], error), sid)
                )
                receipts.append(
                    signed("/twilio/status", status_form(sid, "sent", row["phone"]), sid)
                )
            calls = [call for call in receipts for _ in range(RECEIPT_REPLAYS)]
            shuffle(calls)
            phase = time.perf_counter()
            status_answers = Counter(status for status, _ in clients.post_all(calls))
            receipts_seconds = time.perf_counter() - phase
        finally:
            clients.close()

    # Replies: each MessageSid recorded once and answered the same every time. Each partner
    # has two open check-ins (Monday's and Tuesday's): whatever the interleaving of their
    # five DONEs, each partner confirms each once (the first DONE applied takes Tuesday's,
    # the next Monday's; the rest are told it is done already): never twice.
    assert len(reply_answers) == len(replies) == len(partners) * DONES_PER_PARTNER
    for sid, seen in reply_answers.items():
        assert len(seen) == 1, (sid, seen)
        [(status, body)] = seen
        assert status == 200, (sid, body)
        assert body.startswith(b"<?xml") and body.count(b"<Message>") == 1, body
    with engine.connect() as connection:
        inbound = connection.execute(
            select(
                InboundMessageRow.provider_id, InboundMessageRow.answer, InboundMessageRow.command
            )
        ).all()
        done = connection.execute(
            select(OccurrenceRow.household_id, CompletionRow.partner_key, OccurrenceRow.at).join(
                OccurrenceRow, OccurrenceRow.id == CompletionRow.occurrence_id
            )
        ).all()
    assert sorted(r.provider_id for r in inbound) == sorted(reply_answers)
    assert {r.command for r in inbound} == {"confirm"}
    assert Counter((r.household_id, r.partner_key, r.at.replace(tzinfo=UTC)) for r in done) == {
        (h, p, day): 1 for h, p, _ in partners for day in (MONDAY, TUESDAY)
    }
    assert metric("tend_inbound_replies_total", command="confirm") - confirms == len(replies)

    # Receipts: 204 every time; the first final word counts; an undelivered SMS moves to
    # e-mail once, however many times it is reported.
    assert status_answers == {204: len(receipts) * RECEIPT_REPLAYS}
    final = rows(engine)
    by_sid = {r["provider_id"]: r for r in final if r["channel"] == "sms" and r["provider_id"]}
    for sid, row in by_sid.items():
        if sid in undelivered:
            assert (row["status"], row["provider_status"]) == ("failed", "undelivered")
        else:
            assert (row["status"], row["provider_status"]) == ("sent", "delivered")
    fallbacks = [r for r in final if r["channel"] == "email"]
    assert sorted(r["fallback_of"] for r in fallbacks) == sorted(
        by_sid[sid]["id"] for sid in undelivered
    )
    assert count(engine, ProviderReceiptRow) == 0
    wall = time.perf_counter() - started
    print(
        f"\nwebhooks[{engine.dialect.name}]: forged_sms={FORGED_SMS} "
        f"forged_status={FORGED_STATUS} kinds={len(FORGERIES)} forged_rejected_403="
        f"{sum(c[403] for c in by_kind.values())} recorded_from_forged=0 "
        f"replies={len(replies)}x{REPLAYS}={len(replies) * REPLAYS} "
        f"inbound_rows={len(inbound)} completions={len(done)} "
        f"answers_per_sid=1 completions_per_partner_and_occurrence=1 "
        f"receipts={len(receipts)}x{RECEIPT_REPLAYS}={len(receipts) * RECEIPT_REPLAYS} "
        f"undelivered_fallbacks={len(fallbacks)} clients={CLIENTS} "
        f"seconds: forged={forged_seconds:.1f} replies={replies_seconds:.1f} "
        f"receipts={receipts_seconds:.1f} wall={wall:.1f}s"
    )
