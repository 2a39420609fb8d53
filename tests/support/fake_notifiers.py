"""In-process fakes for the dispatcher's tests: a clock the test moves, and notifiers that
record every call and fail when told to; and the type of the `make_dispatcher` fixture."""

from __future__ import annotations

import copy
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from notifiers.base import Message, Notifier, NotifierError, SendResult
from scheduler.dispatch.dispatcher import Dispatcher

# What the scheduler tests' `make_dispatcher` fixture gives: dispatchers on the fake clock.
MakeDispatcher = Callable[..., Dispatcher]


class FakeClock:
    """The dispatcher's only source of time; the test moves it."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def set(self, when: datetime) -> None:
        self.now = when


@dataclass(frozen=True)
class Call:
    key: str
    at: datetime | None  # the fake clock when the provider was called


class FakeNotifier(Notifier):
    """Records every call; succeeds unless told to fail (for everyone or one partner).

    ``fail_next`` queues outcomes used once each; ``fail_always`` applies until ``recover``.
    Successful sends are kept in ``records``, the "provider's" own list. ``entered`` is set
    when a call starts; a call then waits for ``wait_for``, when set, before it answers.
    """

    channel: ClassVar[str] = "fake"

    def __init__(self, clock: FakeClock | None = None, *, delay: float = 0.0) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self.delay = delay
        self.calls: list[Call] = []
        self.sent: list[str] = []
        self.records: dict[str, SendResult] = {}
        self.asked: list[tuple[str, datetime]] = []
        self._once: dict[str | None, deque[Exception]] = defaultdict(deque)
        self._always: dict[str | None, Exception] = {}
        self.entered = threading.Event()
        self.wait_for: threading.Event | None = None

    def fail_next(self, *errors: Exception, partner: str | None = None) -> None:
        with self._lock:
            self._once[partner].extend(errors)

    def fail_always(self, error: Exception, *, partner: str | None = None) -> None:
        with self._lock:
            self._always[partner] = error

    def recover(self) -> None:
        with self._lock:
            self._once.clear()
            self._always.clear()

    def _outcome(self, partner: str) -> Exception | None:
        for who in (partner, None):
            if self._once[who]:
                return self._once[who].popleft()
        for who in (partner, None):
            if who in self._always:
                return self._always[who]
        return None

    def _send(self, message: Message) -> SendResult:
        self.entered.set()
        if self.wait_for is not None and not self.wait_for.wait(10):
            self.wait_for = None  # waited long enough: let the test fail, not hang
        with self._lock:
            self.calls.append(Call(message.key, self._clock() if self._clock else None))
            error = self._outcome(message.recipient.partner)
            if error is None:
                result = SendResult(provider_id=f"{self.channel}-{len(self.sent) + 1}")
                self.sent.append(message.key)
                self.records[message.key] = result
        if self.delay:
            time.sleep(self.delay)  # a provider's latency, so concurrent claims overlap
        if error is not None:
            raise copy.copy(error)
        return result

    def call_keys(self) -> list[str]:
        with self._lock:
            return [call.key for call in self.calls]


class FakeSms(FakeNotifier):
    channel = "sms"


class FakeEmail(FakeNotifier):
    channel = "email"


class FakeConsole(FakeNotifier):
    channel = "console"


class TellingSms(FakeSms):
    """Like Twilio: can list what it sent, so an interrupted send is looked up, not repeated."""

    can_tell_sent = True

    def was_sent(self, message: Message, since: datetime) -> SendResult | None:
        with self._lock:
            self.asked.append((message.key, since))
            return self.records.get(message.key)


def transient(text: str = "503: carrier busy", retry_after: float | None = None) -> NotifierError:
    return NotifierError(text, retry_after=retry_after)


PERMANENT = NotifierError("21211: invalid 'To' number", permanent=True, code="21211")
OPT_OUT = NotifierError("21610: the recipient replied STOP", opt_out=True, code="21610")
