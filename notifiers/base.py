"""The notifier contract: what the dispatcher hands a channel, and what a channel answers.

A notifier sends one :class:`Message` and returns a :class:`SendResult`, or raises
:class:`NotifierError` classified as transient (retry later), permanent (stop; try the
partner's next channel) or opt-out (the recipient unsubscribed from this channel). It never
decides what or when to send: that is the dispatcher's job.
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from config.model import mask_address

if TYPE_CHECKING:
    from config.settings import Settings

__all__ = [
    "Message",
    "Notifier",
    "NotifierError",
    "Recipient",
    "SendResult",
    "mask_addresses",
]

log = logging.getLogger(__name__)

# E.164 numbers (with or without separators after the +) and e-mail addresses in free text.
# The local part is RFC 5322's dot-atom text, so o'brien@... and sam&alex@... are masked whole.
_ADDRESS = re.compile(r"\+\d[\d\s().-]{6,18}\d|[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")


def mask_addresses(text: str) -> str:
    """`text` with every phone number and e-mail address masked, for logs and the ledger."""

    def masked(match: re.Match[str]) -> str:
        found = match.group()
        return mask_address(found if "@" in found else re.sub(r"[\s().-]", "", found)) or ""

    return _ADDRESS.sub(masked, text)


@dataclass(frozen=True, slots=True)
class Recipient:
    household: str
    partner: str
    name: str
    phone: str | None = None
    email: str | None = None

    def __repr__(self) -> str:
        return (
            f"Recipient(household={self.household!r}, partner={self.partner!r}, "
            f"phone={mask_address(self.phone)!r}, email={mask_address(self.email)!r})"
        )


@dataclass(frozen=True, slots=True)
class Message:
    """One message for one partner on one channel."""

    recipient: Recipient
    channel: str
    body: str
    key: str  # the delivery's stable key: the same delivery always has the same key
    subject: str | None = None
    html: str | None = None
    ritual: str | None = None  # the ritual's id, when the message is about one
    occurrence: int | None = None  # the occurrence's ledger id: what a confirm link confirms
    # The recipient's page URL generation (``/h/{token}``), when the message may link their
    # page (an e-mail's footer); None for a message that links none (``tend send-test``).
    page_generation: int | None = None

    def __repr__(self) -> str:  # bodies can be personal; addresses are masked
        return f"Message(channel={self.channel!r}, key={self.key!r}, to={self.recipient!r})"


@dataclass(frozen=True, slots=True)
class SendResult:
    provider_id: str | None
    status: str = "sent"
    segments: int | None = None  # SMS only: what the provider bills


@dataclass(eq=False)
class NotifierError(Exception):
    """A send failed. ``permanent``: never retry this delivery on this channel.
    ``opt_out``: the recipient unsubscribed from this channel (implies permanent).
    ``retry_after``: seconds the provider asked us to wait, when it said.
    ``unsure``: the request went out and no answer came back (a read timeout), so the
    provider may have accepted it; before trying again, ask it (:meth:`Notifier.was_sent`).
    ``code``: the provider's error code, when it gave one.
    ``config``: the fault is in this deployment's settings (credentials, sender): every send
    fails until someone fixes them, so it is logged as an error."""

    message: str
    permanent: bool = False
    opt_out: bool = False
    retry_after: float | None = None
    code: str | None = field(default=None)
    unsure: bool = False
    config: bool = False

    def __post_init__(self) -> None:
        super().__init__(self.message)
        if self.opt_out:
            self.permanent = True

    def __str__(self) -> str:
        return self.message


class Notifier(ABC):
    """One channel. Subclasses implement :meth:`_send`; the base does what every channel
    shares before any provider is called: :meth:`prepare` (encoding care), the length limit,
    an address to send to. Instances are shared by the dispatcher's sending threads, so
    subclasses must be thread-safe."""

    channel: ClassVar[str]
    max_length: ClassVar[int | None] = None
    # True when `was_sent` asks the provider; False when it can never tell (the dispatcher
    # then returns an interrupted delivery to pending: at-least-once, documented).
    can_tell_sent: ClassVar[bool] = False
    # True when the provider reports delivery later (POST /twilio/status for SMS): a report
    # that came before the message's id was recorded is then applied when it is.
    has_receipts: ClassVar[bool] = False

    @classmethod
    def from_settings(cls, settings: Settings) -> Notifier:
        return cls()

    # Which address of the recipient this channel sends to (None: needs none).
    address_field: ClassVar[str | None] = None

    def prepare(self, message: Message) -> Message:
        """The message as this channel sends it (SMS: typography made GSM-7)."""
        return message

    def address(self, message: Message) -> str | None:
        return getattr(message.recipient, self.address_field) if self.address_field else None

    def send(self, message: Message) -> SendResult:
        message = self.prepare(message)
        if self.max_length is not None and len(message.body) > self.max_length:
            raise NotifierError(
                f"message is {len(message.body)} characters; {self.channel} allows "
                f"{self.max_length}",
                permanent=True,
            )
        if self.address_field and not self.address(message):
            raise NotifierError(
                f"{message.recipient.household}/{message.recipient.partner} has no "
                f"{self.address_field} for {self.channel}",
                permanent=True,
            )
        return self._send(message)

    @abstractmethod
    def _send(self, message: Message) -> SendResult: ...

    def was_sent(self, message: Message, since: datetime) -> SendResult | None:
        """The provider's record of `message` sent at or after `since`, or None.

        Called for a delivery a crash left in ``sending``. The default cannot tell.
        """
        return None

    def close(self) -> None:  # noqa: B027 - optional hook, not abstract
        """Release connections; called once when the worker stops."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} channel={self.channel}>"
