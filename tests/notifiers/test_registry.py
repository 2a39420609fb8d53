"""The notifier set: which notifier each channel gets from the settings. A TEND_NOTIFIERS
override wins without any Twilio variables; with them, SMS goes to Twilio, and checking
the notifiers at start calls nothing out."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

import pytest

from config.settings import Settings
from notifiers.base import Message, Notifier, SendResult
from notifiers.registry import NotifierSet


class PluginSms(Notifier):
    """A third-party SMS notifier (SignalWire, say): needs no Twilio variables."""

    channel: ClassVar[str] = "sms"

    def _send(self, message: Message) -> SendResult:
        return SendResult(provider_id="plugin")


def test_a_tend_notifiers_override_for_sms_is_used_without_twilio_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env
    for name in list(os.environ):
        if name.startswith(("TWILIO_", "SMTP_", "TEND_NOTIFIERS")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TEND_NOTIFIERS", "sms=tests.notifiers.test_registry:PluginSms")
    settings = Settings()
    notifiers = NotifierSet(settings, overrides=settings.notifiers)
    # README: `TEND_NOTIFIERS=sms=tend_signalwire:SignalWireNotifier` picks the class. The
    # override used to be ignored without TWILIO_*: every SMS printed and recorded as sent.
    assert type(notifiers.get("sms")) is PluginSms


def test_with_twilio_variables_sms_goes_to_twilio_and_checking_it_does_not_call_out(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("TWILIO_", "SMTP_", "TEND_NOTIFIERS")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "0" * 32)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "secret")
    monkeypatch.setenv("TWILIO_FROM", "+15550000000")
    # Nothing listens on port 9: building the notifier at start must not call the API.
    monkeypatch.setenv("TWILIO_API_BASE_URL", "http://127.0.0.1:9")
    settings = Settings()
    notifiers = NotifierSet(settings, overrides=settings.notifiers)
    # With the Twilio variables set, `tend worker` once refused to start, blaming
    # TEND_NOTIFIERS; now the start builds the Twilio notifier (and nothing else).
    notifiers.check(["sms", "console"])
    assert type(notifiers.get("sms")).__name__ == "SmsNotifier"
    assert notifiers.get("email").channel == "console"  # no SMTP settings
    notifiers.close()
