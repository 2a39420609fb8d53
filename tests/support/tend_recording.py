"""A notifier for worker subprocesses in tests: appends each send to a file.

Loaded by the worker through ``TEND_NOTIFIERS=console=tend_recording:RecordingNotifier``
with ``tests/support`` on ``PYTHONPATH``. ``TEND_TEST_RECORD`` is the file;
``TEND_TEST_SEND_DELAY`` (seconds) plays a provider's latency, so a kill -9 lands in the
middle of a batch. Like Twilio's message list, it can say whether a message was sent.
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime
from pathlib import Path

from notifiers.base import Message, Notifier, SendResult


class RecordingNotifier(Notifier):
    channel = "console"
    can_tell_sent = True

    def __init__(self) -> None:
        self.path = Path(os.environ["TEND_TEST_RECORD"])
        self.delay = float(os.environ.get("TEND_TEST_SEND_DELAY", "0"))

    def _send(self, message: Message) -> SendResult:
        started = os.environ.get("TEND_TEST_STARTED")
        if started:  # lets a test signal the worker while a provider call is under way
            Path(started).touch()
        if self.delay:
            time.sleep(self.delay)
        line = json.dumps({"key": message.key, "pid": os.getpid(), "body": message.body}) + "\n"
        # O_APPEND writes of one short line are atomic: several processes share the file.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
        return SendResult(provider_id=f"rec-{os.getpid()}-{message.key}")

    def was_sent(self, message: Message, since: datetime) -> SendResult | None:
        if not self.path.exists():
            return None
        for line in self.path.read_text().splitlines():
            if json.loads(line)["key"] == message.key:
                return SendResult(provider_id=f"rec-found-{message.key}")
        return None


def read_record(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]
