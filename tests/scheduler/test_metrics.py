"""Metrics: the dispatcher times, counts and measures the lateness of its sends; the ledger's
deliveries and heartbeat are read at scrape time, and an unreadable ledger is a 0, not an error.

The counters live on one registry for the whole test process, so tests compare values after
an action with values before it, never absolute values.
"""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fake_notifiers import (
    OPT_OUT,
    PERMANENT,
    FakeClock,
    FakeEmail,
    FakeSms,
    MakeDispatcher,
    transient,
)
from january_couple import COUPLE, at, deliveries, plan
from prometheus_samples import Samples, delta, parse, value
from sqlalchemy import Engine, insert, update
from tend_recording import read_record
from tend_workers import Workers, households_file, wait_for

from scheduler.dispatch.dispatcher import RetryPolicy
from scheduler.ledger import Ledger
from scheduler.ledger.engine import make_engine
from scheduler.ledger.rows import DeliveryRow, WorkerHeartbeatRow
from scheduler.metrics import REGISTRY, LedgerCollector, render


def scrape(ledger: LedgerCollector | None = None) -> Samples:
    return parse(render(ledger)[0])


# ---------------------------------------------------------------------------- the dispatcher


def test_each_send_is_timed_counted_and_its_lateness_is_the_clock_at_send_minus_due(
    engine: Engine, clock: FakeClock, make_dispatcher: MakeDispatcher
) -> None:
    sms = FakeSms(clock, delay=0.05)  # a provider that takes 50 ms
    dispatcher = make_dispatcher(engine, sms=sms)
    plan(engine, COUPLE, at(9))
    before = scrape()

    clock.set(at(12, 0, 20))  # both check-ins were due at 12:00
    assert dispatcher.run_until_idle() == 2

    after = scrape()
    assert delta(before, after, "tend_sends_total", channel="sms", outcome="sent") == 2
    assert delta(before, after, "tend_send_duration_seconds_count", channel="sms") == 2
    assert delta(before, after, "tend_send_duration_seconds_sum", channel="sms") >= 0.1
    assert delta(before, after, "tend_delivery_lateness_seconds_count", channel="sms") == 2
    lateness = delta(before, after, "tend_delivery_lateness_seconds_sum", channel="sms")
    assert lateness == pytest.approx(40.0)
    # 20 s late each: in the 30 s bucket, not the 15 s one (`le` as the exposition writes it).
    buckets = "tend_delivery_lateness_seconds_bucket"
    assert delta(before, after, buckets, channel="sms", le="15.0") == 0
    assert delta(before, after, buckets, channel="sms", le="30.0") == 2
    assert delta(before, after, "tend_sends_total", channel="sms", outcome="transient") == 0


def test_failed_sends_are_counted_by_how_the_dispatcher_classified_them(
    engine: Engine,
    clock: FakeClock,
    sms: FakeSms,
    email: FakeEmail,
    make_dispatcher: MakeDispatcher,
) -> None:
    dispatcher = make_dispatcher(engine, sms=sms, email=email)
    plan(engine, COUPLE, at(9))
    sms.fail_always(PERMANENT, partner="alex")  # falls back to email, sent at once
    sms.fail_always(OPT_OUT, partner="sam")  # sam has no other channel
    before = scrape()

    clock.set(at(12))
    dispatcher.run_until_idle()
    dispatcher.run_until_idle()

    after = scrape()
    assert delta(before, after, "tend_sends_total", channel="sms", outcome="permanent") == 1
    assert delta(before, after, "tend_sends_total", channel="sms", outcome="opted_out") == 1
    assert delta(before, after, "tend_sends_total", channel="sms", outcome="sent") == 0
    assert delta(before, after, "tend_sends_total", channel="email", outcome="sent") == 1
    # Failed attempts take provider time too; only sent ones are late or on time.
    assert delta(before, after, "tend_send_duration_seconds_count", channel="sms") == 2
    assert delta(before, after, "tend_send_duration_seconds_count", channel="email") == 1
    assert delta(before, after, "tend_delivery_lateness_seconds_count", channel="sms") == 0
    assert delta(before, after, "tend_delivery_lateness_seconds_count", channel="email") == 1


def test_a_transient_failure_is_counted_each_time_and_the_last_as_given_up(
    engine: Engine, clock: FakeClock, sms: FakeSms, make_dispatcher: MakeDispatcher
) -> None:
    dispatcher = make_dispatcher(engine, sms=sms, retry=RetryPolicy(max_attempts=2))
    plan(engine, COUPLE, at(9))
    sms.fail_always(transient())
    before = scrape()

    clock.set(at(12))
    dispatcher.run_until_idle()
    clock.set(at(12, 5))  # past the backoff
    dispatcher.run_until_idle()

    after = scrape()
    assert delta(before, after, "tend_sends_total", channel="sms", outcome="transient") == 2
    assert delta(before, after, "tend_sends_total", channel="sms", outcome="gave_up") == 2
    assert delta(before, after, "tend_send_duration_seconds_count", channel="sms") == 4


# ---------------------------------------------------------------------------- the ledger


def beat(engine: Engine, worker: str, at_: datetime, *, stopped: bool = False) -> None:
    with engine.begin() as connection:
        connection.execute(
            insert(WorkerHeartbeatRow).values(
                worker_id=worker,
                hostname="test",
                pid=1,
                started_at=at_,
                beat_at=at_,
                stopped_at=at_ if stopped else None,
            )
        )


def test_the_deliveries_gauge_counts_the_ledgers_rows_by_status_and_channel(
    engine: Engine,
    clock: FakeClock,
    sms: FakeSms,
    email: FakeEmail,
    make_dispatcher: MakeDispatcher,
) -> None:
    plan(engine, COUPLE, at(9))
    sms.fail_always(PERMANENT, partner="alex")
    clock.set(at(12))
    make_dispatcher(engine, sms=sms, email=email).run_until_idle()  # alex's email: pending

    samples = scrape(LedgerCollector(Ledger(engine), clock))

    rows = Counter((row["status"], row["channel"]) for row in deliveries(engine))
    assert rows[("sent", "sms")] == 1  # the test is about something
    assert rows[("failed", "sms")] == 1
    assert rows[("pending", "email")] == 1
    exposed = {
        (dict(labels)["status"], dict(labels)["channel"]): count
        for (name, labels), count in samples.items()
        if name == "tend_deliveries"
    }
    assert {k: v for k, v in exposed.items() if v} == rows
    # Every status of each channel is there, zeros too: an alert has a series before the first.
    assert exposed[("missed", "email")] == 0
    assert value(samples, "tend_ledger_up") == 1


def test_the_heartbeat_age_is_that_of_the_newest_running_worker(
    engine: Engine, clock: FakeClock
) -> None:
    clock.set(at(12))
    ledger = LedgerCollector(Ledger(engine), clock)
    assert ("tend_worker_heartbeat_age_seconds", frozenset()) not in scrape(ledger)

    beat(engine, "old", at(11, 59))
    beat(engine, "running", at(11, 59, 48))
    beat(engine, "stopped", at(11, 59, 58), stopped=True)  # stopped: not a running worker

    samples = scrape(LedgerCollector(Ledger(engine), clock))
    assert value(samples, "tend_worker_heartbeat_age_seconds") == 12.0


def test_the_ledger_is_read_at_most_once_per_cache_period(engine: Engine, clock: FakeClock) -> None:
    plan(engine, COUPLE, at(9))
    seconds = [100.0]
    ledger = LedgerCollector(Ledger(engine), clock, cache_seconds=5, monotonic=lambda: seconds[0])
    pending = value(scrape(ledger), "tend_deliveries", status="pending", channel="sms")
    assert pending > 0

    with engine.begin() as connection:
        connection.execute(update(DeliveryRow).values(status="cancelled"))
    seconds[0] += 4.9
    assert value(scrape(ledger), "tend_deliveries", status="pending", channel="sms") == pending

    seconds[0] += 0.2
    samples = scrape(ledger)
    assert value(samples, "tend_deliveries", status="pending", channel="sms") == 0
    assert value(samples, "tend_deliveries", status="cancelled", channel="sms") == pending


def test_an_unreadable_ledger_is_exposed_as_down_beside_the_process_counters(
    tmp_path: Path, clock: FakeClock
) -> None:
    broken = make_engine(f"sqlite:///{tmp_path / 'no-such-folder' / 'tend.db'}")
    try:
        samples = scrape(LedgerCollector(Ledger(broken), clock))
    finally:
        broken.dispose()

    assert value(samples, "tend_ledger_up") == 0
    assert not [name for name, _ in samples if name == "tend_deliveries"]
    # The process's own metrics are still there.
    assert any(name.startswith("tend_send_duration_seconds") for name, _ in samples)


def test_tends_registry_is_its_own_not_the_global_one() -> None:
    from prometheus_client import REGISTRY as GLOBAL

    assert REGISTRY is not GLOBAL
    assert (
        GLOBAL.get_sample_value("tend_sends_total", {"channel": "sms", "outcome": "sent"}) is None
    )


@pytest.mark.parametrize("name", ["tend_ledger_up", "tend_deliveries"])
def test_ledger_metric_names_do_not_clash_with_the_registrys(name: str) -> None:
    assert name not in {metric.name for metric in REGISTRY.collect()}


# ---------------------------------------------------------------------------- the worker


def test_a_worker_with_a_metrics_port_serves_its_own_sends_there(
    tmp_path: Path, workers_factory: Callable[..., Workers]
) -> None:
    with socket.socket() as probe:  # a port free a moment ago
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    due = datetime.now(UTC) - timedelta(minutes=5)
    config = households_file(tmp_path / "tend.toml", 3, due)
    url = f"sqlite:///{tmp_path}/tend.db"
    workers = workers_factory(url, config, TEND_METRICS_PORT=str(port))
    workers.start()
    wait_for(lambda: len(read_record(workers.record)) >= 3, 30, "3 sends", workers.logs)

    def sent() -> float:
        try:
            answer = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        except httpx.TransportError:
            return 0.0
        return value(parse(answer.content), "tend_sends_total", channel="console", outcome="sent")

    # The record is written inside the send; the counter just after it.
    wait_for(lambda: sent() == 3, 10, "the worker's counters", workers.logs)
    samples = parse(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).content)
    assert value(samples, "tend_delivery_lateness_seconds_count", channel="console") == 3
    assert value(samples, "tend_delivery_lateness_seconds_sum", channel="console") >= 3 * 240
    assert value(samples, "tend_send_duration_seconds_count", channel="console") == 3
    assert workers.stop_all() == [0], workers.logs()
