"""Crash drills: real ``tend worker`` processes killed with SIGKILL mid-send, and three
workers sharing one PostgreSQL ledger, against the fake Twilio API on loopback.

Exactly once is the promise (DESIGN.md, "Exactly once"): every due delivery reaches the
provider once, whatever happens to the worker. The drills check it where it matters, at
the provider: the fake Twilio server runs in the test process, the worker sends through the
real ``SmsNotifier`` (the ``twilio`` library over HTTP), configured only through the
environment, as in production.

- **kill -9** (SQLite, and PostgreSQL when ``TEND_TEST_POSTGRES_URL`` is set): 2,000 due
  SMS; a worker is started, killed with SIGKILL at a random point (during its start,
  planning or reconciling, or between two messages in the middle of a batch), started
  again, 20 times; a last worker then runs until everything is settled. The random points
  come from a seed printed with the figures; ``TEND_DRILL_SEED=N`` replays its choices
  (the timing of the processes themselves differs from run to run).
- **three workers** (PostgreSQL): 5,000 due SMS shared by three workers at once.
- **kill -9 around a give-up** (SQLite and PostgreSQL): Twilio refuses every text, so the
  message gives up on SMS and moves to e-mail (an aiosmtpd server on loopback); the worker
  is killed with the last SMS attempt in flight, then with the e-mail in flight, and the
  e-mail still arrives once and Twilio is not asked again after the give-up.
- **kill -9 with a TELL in flight** (SQLite and PostgreSQL): a partner's TELL, taken by the
  signed webhook in the other's quiet hours and replayed, is due at their end; the worker is
  killed with it at Twilio, and the next worker reconciles it: one text, never logged.

Each drill asserts 0 lost and 0 duplicated at the provider (counted per recipient and
body, every body being unique), a ledger that agrees (every due delivery ``sent``, with the
provider's id of its one message) and prints one line of figures (``pytest -s``) for
docs/PERFORMANCE.md.

Deliveries are due a few minutes in the past, inside the ritual's grace, so a worker sends
at once: no test waits for a schedule, only for work to finish, with deadlines. Most of a
worker's start-up is importing Tend; to fit 21 starts in the time a CI machine allows, the
workers are forked from a launcher process that imported Tend once (as a pre-forking
server does), and each runs ``tend.cli.main`` with ``worker --config FILE``: what
``python -m tend worker`` runs. Each is a process of its own, with its own connections,
killed by its pid.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fake_twilio import FailureSpec, FakeTwilio
from fastapi.testclient import TestClient
from ledger_setup import reset_postgres
from smtp_server import SmtpServer
from sqlalchemy import Engine, func, select
from twilio.request_validator import RequestValidator

from config.loader import load_ritual_file
from notifiers.twilio_webhooks import TwilioWebhooks
from scheduler.ledger import Ledger
from scheduler.ledger.engine import make_engine
from scheduler.ledger.rows import DeliveryRow, PartnerRow
from scheduler.ledger.schema import upgrade
from scheduler.planner import sync_file
from tend.web import create_app

ROOT = Path(__file__).resolve().parents[2]
SENDER = "+15550001111"
LATENCY = 0.003  # seconds the fake Twilio takes per request: kills land mid-request too
ROUNDS = 20
DELIVERIES = 2000
# Messages a round's worker may send at most before its kill: spread over the rounds so that
# the last worker still has work to do.
ROUND_SENDS = 2 * DELIVERIES // (ROUNDS + 8)
EARLY_KILLS = 0.2  # share of kills timed from the start, not from a message: start-up, plan
DEADLINE = 240.0  # seconds for a whole drill before it fails with the logs (takes 30-50 s)
MAX_HELD = DELIVERIES // 4  # claims a worker may hold at once: batches are far smaller
NAMES = ("Alex", "Sam", "Robin", "Kim", "Jo", "Noor", "Ana", "Lee")
# What a worker imports late, when it starts sending: the launcher imports it up front.
PRELOAD = (
    "notifiers.console",
    "notifiers.sms",
    "twilio.rest.api.v2010.account.message",
    "apscheduler.schedulers.background",
    "apscheduler.executors.pool",
    "apscheduler.triggers.date",
    "apscheduler.triggers.interval",
)

# Imports Tend once, then forks one `tend worker` per "start LOG" line: most of a worker's
# start-up is importing, and 21 starts must fit in a CI test. A child runs what
# `python -m tend worker --config FILE` runs, tend.cli.main, and exits as it would.
LAUNCHER = """\
import importlib, os, sys, threading, time
from tend.cli import main
for name in PRELOAD:
    try:
        importlib.import_module(name)
    except ImportError:
        pass
assert threading.active_count() == 1, "forking needs a launcher without threads"
config = sys.argv[1]
for line in sys.stdin:
    command, _, rest = line.rstrip("\\n").partition(" ")
    if command == "start":
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            log = os.open(rest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(log, 1)
            os.dup2(log, 2)
            os.close(log)
            os.close(null)
            sys.argv = ["tend", "worker", "--config", config]
            main()  # exits: SystemExit leaves this loop, and the interpreter exits as usual
            sys.exit(0)
        print(pid, flush=True)
    elif command == "wait":
        pid, seconds = rest.split()
        pid, deadline = int(pid), time.monotonic() + float(seconds)
        while True:
            done, status, usage = os.wait4(pid, os.WNOHANG)
            if done:
                cpu = usage.ru_utime + usage.ru_stime
                print(os.waitstatus_to_exitcode(status), cpu, flush=True)
                break
            if time.monotonic() > deadline:
                print("timeout", flush=True)
                break
            time.sleep(0.01)
""".replace("PRELOAD", repr(PRELOAD))


# ---------------------------------------------------------------------- the ritual file


def drill_file(path: Path, households: int, rituals: int, at: datetime) -> set[tuple[str, str]]:
    """Couples (two partners on SMS) with `rituals` weekly rituals each, all at `at`'s UTC
    day and wall-clock time; returns the (phone, body) of every message due, each unique.

    Made for many starts: weekly on that day, so a one-day horizon plans only the due
    deliveries (a daily ritual would plan tomorrow's too, and every start plans again);
    several rituals per partner and names that repeat, as reading the file costs per
    partner and per distinct name (each template is rendered with each name), and every
    start reads it twice. A (phone, body) pair is still unique to one delivery.
    """
    lines = ['timezone = "UTC"', ""]
    expected: set[tuple[str, str]] = set()
    n = 0
    for h in range(households):
        lines += ["[[households]]", f'id = "h{h:05d}"']
        for p in ("a", "b"):
            phone = f"+1555{2_000_000 + n:07d}"
            name = NAMES[n % len(NAMES)]
            lines += [
                "  [[households.partners]]",
                f'  id = "{p}"',
                f'  name = "{name}"',
                f'  phone = "{phone}"',
                '  channels = ["sms"]',
            ]
            expected |= {(phone, f"Drill {name} r{r:02d}") for r in range(rituals)}
            n += 1
        lines.append("")
    day = f"{at:%a}".lower()
    for r in range(rituals):
        lines += [
            "[[rituals]]",
            f'id = "r{r:02d}"',
            'kind = "custom"',
            f'schedule = "weekly on {day} at {at:%H:%M}"',
            f'message = "Drill {{{{ partner }}}} r{r:02d}"',
            "",
        ]
    path.write_text("\n".join(lines))
    return expected


# ---------------------------------------------------------------------- the provider


class Provider:
    """The fake Twilio, with every message it recorded counted as it arrives."""

    def __init__(self, fake: FakeTwilio) -> None:
        self.fake = fake
        self.changed = threading.Condition()
        self.recorded: list[tuple[str, str, str]] = []  # (to, body, sid)
        fake.on_recorded = self._recorded

    def _recorded(self, message: dict[str, Any]) -> None:
        with self.changed:
            self.recorded.append((message["to"], message["body"], message["sid"]))
            self.changed.notify_all()

    @property
    def count(self) -> int:
        with self.changed:
            return len(self.recorded)

    def keys(self) -> set[tuple[str, str]]:
        with self.changed:
            return {(to, body) for to, body, _ in self.recorded}

    def wait_for(self, count: int, timeout: float) -> bool:
        """Until `count` messages are recorded; False after `timeout` seconds."""
        with self.changed:
            return self.changed.wait_for(lambda: len(self.recorded) >= count, timeout)

    def tally(self, expected: set[tuple[str, str]]) -> dict[str, int]:
        with self.changed:
            sends = Counter((to, body) for to, body, _ in self.recorded)
        return {
            "sent_at_provider": len(sends),
            "duplicates": sum(n - 1 for n in sends.values()),
            "lost": len(expected - set(sends)),
            "unexpected": len(set(sends) - expected),
        }


@pytest.fixture
def provider() -> Iterator[Provider]:
    with FakeTwilio(latency=LATENCY) as fake:
        yield Provider(fake)


# ---------------------------------------------------------------------- the workers


class Worker:
    """One `tend worker` process, forked by the launcher: a pid, signalled directly."""

    def __init__(self, workers: Workers, pid: int, log: Path) -> None:
        self.workers = workers
        self.pid = pid
        self.log = log
        self.code: int | None = None
        self.cpu = 0.0  # seconds of CPU it used, once it exited

    def send_signal(self, signum: int) -> None:
        if self.code is None:
            os.kill(self.pid, signum)

    def wait(self, timeout: float = 30.0) -> int:
        """The exit code (minus the signal's number when killed by one)."""
        if self.code is None:
            self.code, self.cpu = self.workers.wait(self.pid, timeout)
        return self.code


class Workers:
    """`tend worker` processes on one ledger, forked from a launcher that imported Tend.

    The launcher is a subprocess that imports ``tend.cli`` once, then, for each line
    ``start LOG`` on its stdin, forks a child that runs ``tend worker --config FILE``
    through ``tend.cli.main`` (what ``python -m tend worker`` runs) with its output in LOG,
    and answers the child's pid; ``wait PID SECONDS`` answers its exit code.
    """

    def __init__(self, tmp_path: Path, url: str, config: Path, fake: FakeTwilio, **env: str):
        self.tmp_path = tmp_path
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("TWILIO_", "SMTP_", "TEND_")) and k != "DATABASE_URL"
        }
        environment = {
            **base,
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": url,
            "TWILIO_ACCOUNT_SID": fake.account_sid,
            "TWILIO_AUTH_TOKEN": fake.auth_token,
            "TWILIO_FROM": SENDER,
            "TWILIO_API_BASE_URL": fake.base_url,
            "TEND_HORIZON_DAYS": "1",
            # macOS: a forked child may not initialise Objective-C classes (the proxy lookup
            # of `requests` does) unless told to; the usual setting of pre-forking servers.
            "OBJC_DISABLE_INITIALIZE_FORK_SAFETY": "YES",
            **env,
        }
        with (tmp_path / "launcher.log").open("wb") as log:
            self.launcher = subprocess.Popen(
                [sys.executable, "-c", LAUNCHER, str(config)],
                cwd=tmp_path,  # no .env from the repository
                env=environment,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                bufsize=1,
            )
        self.started: list[Worker] = []

    def _ask(self, line: str) -> str:
        assert self.launcher.stdin is not None and self.launcher.stdout is not None
        self.launcher.stdin.write(line + "\n")
        self.launcher.stdin.flush()
        answer = self.launcher.stdout.readline().strip()
        if not answer:
            launcher = (self.tmp_path / "launcher.log").read_text(errors="replace")
            raise RuntimeError(f"the launcher stopped:\n{launcher[-3000:]}")
        return answer

    def start(self) -> Worker:
        log = self.tmp_path / f"worker-{len(self.started):02d}.log"
        worker = Worker(self, int(self._ask(f"start {log}")), log)
        self.started.append(worker)
        return worker

    def wait(self, pid: int, timeout: float) -> tuple[int, float]:
        """The exit code and CPU seconds of the worker `pid`."""
        answer = self._ask(f"wait {pid} {timeout}")
        if answer == "timeout":
            raise subprocess.TimeoutExpired(f"tend worker (pid {pid})", timeout)
        code, cpu = answer.split()
        return int(code), float(cpu)

    @property
    def cpu(self) -> float:
        """CPU seconds of the workers that exited."""
        return sum(w.cpu for w in self.started)

    def logs(self, tail: int = 2500) -> str:
        return "\n".join(
            f"--- {w.log.name} (pid {w.pid}, exit {w.code})\n"
            + w.log.read_text(errors="replace")[-tail:]
            for w in self.started
        )

    def sent_by(self) -> dict[int, int]:
        """Messages each worker's log says it sent (`... sent (SM...)`), by pid."""
        return {
            w.pid: len(re.findall(r" sent \(SM[0-9a-f]+\)", w.log.read_text(errors="replace")))
            for w in self.started
        }

    def close(self) -> None:
        for worker in self.started:
            if worker.code is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGKILL)
                with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                    worker.wait()
        if self.launcher.stdin is not None:
            self.launcher.stdin.close()  # the launcher's loop ends
        try:
            self.launcher.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.launcher.kill()
            self.launcher.wait()
        if self.launcher.stdout is not None:
            self.launcher.stdout.close()


@pytest.fixture
def workers_made() -> Iterator[list[Workers]]:
    made: list[Workers] = []
    yield made
    for workers in made:
        workers.close()


# ---------------------------------------------------------------------- the ledger


def due_rows(engine: Engine, before: datetime) -> list[Any]:
    """Every delivery due by `before`, with its status, recipient's phone and provider id."""
    query = (
        select(
            DeliveryRow.id,
            DeliveryRow.status,
            PartnerRow.phone,
            DeliveryRow.body,
            DeliveryRow.provider_id,
        )
        .join(
            PartnerRow,
            (PartnerRow.household_id == DeliveryRow.household_id)
            & (PartnerRow.key == DeliveryRow.partner_key),
        )
        .where(DeliveryRow.due_at <= before)
    )
    with engine.connect() as connection:
        return list(connection.execute(query).all())


def left_sending(engine: Engine, pid: int) -> list[Any]:
    """(phone, body) of the deliveries the worker `pid` left in `sending`."""
    query = (
        select(PartnerRow.phone, DeliveryRow.body)
        .join(
            PartnerRow,
            (PartnerRow.household_id == DeliveryRow.household_id)
            & (PartnerRow.key == DeliveryRow.partner_key),
        )
        .where(DeliveryRow.status == "sending", DeliveryRow.claimed_by.like(f"%:{pid}:%"))
    )
    with engine.connect() as connection:
        return list(connection.execute(query).all())


def statuses(engine: Engine, before: datetime) -> Counter[str]:
    query = (
        select(DeliveryRow.status, func.count())
        .where(DeliveryRow.due_at <= before)
        .group_by(DeliveryRow.status)
    )
    with engine.connect() as connection:
        return Counter(dict(connection.execute(query).tuples().all()))


def wait_started(worker: Worker, deadline: float, workers: Workers) -> None:
    while "started (leader" not in worker.log.read_text(errors="replace"):
        if time.monotonic() > deadline:
            pytest.fail(f"the worker did not start\n{workers.logs()}")
        time.sleep(0.05)


def wait_all_sent(
    engine: Engine, started: datetime, count: int, deadline: float, workers: Workers, context: str
) -> None:
    """Until `count` deliveries due by `started` are `sent`; fails with the logs at `deadline`."""
    while (found := statuses(engine, started)).get("sent", 0) < count:
        if time.monotonic() > deadline:
            pytest.fail(f"{context}\ntimed out: the ledger has {dict(found)}\n{workers.logs()}")
        time.sleep(0.05)


def assert_exactly_once(
    provider: Provider,
    engine: Engine,
    started: datetime,
    expected: set[tuple[str, str]],
    tally: dict[str, int],
    context: str,
) -> None:
    assert tally["duplicates"] == 0, f"{context}: duplicated at the provider: {tally}"
    assert tally["lost"] == 0, f"{context}: lost: {sorted(expected - provider.keys())[:5]}"
    assert tally["unexpected"] == 0, f"{context}: unexpected messages: {tally}"
    rows = due_rows(engine, started)
    assert len(rows) == len(expected), f"{context}: the ledger has {len(rows)} due deliveries"
    by_status = Counter(row.status for row in rows)
    assert by_status == {"sent": len(expected)}, f"{context}: ledger statuses {by_status}"
    assert {(row.phone, row.body) for row in rows} == expected, context
    sids = {sid for _, _, sid in provider.recorded}
    recorded = Counter(row.provider_id for row in rows)
    assert set(recorded) == sids, f"{context}: the ledger's provider ids are not the messages'"
    assert max(recorded.values()) == 1, f"{context}: a provider id recorded twice"


# ---------------------------------------------------------------------- kill -9


@dataclass
class Figures:
    kills: int = 0
    mid_send: int = 0  # kills that left some of the worker's claims in `sending`
    interrupted: int = 0  # claims the killed workers left in `sending`
    provider_had: int = 0  # of those, messages the provider had already recorded
    rounds: list[str] = field(default_factory=list)


def kill_drill(
    tmp_path: Path,
    url: str,
    provider: Provider,
    workers_made: list[Workers],
    label: str,
    **env: str,
) -> None:
    seed = int(os.environ.get("TEND_DRILL_SEED") or random.SystemRandom().randrange(2**32))
    rng = random.Random(seed)
    print(f"\ncrash drill {label}: seed {seed} (replay: TEND_DRILL_SEED={seed})")
    wall = time.monotonic()
    deadline = wall + DEADLINE
    started = datetime.now(UTC)
    config = tmp_path / "tend.toml"
    expected = drill_file(config, DELIVERIES // 10, 5, started - timedelta(minutes=5))
    assert len(expected) == DELIVERIES

    engine = make_engine(url)
    try:
        if engine.dialect.name == "postgresql":
            reset_postgres(engine)
        upgrade(engine)  # `tend db upgrade`, the release phase: kills never land mid-migration
        workers = Workers(tmp_path, url, config, provider.fake, **env)
        workers_made.append(workers)
        figures = Figures()
        for round_ in range(1, ROUNDS + 1):
            before = provider.count
            round_started = time.monotonic()
            worker = workers.start()
            if rng.random() < EARLY_KILLS:
                # Within `pause` of the start, or sooner if a round's worth of messages went
                # out first: a fast worker would otherwise send most of the work in one
                # early round and leave the later kills nothing to interrupt.
                pause = rng.uniform(0.0, 1.5)
                provider.wait_for(min(before + ROUND_SENDS, DELIVERIES), pause)
                when = f"{pause:.2f}s after start (or {ROUND_SENDS} messages)"
            else:
                target = rng.randint(1, ROUND_SENDS)
                extra = rng.uniform(0.0, 0.05)
                left = max(1.0, deadline - time.monotonic())
                if not provider.wait_for(min(before + target, DELIVERIES), left):
                    pytest.fail(f"seed {seed}: round {round_}: no sends\n{workers.logs()}")
                time.sleep(extra)
                when = f"{target}th message + {extra * 1000:.0f}ms"
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            figures.kills += 1
            sending = left_sending(engine, worker.pid)  # worker ids: host:pid:random
            had = provider.keys()
            figures.interrupted += len(sending)
            figures.provider_had += sum((row.phone, row.body) in had for row in sending)
            figures.mid_send += bool(sending)
            figures.rounds.append(
                f"round {round_}: kill at {when}: {provider.count - before} sent, "
                f"{len(sending)} of its claims left sending, "
                f"{time.monotonic() - round_started:.1f} s, worker CPU {worker.cpu:.1f} s"
            )
            # A worker claims a small batch at a time (4 per sender; with its sends not yet
            # recorded, a few hundred at most): one holding most of the due work leaves it
            # all to wait for the claim timeout, and to be looked up one by one.
            assert len(sending) <= MAX_HELD, (
                f"seed {seed}: the killed worker held {len(sending)} claims; the claim's "
                f"LIMIT was not honoured\n" + "\n".join(figures.rounds)
            )

        final = workers.start()
        context = f"seed {seed}\n" + "\n".join(figures.rounds)
        wait_all_sent(engine, started, DELIVERIES, deadline, workers, context)
        # The stop is graceful once the worker has started (its handlers are in place): the
        # others may have sent everything before it got that far.
        wait_started(final, deadline, workers)
        final.send_signal(signal.SIGTERM)
        assert final.wait(timeout=20) == 0, workers.logs()
        seconds = time.monotonic() - wall

        tally = provider.tally(expected)
        print(
            f"crash drill {label}: seed={seed} rounds={ROUNDS} kills={figures.kills} "
            f"kills_mid_send={figures.mid_send} claims_interrupted={figures.interrupted} "
            f"provider_had_them={figures.provider_had} deliveries={DELIVERIES} "
            f"sent_at_provider={tally['sent_at_provider']} duplicates={tally['duplicates']} "
            f"lost={tally['lost']} worker_cpu={workers.cpu:.1f}s wall={seconds:.1f}s"
        )
        assert_exactly_once(provider, engine, started, expected, tally, context)
        # The drill must have hit what it is for: kills while claims were in flight.
        assert figures.mid_send >= 5, f"too few kills landed mid-send: {context}"
        assert provider.fake.server_errors == []
    finally:
        engine.dispose()


def test_kill_9_twenty_times_on_sqlite_sends_2000_sms_exactly_once(
    tmp_path: Path, provider: Provider, workers_made: list[Workers]
) -> None:
    # One worker; at start it reconciles every claim left in `sending` with Twilio's list.
    kill_drill(tmp_path, f"sqlite:///{tmp_path}/tend.db", provider, workers_made, "sqlite")


def test_kill_9_twenty_times_on_postgres_sends_2000_sms_exactly_once(
    tmp_path: Path, postgres_url: str, provider: Provider, workers_made: list[Workers]
) -> None:
    # A claim left in `sending` is reconciled once older than the claim timeout (any
    # worker, every half timeout): short here, so the drill does not wait minutes.
    kill_drill(
        tmp_path,
        postgres_url,
        provider,
        workers_made,
        "postgres",
        TEND_CLAIM_TIMEOUT_SECONDS="3",
    )


# ---------------------------------------------------------------------- three workers


def test_three_workers_on_postgres_send_5000_sms_exactly_once(
    tmp_path: Path, postgres_url: str, provider: Provider, workers_made: list[Workers]
) -> None:
    total = 5000
    wall = time.monotonic()
    deadline = wall + DEADLINE
    started = datetime.now(UTC)
    config = tmp_path / "tend.toml"
    expected = drill_file(config, total // 10, 5, started - timedelta(minutes=5))
    assert len(expected) == total
    engine = make_engine(postgres_url)
    try:
        reset_postgres(engine)
        upgrade(engine)
        workers = Workers(tmp_path, postgres_url, config, provider.fake)
        workers_made.append(workers)
        running = [workers.start() for _ in range(3)]
        wait_all_sent(engine, started, total, deadline, workers, "three workers")
        for process in running:
            process.send_signal(signal.SIGTERM)
        codes = [process.wait(timeout=20) for process in running]
        seconds = time.monotonic() - wall
        assert codes == [0, 0, 0], workers.logs()

        tally = provider.tally(expected)
        senders = workers.sent_by()
        print(
            f"\nthree workers postgres: workers=3 deliveries={total} "
            f"sent_at_provider={tally['sent_at_provider']} duplicates={tally['duplicates']} "
            f"lost={tally['lost']} per_worker={sorted(senders.values(), reverse=True)} "
            f"worker_cpu={workers.cpu:.1f}s wall={seconds:.1f}s"
        )
        assert_exactly_once(provider, engine, started, expected, tally, "three workers")
        assert sum(1 for n in senders.values() if n > 0) >= 2, f"one worker sent all: {senders}"
    finally:
        engine.dispose()


# ---------------------------------------------------------------------- kill -9 around a give-up

GIVE_UP_PHONE = "+15552990001"
GIVE_UP_EMAIL = "robin@example.com"
STALL = 30.0  # seconds a held send waits: far longer than a kill takes to land


def give_up_file(path: Path, at: datetime) -> None:
    """One partner, texted first and e-mailed when a text cannot go, with a check-in due at
    `at` (a few minutes ago: inside its grace)."""
    day = f"{at:%a}".lower()
    path.write_text(
        f"""timezone = "UTC"

[[households]]
id = "robin-kim"
  [[households.partners]]
  id = "robin"
  name = "Robin"
  phone = "{GIVE_UP_PHONE}"
  email = "{GIVE_UP_EMAIL}"
  channels = ["sms", "email"]

[[rituals]]
id = "check-in"
kind = "check_in"
schedule = "weekly on {day} at {at:%H:%M}"
"""
    )


def until(condition: Any, deadline: float, what: str, workers: Workers) -> None:
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}\n{workers.logs()}")
        time.sleep(0.02)


def by_channel(engine: Engine) -> dict[str, Any]:
    """The partner's deliveries due so far, by channel (one each at most)."""
    query = select(
        DeliveryRow.channel,
        DeliveryRow.status,
        DeliveryRow.last_error,
        DeliveryRow.fallback_of,
        DeliveryRow.id,
    )
    with engine.connect() as connection:
        return {row.channel: row for row in connection.execute(query)}


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_kill_9_around_a_give_up_sends_the_email_once_and_the_sms_no_more(
    tmp_path: Path,
    provider: Provider,
    workers_made: list[Workers],
    database: str,
    request: pytest.FixtureRequest,
) -> None:
    """Twilio refuses every text with a 500 and Tend gives up after one attempt
    (``TEND_MAX_ATTEMPTS=1``): the message moves to e-mail. The worker is killed twice, in
    the two places that matter: while the last SMS attempt is in flight (the give-up not
    yet recorded), and after the give-up and its fallback were recorded, while the e-mail
    is in flight. Workers started again send the e-mail exactly once, and Twilio hears no
    more after the give-up."""
    url = (
        str(request.getfixturevalue("postgres_url"))
        if database == "postgres"
        else f"sqlite:///{tmp_path}/tend.db"
    )
    deadline = time.monotonic() + DEADLINE / 2
    started = datetime.now(UTC)
    config = tmp_path / "tend.toml"
    give_up_file(config, started - timedelta(minutes=5))
    creates = threading.Event()
    attempts: list[str] = []

    def refuse(form: dict[str, str]) -> FailureSpec:
        attempts.append(form["To"])
        creates.set()
        # The first attempt is held in flight, to be killed; later ones fail at once.
        return FailureSpec(500, stall=STALL if len(attempts) == 1 else 0.0)

    provider.fake.on_create = refuse
    engine = make_engine(url)
    with SmtpServer() as smtp:
        try:
            if database == "postgres":
                reset_postgres(engine)
            upgrade(engine)
            workers = Workers(
                tmp_path,
                url,
                config,
                provider.fake,
                TEND_MAX_ATTEMPTS="1",
                TEND_CLAIM_TIMEOUT_SECONDS="2",
                SMTP_URL=smtp.url(),
                SMTP_FROM="Tend <tend@example.com>",
                TEND_PUBLIC_URL="https://tend.example.com",
                TEND_SECRET_KEY="drill-secret-key-0123456789",
            )
            workers_made.append(workers)

            # 1. Killed while its one SMS attempt is in flight: nothing recorded yet.
            first = workers.start()
            until(creates.is_set, deadline, "the SMS attempt", workers)
            first.send_signal(signal.SIGKILL)
            first.wait()
            rows = by_channel(engine)
            assert set(rows) == {"sms"} and rows["sms"].status == "sending", rows

            # 2. Killed after the give-up and its fallback, with the e-mail in flight.
            smtp.stall_next_mail(STALL)
            second = workers.start()
            until(smtp.stalled.is_set, deadline, "the e-mail in flight", workers)
            second.send_signal(signal.SIGKILL)
            second.wait()
            rows = by_channel(engine)
            assert rows["sms"].status == "failed", rows
            assert rows["sms"].last_error.startswith("gave up after 1 attempts"), rows
            assert rows["email"].fallback_of == rows["sms"].id
            assert rows["email"].status == "sending", rows
            tried = len(attempts)

            # 3. Started again: the e-mail goes out once; the SMS is not tried again.
            third = workers.start()
            until(
                lambda: by_channel(engine)["email"].status == "sent",
                deadline,
                "the e-mail sent",
                workers,
            )
            wait_started(third, deadline, workers)
            third.send_signal(signal.SIGTERM)
            assert third.wait(timeout=20) == 0, workers.logs()

            assert tried == 2  # the killed attempt, then the one that gave up
            assert len(attempts) == tried, "Twilio was asked again after the give-up"
            assert provider.fake.messages == []
            received = [m for m in smtp.messages if GIVE_UP_EMAIL in m.rcpt_tos]
            assert len(received) == 1, f"{len(received)} e-mails\n{workers.logs()}"
            assert {r.channel: r.status for r in by_channel(engine).values()} == {
                "sms": "failed",
                "email": "sent",
            }
            assert provider.fake.server_errors == []
        finally:
            engine.dispose()


# ---------------------------------------------------------------------- kill -9 with a TELL

TELL_TOKEN = "0123456789abcdef0123456789abcdef"
TELL_PUBLIC = "https://tend.example.com"
TELL_ALEX = "+15552990011"
TELL_SAM = "+15552990012"
TELL_WORDS = "Thank you for this week, you carried us"


def tell_file(path: Path, quiet: str, at: datetime) -> None:
    """Alex and Sam by SMS, Sam with `quiet` hours; an appreciation nudge days away (after
    the worker's one-day horizon: the TELL is the only message)."""
    day = f"{at + timedelta(days=3):%a}".lower()
    path.write_text(
        f"""timezone = "UTC"

[[households]]
id = "alex-sam"
  [[households.partners]]
  id = "alex"
  name = "Alex"
  phone = "{TELL_ALEX}"
  channels = ["sms"]

  [[households.partners]]
  id = "sam"
  name = "Sam"
  phone = "{TELL_SAM}"
  channels = ["sms"]
  quiet_hours = "{quiet}"

[[rituals]]
id = "appreciation"
kind = "appreciation"
schedule = "weekly on {day} at 12:00"
"""
    )


def tell_rows(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.execute(select(DeliveryRow).where(DeliveryRow.role == "tell")))


@pytest.mark.parametrize("database", ["sqlite", "postgres"])
def test_kill_9_with_a_tell_in_flight_passes_it_on_once_at_the_end_of_quiet_hours(
    tmp_path: Path,
    provider: Provider,
    workers_made: list[Workers],
    database: str,
    request: pytest.FixtureRequest,
) -> None:
    """Alex's TELL comes through the signed webhook an hour before Sam's quiet hours end: it
    is due at their end (a couple of minutes ago, so a worker sends it at once, inside its
    grace); a replay of the webhook adds nothing. The worker is killed with the text in
    flight (Twilio has it; the worker never heard back); a worker started again reconciles
    it with Twilio's list, and Sam has it exactly once."""
    url = (
        str(request.getfixturevalue("postgres_url"))
        if database == "postgres"
        else f"sqlite:///{tmp_path}/tend.db"
    )
    deadline = time.monotonic() + DEADLINE / 2
    quiet_end = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=2)
    told_at = quiet_end - timedelta(hours=1)
    config = tmp_path / "tend.toml"
    tell_file(config, f"{quiet_end - timedelta(hours=8):%H:%M}-{quiet_end:%H:%M}", told_at)
    engine = make_engine(url)
    try:
        if database == "postgres":
            reset_postgres(engine)
        upgrade(engine)
        file = load_ritual_file(config, today=told_at).file
        sync_file(Ledger(engine), file, told_at)

        # 1. The TELL, through the signed webhook, in Sam's quiet hours; then replayed.
        app = create_app(
            Ledger(engine),
            clock=lambda: told_at,
            twilio=TwilioWebhooks(TELL_TOKEN, TELL_PUBLIC),
            rituals=lambda: file,
        )
        form = {
            "MessageSid": "SM" + "7" * 32,
            "AccountSid": "AC" + "0" * 32,
            "From": TELL_ALEX,
            "To": SENDER,
            "Body": f"TELL {TELL_WORDS}",
        }
        signature = RequestValidator(TELL_TOKEN).compute_signature(
            f"{TELL_PUBLIC}/twilio/sms", form
        )
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        }
        with TestClient(app) as client:
            answers = [
                client.post("/twilio/sms", data=form, headers=headers).text for _ in range(2)
            ]
        tomorrow = "tomorrow " if quiet_end.date() != told_at.date() else ""
        expected = f"Sam gets it {tomorrow}at {quiet_end:%H:%M}, after their quiet hours."
        assert answers[0] == answers[1] and expected in answers[0], answers
        [row] = tell_rows(engine)
        assert (row.status, row.due_at) == ("pending", quiet_end)

        # 2. Killed with the text in flight: Twilio recorded it, the answer is held back.
        provider.fake.stall_next(STALL)
        workers = Workers(tmp_path, url, config, provider.fake, TEND_CLAIM_TIMEOUT_SECONDS="2")
        workers_made.append(workers)
        first = workers.start()
        until(lambda: provider.count >= 1, deadline, "the TELL at Twilio", workers)
        first.send_signal(signal.SIGKILL)
        first.wait()
        [row] = tell_rows(engine)
        assert row.status == "sending", row

        # 3. Started again: reconciled with Twilio's list, recorded as sent, not sent again.
        second = workers.start()
        until(lambda: tell_rows(engine)[0].status == "sent", deadline, "the TELL sent", workers)
        wait_started(second, deadline, workers)
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=20) == 0, workers.logs()

        assert [(to, body) for to, body, _ in provider.recorded] == [
            (TELL_SAM, f"Alex: {TELL_WORDS}")
        ], workers.logs()
        [row] = tell_rows(engine)
        assert row.provider_id == provider.recorded[0][2]
        assert row.due_at == quiet_end
        assert TELL_WORDS not in workers.logs(tail=100_000)  # the words are never logged
        assert provider.fake.server_errors == []
    finally:
        engine.dispose()
