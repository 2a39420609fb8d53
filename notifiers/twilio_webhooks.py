"""The inbound side of Twilio: is a webhook request really from Twilio?

Twilio signs each webhook with the account's auth token over the URL it called and the form
fields (``X-Twilio-Signature``), checked here with the ``twilio`` library's
``RequestValidator``. The URL is ``TEND_PUBLIC_URL`` + the path, never the request's own Host
and scheme: behind Heroku's router or any proxy, those are not what Twilio called.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import TYPE_CHECKING

from twilio.request_validator import RequestValidator

if TYPE_CHECKING:
    from config.settings import Settings

__all__ = ["MAX_BODY", "TwilioWebhooks", "Verdict"]

MAX_BODY = 64 * 1024  # Twilio's webhook forms are a few KB; more is not Twilio


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
