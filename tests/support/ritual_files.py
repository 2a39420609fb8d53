"""Ritual files for tests: the couple file most tests share, built from keyword options
instead of copied, written under a test's ``tmp_path``, and parsed as the service parses it.

The text is laid out as the hand-written copies were, so a test can still edit it with
``str.replace`` (``'["sms", "email"]'``, ``'name = "Alex"'``, ...)::

    couple_file()  # Alex and Sam in alex-sam on UTC, each with their phone, on SMS

    couple_file(
        partner_table("alex", phone=True, email=True, channels=["sms", "email"]),
        partner_table("sam", phone=True, quiet_hours="22:00-08:00"),
        timezone="America/New_York",
        households=household_table("kim-lee", partner_table("kim"), timezone="Europe/Berlin"),
        rituals=CHECK_IN,
    )
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from config.loader import parse_ritual_file
from config.model import RitualFile

# Each partner's own number (``phone=True``); e-mail addresses are ``ID@example.com``.
PHONES = {"alex": "+15551230001", "sam": "+15551230002", "kim": "+15551230003"}


def partner_table(
    id: str,
    *,
    phone: bool | str = False,
    email: bool | str = False,
    timezone: str | None = None,
    channels: Sequence[str] | None = None,
    quiet_hours: str | None = None,
) -> str:
    """One ``[[households.partners]]`` table, two spaces in, after a blank line: the id, the
    name (the id capitalised), then each field given, in the order of the arguments.
    ``phone=True`` is the partner's number in `PHONES`, ``email=True`` ``ID@example.com``;
    a string is used as it is."""
    lines = ["", "  [[households.partners]]", f'  id = "{id}"', f'  name = "{id.title()}"']
    if phone:
        lines.append(f'  phone = "{PHONES[id] if phone is True else phone}"')
    if email:
        lines.append(f'  email = "{id + "@example.com" if email is True else email}"')
    if timezone is not None:
        lines.append(f'  timezone = "{timezone}"')
    if channels is not None:
        listed = ", ".join(f'"{channel}"' for channel in channels)
        lines.append(f"  channels = [{listed}]")
    if quiet_hours is not None:
        lines.append(f'  quiet_hours = "{quiet_hours}"')
    return "\n".join(lines) + "\n"


def household_table(id: str, *partners: str, timezone: str | None = None) -> str:
    """One ``[[households]]`` table after a blank line: its id, its own zone if given, and
    its `partners` (made by :func:`partner_table`)."""
    zone = f'timezone = "{timezone}"\n' if timezone is not None else ""
    return f'\n[[households]]\nid = "{id}"\n{zone}' + "".join(partners)


def couple_file(
    *partners: str,
    timezone: str = "UTC",
    household_timezone: str | None = None,
    households: str = "",
    rituals: str = "",
) -> str:
    """The TOML text of a ritual file: the file's zone, the household alex-sam (its own zone
    if `household_timezone` is given) with `partners`, by default Alex and Sam each with
    their phone and ``channels = ["sms"]``; then `households` (more tables made by
    :func:`household_table`) and `rituals`, as written (``[[rituals]]`` tables)."""
    if not partners:
        partners = tuple(partner_table(p, phone=True, channels=["sms"]) for p in ("alex", "sam"))
    couple = household_table("alex-sam", *partners, timezone=household_timezone)
    return f'timezone = "{timezone}"\n' + couple + households + rituals


def write_ritual_file(directory: Path, text: str, name: str = "tend.toml") -> Path:
    """`text` as ``DIRECTORY/NAME`` (UTF-8); the path."""
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def ritual_file(text: str, today: datetime | None = None) -> RitualFile:
    return parse_ritual_file(
        text, name="test.toml", today=today or datetime(2026, 1, 1, tzinfo=UTC)
    ).file
