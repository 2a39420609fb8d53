"""Sending through the real notifiers to the test servers on loopback, against a baseline.

Usage: .venv/bin/python bench/providers.py [MESSAGES] [THREADS] [LATENCY_MS]
Default: 400 messages, 8 threads, a provider answering after 20 ms.

- SMS: `SmsNotifier` (one pooled HTTP session shared by the threads) against the fake
  Twilio API, and in the same run the same sends with a new `twilio` Client (and so a new
  HTTP connection) per message, the way a naive integration does it.
- E-mail: `EmailNotifier` (pooled, logged-in connections) against aiosmtpd, and a new
  SMTP connection per message.
Each prints messages per second, TCP connections the server saw, and the ratio.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "support")]

from fake_twilio import FakeTwilio  # noqa: E402
from smtp_server import SmtpServer  # noqa: E402

from notifiers.base import Message, Recipient  # noqa: E402
from notifiers.email import EmailNotifier, SmtpTarget  # noqa: E402
from notifiers.sms import SmsNotifier  # noqa: E402


def messages(count: int, channel: str) -> list[Message]:
    return [
        Message(
            recipient=Recipient(
                household=f"h{n}",
                partner="p",
                name=f"P{n}",
                phone=f"+1555{n:07d}",
                email=f"p{n}@example.com",
            ),
            channel=channel,
            body=f"Check-in time, P{n}: ten minutes, just the two of you.",
            subject="Tend: check in",
            key=f"h{n}/check-in/2027-01-04T19:00/p/day_of/{channel}",
        )
        for n in range(count)
    ]


def run(send: Callable[[Message], object], batch: list[Message], threads: int) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(send, batch))
    return time.perf_counter() - started


def sms(count: int, threads: int, latency: float) -> None:
    batch = messages(count, "sms")
    with FakeTwilio(latency=latency) as fake:
        shared = SmsNotifier(
            fake.account_sid,
            fake.auth_token,
            from_number="+15550001111",
            api_base_url=fake.base_url,
        )
        took = run(shared.send, batch, threads)
        shared.close()
        pooled = (count / took, fake.connections)
        fake.reset()

        def one_client_each(message: Message) -> object:
            notifier = SmsNotifier(
                fake.account_sid,
                fake.auth_token,
                from_number="+15550001111",
                api_base_url=fake.base_url,
            )
            try:
                return notifier.send(message)
            finally:
                notifier.close()

        took = run(one_client_each, batch, threads)
        naive = (count / took, fake.connections)
        assert len(fake.messages) == count
    report("SMS (Twilio API, fake)", pooled, naive)


def email(count: int, threads: int) -> None:
    batch = messages(count, "email")
    with SmtpServer() as server:
        target = SmtpTarget.parse(server.url())
        pooled_notifier = EmailNotifier(target, "Tend <tend@example.com>", pool_size=threads)
        took = run(pooled_notifier.send, batch, threads)
        pooled = (count / took, pooled_notifier.connections_opened)
        pooled_notifier.close()

        opened = 0

        def one_connection_each(message: Message) -> object:
            nonlocal opened
            notifier = EmailNotifier(target, "Tend <tend@example.com>", pool_size=1)
            try:
                return notifier.send(message)
            finally:
                opened += notifier.connections_opened
                notifier.close()

        took = run(one_connection_each, batch, threads)
        naive = (count / took, opened)
        server.wait_for_messages(2 * count, timeout=30)
    report("E-mail (SMTP, aiosmtpd)", pooled, naive)


def report(name: str, tend: tuple[float, int], baseline: tuple[float, int]) -> None:
    print(
        f"{name:26} Tend {tend[0]:8.1f} msg/s ({tend[1]:4d} connections)   "
        f"one connection per message {baseline[0]:8.1f} msg/s ({baseline[1]:4d})   "
        f"ratio {tend[0] / baseline[0]:.2f}"
    )


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 8
    latency = (float(sys.argv[3]) if len(sys.argv) > 3 else 20.0) / 1000
    print(f"{count} messages, {threads} threads, provider latency {latency * 1000:.0f} ms")
    sms(count, threads, latency)
    email(count, threads)


if __name__ == "__main__":
    main()
