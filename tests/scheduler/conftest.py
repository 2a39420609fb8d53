"""Scheduler fixtures: the fake clock (Monday 12 January 2026, 09:00 UTC), fake SMS and
e-mail notifiers on it, dispatchers built on it, and `tend worker` subprocesses. The ledgers
(`engine`, `sqlite_engine`, `pg_engine`) are tests/conftest.py's."""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_notifiers import FakeClock, FakeEmail, FakeSms, MakeDispatcher
from fake_twilio import FakeTwilio
from january_couple import at
from sqlalchemy import Engine
from tend_workers import Workers

from notifiers.base import Notifier
from notifiers.registry import NotifierSet
from scheduler.dispatch.dispatcher import Dispatcher
from scheduler.ledger import Ledger


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(at(9))


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """No HTTP proxy from the environment between a notifier and a loopback server."""
    for name in list(os.environ):
        if name.upper().endswith("_PROXY"):
            monkeypatch.delenv(name)


@pytest.fixture
def twilio(clock: FakeClock) -> Iterator[FakeTwilio]:
    """The fake Twilio API on loopback, on the fake clock; it must have served no 500."""
    with FakeTwilio(clock=clock) as server:
        yield server
    assert server.server_errors == []


@pytest.fixture
def sms(clock: FakeClock) -> FakeSms:
    return FakeSms(clock)


@pytest.fixture
def email(clock: FakeClock) -> FakeEmail:
    return FakeEmail(clock)


@pytest.fixture
def make_dispatcher(clock: FakeClock) -> Iterator[MakeDispatcher]:
    """Builds dispatchers on the fake clock and closes every one after the test."""
    made: list[Dispatcher] = []

    def make(
        engine: Engine,
        *,
        sms: Notifier | None = None,
        email: Notifier | None = None,
        console: Notifier | None = None,
        worker_id: str = "worker-1",
        **options: Any,
    ) -> Dispatcher:
        overrides = {
            channel: notifier
            for channel, notifier in (("sms", sms), ("email", email), ("console", console))
            if notifier is not None
        }
        options.setdefault("rng", random.Random(1234))
        dispatcher = Dispatcher(
            Ledger(engine), NotifierSet(overrides=overrides), worker_id, clock=clock, **options
        )
        made.append(dispatcher)
        return dispatcher

    yield make
    for dispatcher in made:
        dispatcher.close()


@pytest.fixture
def workers_factory(tmp_path: Path) -> Iterator[Callable[..., Workers]]:
    """Starts `tend worker` subprocesses (tend_workers.Workers); kills any still running
    after the test."""
    made: list[Workers] = []

    def make(database_url: str, config: Path, **env: str) -> Workers:
        workers = Workers(tmp_path, database_url, config, **env)
        made.append(workers)
        return workers

    yield make
    for workers in made:
        for process in workers.processes:
            if process.poll() is None:
                process.kill()
                process.wait()
