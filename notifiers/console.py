"""The console notifier: what would be sent, printed. The default with no credentials."""

from __future__ import annotations

import sys
import threading
from typing import TextIO

from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from config.model import mask_address
from notifiers.base import Message, Notifier, SendResult

__all__ = ["ConsoleNotifier"]


class ConsoleNotifier(Notifier):
    """Prints one block per message, the recipient masked. Thread-safe."""

    channel = "console"

    def __init__(self, stream: TextIO | None = None) -> None:
        self._console = Console(file=stream or sys.stdout, highlight=False, soft_wrap=False)
        self._lock = threading.Lock()
        self._count = 0

    def _send(self, message: Message) -> SendResult:
        person = message.recipient
        address = {"sms": person.phone, "email": person.email}.get(message.channel)
        to = f"{person.name} ({person.household}/{person.partner})"
        if address:
            to += f" {message.channel} {mask_address(address)}"
        title = f"to {to}"
        if message.subject and message.channel == "email":
            title += f" · {message.subject}"
        with self._lock:
            self._count += 1
            number = self._count
            self._console.print(
                Panel(Text(message.body), title=title, title_align="left", expand=False)
            )
        return SendResult(provider_id=f"console-{number}")
