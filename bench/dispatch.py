"""Dispatch: due deliveries sent to the fake Twilio API, Tend's workers against APScheduler.

Usage: .venv/bin/python bench/dispatch.py [POSTGRES_URL] [SIZE] [--rate N] [--burst-only]

POSTGRES_URL, else ``TEND_BENCH_POSTGRES_URL`` (with neither, the script says PostgreSQL
parts are skipped and exits 0); the database is emptied (``DROP SCHEMA public CASCADE``), so
give it one of its own. SIZE: deliveries per setup (default 10,000). ``--rate N``: the paced
scenario's deliveries per second (default 250); ``--burst-only`` skips it. The workers
inherit the environment, so ``TEND_SENDERS=16 .venv/bin/python bench/dispatch.py ...`` tries
a setting.

The fake Twilio API (tests/support/fake_twilio.py) answers each create after 20 ms, in a
process of its own so that its CPU and GIL are not the benchmark's; it stamps each create
with the time it arrived. Two scenarios:

- burst: all SIZE deliveries due at the same instant T0. Lateness is then mostly queueing:
  the k-th send cannot be less late than k / throughput, so p99 >= 0.99 * SIZE / rate.
- paced: the same deliveries due in groups every 100 ms, N per second in all: a load the
  provider (and, it is hoped, the scheduler) has capacity for, where lateness is the
  scheduler's own delay.

Setups, one after the other, in the same run, for each scenario:

- Tend, 1 and 2 workers: real ``tend worker`` subprocesses on PostgreSQL, the real Twilio
  notifier pointed at the fake (``TWILIO_API_BASE_URL``). SIZE one-partner households and a
  daily ritual are planned by the real planner; once every worker has started (start-up and
  its planning are not timed), the SIZE deliveries are made due a moment later
  (``due_at = next_attempt_at``: T0, or T0 plus its group's offset) and announced the way
  the planner does (NOTIFY).
- Peer: APScheduler 3 ``BackgroundScheduler`` with a ``SQLAlchemyJobStore`` (table
  ``bench_apscheduler_jobs``) on the same database, its default executor (10 threads),
  one date job per reminder, due when its delivery is (``misfire_grace_time=None``), each
  calling the same ``SmsNotifier.send``. The jobs are written to the store before T0, row
  for row what ``SQLAlchemyJobStore.add_job`` writes, in one transaction.
- The send alone (burst only): the same notifier sending SIZE messages from 32 threads in a
  loop, with no scheduler and no ledger: the floor under any scheduler. From its CPU per
  message the script prints the most any scheduler could send per second on this machine.

Per setup: deliveries, seconds from the first to the last create at the fake, deliveries/s,
lateness (arrival at the fake minus the delivery's due time) p50/p99, the ratio of
deliveries/s to the peer's in the same scenario; then the CPU each part spent per delivery
(Tend's worker processes or the peer's, the fake, this database's PostgreSQL backends), how
busy the whole machine was, and the fake's peak of requests in flight. Each setup checks
that every delivery reached the fake exactly once (and, for Tend, was recorded as sent).
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SUPPORT = ROOT / "tests" / "support"
sys.path[:0] = [str(ROOT), str(SUPPORT)]

from sqlalchemy import Engine, create_engine, func, select, text  # noqa: E402

from config.loader import load_ritual_file  # noqa: E402
from notifiers.base import Message, Recipient  # noqa: E402
from notifiers.sms import SmsNotifier  # noqa: E402
from rituals.planning import Plan  # noqa: E402
from scheduler.ledger import Ledger  # noqa: E402
from scheduler.ledger.engine import make_engine  # noqa: E402
from scheduler.ledger.rows import DeliveryRow  # noqa: E402
from scheduler.ledger.schema import upgrade  # noqa: E402
from scheduler.planner import plan_horizon, sync_file  # noqa: E402

LATENCY = 0.020  # seconds the fake takes to answer a create
SENDER = "+15550001111"
ACCOUNT_SID = "AC" + "fa4e" * 8  # the fake's defaults
AUTH_TOKEN = "70c3e7" + "0" * 20 + "fa4e70"
PEER_TABLE = "bench_apscheduler_jobs"
PEER_THREADS = 10  # APScheduler 3's default ThreadPoolExecutor
SEND_ALONE_THREADS = 32  # as many as a worker's senders (TEND_SENDERS' default)
GROUP_SECONDS = 0.1  # the paced scenario: a group of deliveries due every 100 ms
LEAD = 1.0  # seconds between making deliveries due and the first due time
CLOCK_TICK = os.sysconf("SC_CLK_TCK")
SAMPLE_SECONDS = 0.05  # how often the database's backends are sampled
STALL_SECONDS = 60.0  # no new create at the fake for this long: the setup has failed
GOAL_RATE, GOAL_RATIO, GOAL_P99 = 1000.0, 20.0, 1.0


def phone(n: int) -> str:
    return f"+1555{n:07d}"


def offsets(size: int, rate: float | None) -> list[float]:
    """Seconds after T0 each delivery is due: all at once (burst), or in groups every
    GROUP_SECONDS, `rate` a second in all (paced)."""
    if rate is None:
        return [0.0] * size
    per_group = max(1, round(rate * GROUP_SECONDS))
    return [(n // per_group) * GROUP_SECONDS for n in range(size)]


# ---------------------------------------------------------------- the fake, in its process


def _serve_fake(commands: Connection, latency: float) -> None:
    """The child process: a FakeTwilio that stamps each create with its arrival time."""
    import threading

    from fake_twilio import FakeTwilio

    arrived = threading.local()

    class TimedFake(FakeTwilio):
        def __init__(self, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.creates: list[tuple[str, float]] = []

        def _dispatch(self, method: str, target: str, authorization: str | None, body: bytes):  # type: ignore[no-untyped-def]
            arrived.at = time.time()  # before the answer's latency
            return super()._dispatch(method, target, authorization, body)

        def _create(self, form: dict[str, str]):  # type: ignore[no-untyped-def]
            reply = super()._create(form)
            if reply.status == 201:
                with self._lock:
                    self.creates.append((form["To"], arrived.at))
            return reply

    fake = TimedFake(latency=latency)
    fake.start()
    cpu = _cpu_seconds(os.getpid())
    commands.send(fake.base_url)
    while True:
        command = commands.recv()
        if command == "reset":
            fake.reset()
            with fake._lock:
                fake.creates.clear()
            cpu = _cpu_seconds(os.getpid())
            commands.send(None)
        elif command == "count":
            with fake._lock:
                commands.send(len(fake.creates))
        elif command == "collect":
            with fake._lock:
                creates = list(fake.creates)
            commands.send(
                {
                    "creates": creates,
                    "max_in_flight": fake.max_in_flight,
                    "connections": fake.connections,
                    "cpu": _cpu_seconds(os.getpid()) - cpu,
                    "errors": len(fake.server_errors),
                }
            )
        elif command == "stop":
            fake.stop()
            commands.send(None)
            return


class Fake:
    """The parent's handle on the fake's process."""

    def __init__(self, latency: float) -> None:
        context = multiprocessing.get_context("spawn")
        self._commands, child = context.Pipe()
        self._process = context.Process(target=_serve_fake, args=(child, latency), daemon=True)
        self._process.start()
        self.base_url: str = self._commands.recv()

    def ask(self, command: str) -> Any:
        self._commands.send(command)
        return self._commands.recv()

    def wait_for(self, count: int, what: str) -> None:
        """Until `count` creates arrived; fails when none arrives for STALL_SECONDS."""
        seen, since = -1, time.monotonic()
        while True:
            now = self.ask("count")
            if now >= count:
                return
            if now != seen:
                seen, since = now, time.monotonic()
            elif time.monotonic() - since > STALL_SECONDS:
                raise RuntimeError(f"{what}: stuck at {now} of {count} creates")
            time.sleep(0.1)

    def stop(self) -> None:
        self.ask("stop")
        self._process.join(10)


# ---------------------------------------------------------------- CPU accounting


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads), from /proc; 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK


def _backends(database: str) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend connected to `database` (by its title)."""
    found: dict[int, float] = {}
    marker = f" {database} ".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if title.startswith(b"postgres:") and marker in title:
            found[int(entry.name)] = _cpu_seconds(int(entry.name))
    return found


def _machine() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return float(sum(values) - idle), float(sum(values))


def _watch_backends(commands: Connection, database: str) -> None:
    """A process of its own: samples the CPU of `database`'s PostgreSQL backends every
    SAMPLE_SECONDS between "start" and "stop", so that backends which exit meanwhile (a
    connection pool's overflow connections come and go) are counted up to their last
    sample. Its own work is nobody else's CPU."""
    first: dict[int, float] = {}
    last: dict[int, float] = {}
    active = False
    while True:
        if commands.poll(SAMPLE_SECONDS if active else None):
            command = commands.recv()
            if command == "start":
                first = _backends(database)
                last = dict(first)
                active = True
                commands.send(None)
            elif command == "stop":
                last.update(_backends(database))
                active = False
                commands.send(sum(cpu - first.get(pid, 0.0) for pid, cpu in last.items()))
            else:
                commands.send(None)
                return
        elif active:
            last.update(_backends(database))


class CpuMeter:
    """CPU spent between start() and stop() by given processes and the database's backends,
    and the share of the whole machine that was busy (everyone's work, not only ours)."""

    def __init__(self, database: str) -> None:
        context = multiprocessing.get_context("spawn")
        self._commands, child = context.Pipe()
        self._process = context.Process(target=_watch_backends, args=(child, database), daemon=True)
        self._process.start()

    def _ask(self, command: str) -> Any:
        self._commands.send(command)
        return self._commands.recv()

    def start(self, pids: list[int]) -> None:
        self._procs = {pid: _cpu_seconds(pid) for pid in pids}
        self._ask("start")
        self._machine = _machine()

    def stop(self) -> dict[str, float]:
        procs = sum(_cpu_seconds(pid) - before for pid, before in self._procs.items())
        db = float(self._ask("stop"))
        busy, total = _machine()
        machine = (busy - self._machine[0]) / max(1.0, total - self._machine[1])
        return {"procs": procs, "db": db, "machine": machine}

    def close(self) -> None:
        self._ask("quit")
        self._process.join(10)


# ---------------------------------------------------------------- results


@dataclass
class Result:
    scenario: str
    setup: str
    deliveries: int
    seconds: float
    lateness: list[float]
    cpu: dict[str, float]
    fake: dict[str, Any]
    note: str = ""

    @property
    def rate(self) -> float:
        return self.deliveries / self.seconds if self.seconds > 0 else float("nan")

    def percentile(self, p: float) -> float:
        ordered = sorted(self.lateness)
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] if ordered else float("nan")


def measured(
    scenario: str, setup: str, fake: Fake, due: dict[str, float], cpu: dict[str, float]
) -> Result:
    """What the fake saw for one setup, checked: every number once, nothing else."""
    seen = fake.ask("collect")
    creates: list[tuple[str, float]] = seen["creates"]
    counts = Counter(to for to, _ in creates)
    twice = sum(1 for n in counts.values() if n > 1)
    missing = len(set(due) - set(counts))
    note = ""
    if twice or missing or len(creates) != len(due):
        note = f"NOT EXACTLY ONCE: {len(creates)} creates, {twice} numbers twice, {missing} lost"
    if seen["errors"]:
        note += f" fake server errors: {seen['errors']}"
    times = sorted(at for _, at in creates)
    return Result(
        scenario=scenario,
        setup=setup,
        deliveries=len(creates),
        seconds=times[-1] - times[0] if times else 0.0,
        lateness=[at - due[to] for to, at in creates if to in due],
        cpu=cpu,
        fake=seen,
        note=note,
    )


def print_tables(results: list[Result]) -> None:
    peers = {r.scenario: r for r in results if r.setup.startswith("APScheduler")}
    print()
    print(
        f"{'scenario':14} {'setup':24} {'deliveries':>10} {'seconds':>8} {'deliv/s':>8} "
        f"{'late p50':>9} {'late p99':>9} {'x peer':>7}"
    )
    for r in results:
        peer = peers.get(r.scenario)
        ratio = f"{r.rate / peer.rate:7.1f}" if peer and peer.rate else "      -"
        print(
            f"{r.scenario:14} {r.setup:24} {r.deliveries:10,d} {r.seconds:8.2f} {r.rate:8.0f} "
            f"{r.percentile(0.50):8.3f}s {r.percentile(0.99):8.3f}s {ratio}"
        )
    print()
    print(
        f"{'scenario':14} {'setup':24} {'CPU ms/delivery: sender':>23} {'fake':>5} "
        f"{'database':>8} {'sum':>5} {'machine busy':>12} {'fake in flight':>14}"
    )
    for r in results:
        n = max(1, r.deliveries)
        sender, fake, db = (
            1000 * r.cpu["procs"] / n,
            1000 * r.fake["cpu"] / n,
            1000 * r.cpu["db"] / n,
        )
        print(
            f"{r.scenario:14} {r.setup:24} {sender:23.2f} {fake:5.2f} {db:8.2f} "
            f"{sender + fake + db:5.2f} {100 * r.cpu['machine']:11.0f}% "
            f"{r.fake['max_in_flight']:14d}"
        )
    for r in results:
        if r.note:
            print(f"{r.scenario} / {r.setup}: {r.note}")
    tend = [r for r in results if r.setup.startswith("Tend")]
    burst = [r for r in tend if r.scenario == "burst"]
    paced = [r for r in tend if r.scenario != "burst"]
    print()
    if burst:
        best = max(burst, key=lambda r: r.rate)
        peer = peers.get("burst")
        print(
            f"goal >= {GOAL_RATE:,.0f} deliveries/s: best {best.rate:,.0f} ({best.setup}): "
            f"{'met' if best.rate >= GOAL_RATE else 'missed'}"
        )
        if peer:
            ratio = best.rate / peer.rate
            print(
                f"goal >= {GOAL_RATIO:.0f} x the peer: {ratio:.1f} x: "
                f"{'met' if ratio >= GOAL_RATIO else 'missed'}"
            )
        alone = [r for r in results if r.setup.startswith("send alone")]
        if alone and alone[0].deliveries:
            a = alone[0]
            floor = 1000 * (a.cpu["procs"] + a.fake["cpu"]) / a.deliveries
            cores = os.cpu_count() or 1
            line = (
                f"the limit: the send alone costs {floor:.2f} ms of CPU per message (sender "
                f"and fake), so {cores} cores send at most {1000 * cores / floor:,.0f}/s here "
                f"whatever schedules them; measured {a.rate:,.0f}/s"
            )
            if peer:
                need = GOAL_RATIO * peer.rate
                line += (
                    f"; {GOAL_RATIO:.0f} x the peer would be {need:,.0f}/s, "
                    f"{need * floor / 1000:.1f} cores of sending alone"
                )
            print(line)
    for r in paced:
        p99 = r.percentile(0.99)
        print(
            f"goal p99 lateness <= {GOAL_P99:.0f} s ({r.scenario}, {r.setup}): {p99:.3f} s: "
            f"{'met' if p99 <= GOAL_P99 else 'missed'}"
        )


# ---------------------------------------------------------------- Tend


def ritual_file(path: Path, size: int, at: datetime) -> None:
    """`size` one-partner households (SMS) and a daily ritual at `at`'s UTC wall-clock time."""
    lines = ['timezone = "UTC"', ""]
    for n in range(size):
        lines += [
            "[[households]]",
            f'id = "h{n:06d}"',
            "  [[households.partners]]",
            '  id = "p"',
            f'  name = "P{n}"',
            f'  phone = "{phone(n)}"',
            '  channels = ["sms"]',
            "",
        ]
    lines += [
        "[[rituals]]",
        'id = "check-in"',
        'kind = "custom"',
        f'schedule = "daily at {at:%H:%M}"',
        'message = "Hi {{ partner }}, ten minutes for {{ ritual }} tonight?"',
    ]
    path.write_text("\n".join(lines) + "\n")


def fresh_ledger(url: str) -> Engine:
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    upgrade(engine)
    return engine


def plan_ledger(engine: Engine, config: Path) -> int:
    """Plan the file with the real planner, as a worker's first plan would."""
    now = datetime.now(UTC)
    loaded = load_ritual_file(config, today=now)
    synced = sync_file(Ledger(engine), loaded.file, now, text=loaded.text)
    report = plan_horizon(
        Ledger(engine),
        Plan(loaded.file),
        now,
        generation=synced.generation,
        changed=synced.changed,
        days=2,
    )
    return report.deliveries


def start_workers(count: int, url: str, config: Path, fake: Fake, logs: Path) -> list[Any]:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_FROM": SENDER,
        "TWILIO_API_BASE_URL": fake.base_url,
        "TEND_HORIZON_DAYS": "2",
        "PYTHONPATH": str(ROOT),
    }
    for name in ("TWILIO_MESSAGING_SERVICE_SID", "TEND_PUBLIC_URL", "TEND_NOTIFIERS"):
        env.pop(name, None)
    processes = []
    for n in range(count):
        with (logs / f"worker-{n}.log").open("wb") as log:
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "tend", "worker", "--config", str(config)],
                    cwd=logs,  # no .env from the project's directory
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
    deadline = time.monotonic() + 300
    for n, process in enumerate(processes):
        log_path = logs / f"worker-{n}.log"
        while not re.search(r"worker \S+ started", log_path.read_text(errors="replace")):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker {n} did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.1)
    return processes


def stop_workers(processes: list[Any]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


MAKE_DUE = text(
    """
    UPDATE delivery AS d
    SET due_at = :t0 + make_interval(secs => r.shift),
        next_attempt_at = :t0 + make_interval(secs => r.shift),
        expires_at = :t0 + make_interval(secs => r.shift) + interval '2 hours',
        updated_at = :now
    FROM (
        SELECT id, (CAST(:offsets AS float8[]))[row_number() OVER (ORDER BY due_at, id)] AS shift
        FROM delivery WHERE status = 'pending' ORDER BY due_at, id LIMIT :size
    ) AS r
    WHERE d.id = r.id
    """
)
DUE_BY_PHONE = text(
    """
    SELECT p.phone, d.due_at FROM delivery AS d
    JOIN partner AS p ON p.household_id = d.household_id AND p.key = d.partner_key
    WHERE d.status = 'pending' AND d.due_at < :before
    """
)


def make_due(engine: Engine, size: int, t0: datetime, rate: float | None) -> dict[str, float]:
    """The first `size` planned deliveries become due from `t0` on; the workers are told, as
    the planner tells them. Returns each one's due time (epoch seconds) by phone number."""
    naive = t0.astimezone(UTC).replace(tzinfo=None)  # the ledger stores naive UTC
    with engine.begin() as connection:
        made = connection.execute(
            MAKE_DUE,
            {
                "t0": naive,
                "offsets": offsets(size, rate),
                "size": size,
                "now": datetime.now(UTC).replace(tzinfo=None),
            },
        ).rowcount
        assert made == size, made
        due = {
            number: at.replace(tzinfo=UTC).timestamp()
            for number, at in connection.execute(
                DUE_BY_PHONE, {"before": naive + timedelta(minutes=30)}
            ).tuples()
        }
        connection.execute(select(func.pg_notify("tend_planned", "bench")))
    return due


def sent_count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(
            connection.execute(
                select(func.count()).where(DeliveryRow.status == "sent")
            ).scalar_one()
        )


def tend(
    workers: int, url: str, size: int, rate: float | None, fake: Fake, meter: CpuMeter, tmp: Path
) -> Result:
    engine = fresh_ledger(url)
    config = tmp / "tend.toml"
    # Planned for an hour from now (never due on its own during the run).
    ritual_file(config, size, datetime.now(UTC) + timedelta(hours=1))
    planned = plan_ledger(engine, config)
    if planned < size:
        raise RuntimeError(f"planned {planned} deliveries, fewer than {size}")
    processes = start_workers(workers, url, config, fake, tmp)
    try:
        fake.ask("reset")
        meter.start([p.pid for p in processes])
        due = make_due(engine, size, datetime.now(UTC) + timedelta(seconds=LEAD), rate)
        setup = f"Tend, {workers} worker{'s' if workers > 1 else ''}"
        fake.wait_for(size, setup)
        cpu = meter.stop()
        deadline = time.monotonic() + 60
        while sent_count(engine) < size and time.monotonic() < deadline:
            time.sleep(0.1)  # the outcomes are written just after the answers
        recorded = sent_count(engine)
        result = measured(scenario_name(rate), setup, fake, due, cpu)
        if recorded != size:
            result.note += f" only {recorded} recorded as sent"
        return result
    finally:
        stop_workers(processes)
        engine.dispose()


# ---------------------------------------------------------------- the peer

PEER: dict[str, SmsNotifier] = {}


def peer_message(n: int) -> Message:
    return Message(
        recipient=Recipient(household=f"h{n:06d}", partner="p", name=f"P{n}", phone=phone(n)),
        channel="sms",
        body=f"Hi P{n}, ten minutes for check in tonight?",
        key=f"h{n:06d}/check-in/p/sms",
    )


def peer_send(n: int) -> None:
    """The peer's job: one reminder through the same notifier."""
    PEER["sms"].send(peer_message(n))


def peer(url: str, size: int, rate: float | None, fake: Fake, meter: CpuMeter) -> Result:
    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.job import Job
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.date import DateTrigger
    from apscheduler.util import datetime_to_utc_timestamp

    PEER["sms"] = SmsNotifier(
        ACCOUNT_SID,
        AUTH_TOKEN,
        from_number=SENDER,
        api_base_url=fake.base_url,
        pool_size=PEER_THREADS * 2,
    )
    engine = create_engine(url)
    store = SQLAlchemyJobStore(engine=engine, tablename=PEER_TABLE)
    scheduler = BackgroundScheduler(
        jobstores={"default": store},
        executors={"default": ThreadPoolExecutor(PEER_THREADS)},
        timezone=UTC,
    )
    scheduler.start(paused=True)  # creates the table; runs nothing yet
    try:
        store.remove_all_jobs()
        fake.ask("reset")
        t0 = datetime.now(UTC) + timedelta(seconds=LEAD + 2 + size / 2000)
        rows, due = [], {}
        for n, offset in enumerate(offsets(size, rate)):
            at = t0 + timedelta(seconds=offset)
            due[phone(n)] = at.timestamp()
            job = Job(
                scheduler,
                id=f"reminder-{n}",
                func=peer_send,
                args=(n,),
                kwargs={},
                trigger=DateTrigger(at, timezone=UTC),
                executor="default",
                name="reminder",
                misfire_grace_time=None,
                coalesce=True,
                max_instances=1,
                next_run_time=at,
            )
            rows.append(
                {
                    "id": job.id,
                    "next_run_time": datetime_to_utc_timestamp(job.next_run_time),
                    "job_state": pickle.dumps(job.__getstate__(), store.pickle_protocol),
                }
            )
        with engine.begin() as connection:
            connection.execute(store.jobs_t.insert(), rows)
        late_start = datetime.now(UTC) > t0
        meter.start([os.getpid()])
        scheduler.resume()
        fake.wait_for(size, "APScheduler")
        cpu = meter.stop()
        result = measured(
            scenario_name(rate), f"APScheduler, {PEER_THREADS} threads", fake, due, cpu
        )
        if late_start:
            result.note += " the jobs were written after their due time: lateness includes that"
        return result
    finally:
        scheduler.shutdown(wait=True)
        PEER["sms"].close()
        with engine.begin() as connection:
            connection.execute(text(f"DROP TABLE IF EXISTS {PEER_TABLE}"))
        engine.dispose()


def send_alone(size: int, fake: Fake, meter: CpuMeter) -> Result:
    """The floor under any scheduler: the same notifier sending `size` messages from
    SEND_ALONE_THREADS threads as fast as it can, with no scheduler and no ledger at all."""
    from concurrent.futures import ThreadPoolExecutor

    notifier = SmsNotifier(
        ACCOUNT_SID,
        AUTH_TOKEN,
        from_number=SENDER,
        api_base_url=fake.base_url,
        pool_size=SEND_ALONE_THREADS * 2,
    )
    try:
        fake.ask("reset")
        start = time.time()
        due = {phone(n): start for n in range(size)}
        meter.start([os.getpid()])
        with ThreadPoolExecutor(SEND_ALONE_THREADS) as pool:
            list(pool.map(lambda n: notifier.send(peer_message(n)), range(size)))
        fake.wait_for(size, "the send alone")
        cpu = meter.stop()
        return measured("burst", f"send alone, {SEND_ALONE_THREADS} threads", fake, due, cpu)
    finally:
        notifier.close()


# ---------------------------------------------------------------- main


def scenario_name(rate: float | None) -> str:
    return "burst" if rate is None else f"paced {rate:g}/s"


def main() -> int:
    args = sys.argv[1:]
    urls = [a for a in args if "://" in a]
    rate: float | None = 250.0
    if "--rate" in args:
        rate = float(args[args.index("--rate") + 1])
        args.remove(args[args.index("--rate") + 1])
    sizes = [int(a) for a in args if a.isdigit()]
    url = urls[0] if urls else os.environ.get("TEND_BENCH_POSTGRES_URL")
    size = sizes[0] if sizes else 10_000
    if not url:
        print("no PostgreSQL URL (argv or TEND_BENCH_POSTGRES_URL): PostgreSQL parts skipped")
        return 0
    if url.startswith(("postgres://", "postgresql://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    database = make_engine(url).url.database or ""
    rates: list[float | None] = [None] if "--burst-only" in args else [None, rate]
    print(
        f"{size:,d} deliveries per setup; fake Twilio answers after {LATENCY * 1000:.0f} ms "
        f"(own process); TEND_SENDERS={os.environ.get('TEND_SENDERS', 'default')}; "
        f"peer: APScheduler, {PEER_THREADS} threads; {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f} at start"
    )
    fake = Fake(LATENCY)
    meter = CpuMeter(database)
    results: list[Result] = []
    try:
        with tempfile.TemporaryDirectory(prefix="tend-bench-dispatch-") as directory:
            for pace in rates:
                for workers in (1, 2):
                    started = time.perf_counter()
                    tmp = Path(directory) / f"{'burst' if pace is None else 'paced'}-{workers}"
                    tmp.mkdir()
                    results.append(tend(workers, url, size, pace, fake, meter, tmp))
                    took = time.perf_counter() - started
                    print(f"  {scenario_name(pace)}, Tend, {workers} worker(s): {took:.0f} s")
                started = time.perf_counter()
                results.append(peer(url, size, pace, fake, meter))
                took = time.perf_counter() - started
                print(f"  {scenario_name(pace)}, APScheduler: {took:.0f} s")
                if pace is None:
                    results.append(send_alone(size, fake, meter))
    finally:
        fake.stop()
        meter.close()
    print_tables(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
