"""Which class serves which channel: a literal dict, imported on first use.

Third parties add or replace a channel through the entry-point group ``tend.notifiers``
(``name = "package.module:Class"``); ``TEND_NOTIFIERS`` (``sms=package.module:Class,...``)
overrides a channel for one deployment. With no Twilio or SMTP settings, ``sms`` and
``email`` deliveries go to the console notifier, so a fresh checkout runs.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Iterable, Mapping
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from notifiers.base import Notifier

if TYPE_CHECKING:
    from config.settings import Settings

__all__ = ["CHANNELS", "NOTIFIERS", "NotifierSet", "UnknownNotifier", "load_notifier_class"]

log = logging.getLogger(__name__)

# channel -> "module:Class". Built-in channels only; see the module docstring for more.
NOTIFIERS: dict[str, str] = {
    "sms": "notifiers.sms:SmsNotifier",
    "email": "notifiers.email:EmailNotifier",
    "console": "notifiers.console:ConsoleNotifier",
}
ENTRY_POINT_GROUP = "tend.notifiers"


class UnknownNotifier(LookupError):
    pass


def load_notifier_class(path: str) -> type[Notifier]:
    """``"package.module:Class"`` -> the class, checked to be a :class:`Notifier`."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise UnknownNotifier(f"{path!r}: expected 'package.module:Class'")
    try:
        found = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise UnknownNotifier(f"{path!r}: {exc}") from exc
    if not (isinstance(found, type) and issubclass(found, Notifier)):
        raise UnknownNotifier(f"{path!r} is not a tend Notifier class")
    return found


CHANNELS = ("sms", "email", "console")


def _plugins() -> dict[str, str]:
    return {entry.name: entry.value for entry in entry_points(group=ENTRY_POINT_GROUP)}


class NotifierSet:
    """The notifiers of one process, one instance per channel, built when first needed.

    Which class serves a channel, first match wins: an object or ``TEND_NOTIFIERS`` entry in
    `overrides`; a plugin's entry point; the built-in class, when its provider's settings
    are complete; else the console, which prints what would be sent.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        overrides: Mapping[str, str | Notifier] | None = None,
    ) -> None:
        self._settings = settings
        self._builtin = dict(NOTIFIERS)
        self._chosen = _plugins()  # chosen on purpose: used whatever the settings say
        self._instances: dict[str, Notifier] = {}
        self._lock = threading.Lock()
        for channel, value in (overrides or {}).items():
            if channel not in CHANNELS:
                raise UnknownNotifier(
                    f"{channel!r} is not a channel; the channels are {', '.join(CHANNELS)}"
                )
            if isinstance(value, Notifier):
                self._instances[channel] = value
            else:
                self._chosen[channel] = value

    def _configured(self, channel: str) -> bool:
        settings = self._settings
        if settings is None:
            return False
        return {
            "sms": settings.twilio_configured,
            "email": settings.smtp_configured,
        }.get(channel, True)

    def _path_for(self, channel: str) -> str:
        if channel in self._chosen:
            return self._chosen[channel]
        if channel in self._builtin and (channel == "console" or self._configured(channel)):
            return self._builtin[channel]
        if channel in ("sms", "email"):
            missing = self._settings.missing(channel) if self._settings is not None else []
            if missing:
                raise ValueError(
                    f"{'Twilio' if channel == 'sms' else 'SMTP'} is partly set up: "
                    f"set {', '.join(missing)} as well (or unset the others to print "
                    f"{channel} messages to the console)"
                )
            return self._builtin["console"]  # no credentials: show what would be sent
        raise UnknownNotifier(f"no notifier for channel {channel!r}")

    def check(self, channels: Iterable[str]) -> None:
        """Build now the notifier of every channel chosen on purpose and of `channels`, so a
        wrong plugin or setting (an unreadable ``SMTP_URL``, say) stops the start instead of
        failing every send. Raises :class:`UnknownNotifier` or ``ValueError``."""
        for channel in sorted({*channels, *self._chosen}):
            try:
                self.get(channel)
            except ValueError as exc:
                raise ValueError(f"the {channel} notifier: {exc}") from None

    def describe(self, channels: Iterable[str]) -> str:
        """``sms: SmsNotifier, email: ConsoleNotifier``: which class serves each channel."""
        return ", ".join(f"{c}: {type(self.get(c)).__name__}" for c in channels)

    def get(self, channel: str) -> Notifier:
        with self._lock:
            found = self._instances.get(channel)
            if found is None:
                path = self._path_for(channel)
                cls = load_notifier_class(path)
                shared = next((n for n in self._instances.values() if type(n) is cls), None)
                found = shared or (
                    cls.from_settings(self._settings) if self._settings is not None else cls()
                )
                self._instances[channel] = found
            return found

    def close(self) -> None:
        with self._lock:
            for notifier in {id(n): n for n in self._instances.values()}.values():
                try:
                    notifier.close()
                except Exception:
                    log.exception("closing %r", notifier)
            self._instances.clear()
