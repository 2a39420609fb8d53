"""The inbound side of Twilio: is a webhook request really from Twilio, what does its form
say, and the TwiML that answers it.

Twilio signs each webhook with the account's auth token over the URL it called and the form
fields (``X-Twilio-Signature``), checked here with the ``twilio`` library's
``RequestValidator``. The URL is ``TEND_PUBLIC_URL`` + the path, never the request's own Host
and scheme: behind Heroku's router or any proxy, those are not what Twilio called.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

if TYPE_CHECKING:
    from config.settings import Settings

__all__ = [
    "MAX_BODY",
    "BadForm",
    "InboundSms",
    "StatusCallback",
    "TwilioWebhooks",
    "Verdict",
    "inbound_sms",
    "parse_form",
    "status_callback",
    "twiml",
]

MAX_BODY = 64 * 1024  # Twilio's webhook forms are a few KB; more is not Twilio
MAX_ID = 64  # Twilio's ids are 34 characters, and numbers far shorter than this


class BadForm(ValueError):
    """A request that is not a form Twilio would send: `status` is the HTTP answer,
    `reason` the label it is counted under (``not_form``, ``malformed``)."""

    def __init__(self, message: str, status: int, reason: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


def parse_form(content_type: str, body: bytes) -> dict[str, str]:
    """An urlencoded form (what Twilio posts); :class:`BadForm` for anything else."""
    kind = content_type.split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise BadForm("expected a form", 415, "not_form")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise BadForm("malformed form", 400, "malformed") from None
    return dict(pairs)


def _plain(value: str) -> bool:
    # PostgreSQL text cannot hold NUL, and no real MessageSid or number has one.
    return bool(value) and len(value) <= MAX_ID and "\x00" not in value


@dataclass(frozen=True, slots=True)
class InboundSms:
    """An inbound SMS: Twilio's id for it, the sender's number, the text."""

    sid: str
    sender: str
    body: str


def inbound_sms(form: Mapping[str, str]) -> InboundSms:
    """The inbound SMS a form describes; :class:`BadForm` without a plain id and sender."""
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    sender = form.get("From") or ""
    if not (_plain(sid) and _plain(sender)):
        raise BadForm("MessageSid and From are required", 400, "malformed")
    return InboundSms(sid, sender, form.get("Body") or "")


@dataclass(frozen=True, slots=True)
class StatusCallback:
    """Twilio's word on a message it was given: its id, its status, an error code."""

    sid: str
    status: str
    error_code: str | None


def status_callback(form: Mapping[str, str]) -> StatusCallback:
    """The status callback a form describes; :class:`BadForm` without a plain id and
    status."""
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    status = form.get("MessageStatus") or form.get("SmsStatus") or ""
    if not (_plain(sid) and status and "\x00" not in status):
        raise BadForm("MessageSid and MessageStatus are required", 400, "malformed")
    error_code = (form.get("ErrorCode") or "").replace("\x00", "")[:16] or None
    return StatusCallback(sid, status, error_code)


def twiml(text: str) -> str:
    """The TwiML answer to an inbound SMS: `text` as the reply, or none when empty."""
    response = MessagingResponse()
    if text:
        response.message(text)
    return str(response)


class Verdict(Enum):
    OK = "ok"
    FORGED = "forged"  # missing or wrong signature
    UNCONFIGURED = "unconfigured"  # no auth token or no public URL: cannot check


class TwilioWebhooks:
    def __init__(self, auth_token: str | None, public_url: str | None) -> None:
        self._validator = RequestValidator(auth_token) if auth_token else None
        self.public_url = public_url.rstrip("/") if public_url else None

    @classmethod
    def from_settings(cls, settings: Settings) -> TwilioWebhooks:
        token = settings.twilio_auth_token
        return cls(
            token.get_secret_value() if token else None,
            str(settings.public_url) if settings.public_url else None,
        )

    @property
    def configured(self) -> bool:
        return self._validator is not None and self.public_url is not None

    def url(self, path: str, query: str = "") -> str:
        assert self.public_url is not None
        return f"{self.public_url}{path}" + (f"?{query}" if query else "")

    def check(
        self, path: str, query: str, form: Mapping[str, str], signature: str | None
    ) -> Verdict:
        if self._validator is None or self.public_url is None:
            return Verdict.UNCONFIGURED
        if not signature:
            return Verdict.FORGED
        valid = self._validator.validate(self.url(path, query), dict(form), signature)
        return Verdict.OK if valid else Verdict.FORGED
