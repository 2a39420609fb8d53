"""Provider errors -> the dispatcher's classification, from tables."""

from __future__ import annotations

import pytest

from notifiers.email import _reply_error
from notifiers.sms import classify


@pytest.mark.parametrize(
    ("status", "code", "retry_after", "expected"),
    [
        # (HTTP status, Twilio code, Retry-After) -> opt_out / permanent / transient
        (400, 21610, None, "opt_out"),  # the recipient replied STOP
        (400, 21211, None, "permanent"),  # invalid To number
        (400, 21614, None, "permanent"),  # not a mobile number
        (400, 21408, None, "permanent"),  # no permission to send to that region
        (400, 21612, None, "permanent"),  # cannot route to this number
        (400, 21617, None, "permanent"),  # body over the concatenated limit
        (400, 21635, None, "permanent"),  # landline / unreachable carrier
        (429, 20429, 7.0, "transient"),  # too many requests
        (429, None, 3.0, "transient"),
        (500, None, None, "transient"),
        (502, None, None, "transient"),
        (503, 20500, 30.0, "transient"),
        (401, 20003, None, "transient"),  # our credentials: fix the settings, keep the work
        (400, 21606, None, "transient"),  # our From number cannot send SMS
        (400, 21603, None, "transient"),  # our request lacks a sender
        (404, 20404, None, "transient"),  # our account or service sid is wrong
        (400, 21999, None, "permanent"),  # any other 4xx: this message will not go
        (None, None, None, "transient"),  # no answer at all
    ],
)
def test_twilio_errors_are_classified(
    status: int | None, code: int | None, retry_after: float | None, expected: str
) -> None:
    error = classify(status, code, "text", retry_after)
    got = "opt_out" if error.opt_out else "permanent" if error.permanent else "transient"
    assert got == expected
    assert error.retry_after == (retry_after if expected == "transient" else None)
    if code or status:
        assert error.code == str(code or status)


@pytest.mark.parametrize(
    ("code", "ours", "expected"),
    [
        (550, False, "permanent"),  # mailbox unknown
        (553, False, "permanent"),
        (554, False, "permanent"),  # refused as spam / policy
        (552, False, "permanent"),  # too big
        (450, False, "transient"),  # mailbox busy
        (451, False, "transient"),  # local error / greylisting
        (421, False, "transient"),  # service closing
        (535, True, "transient"),  # our login refused: fix SMTP_URL, keep the work
        (553, True, "transient"),  # our sender refused: fix SMTP_FROM
    ],
)
def test_smtp_replies_are_classified(code: int, ours: bool, expected: str) -> None:
    error = _reply_error(code, b"5.1.1 text", "what", ours=ours)
    assert ("permanent" if error.permanent else "transient") == expected
    assert not error.opt_out
    assert error.code == str(code)
    if ours:
        assert "check SMTP_URL" in str(error)


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("refused <o'brien.sam@example.com>", "brien.sam"),
        ("refused sam&alex@example.org", "alex@"),
        ("number +1 555 123 0002 is not valid", "555 123 0002"),
        ("The 'To' number +15551230002 is not a valid phone number.", "5551230002"),
    ],
)
def test_mask_addresses_hides_whole_addresses(text: str, hidden: str) -> None:
    from notifiers.base import mask_addresses

    masked = mask_addresses(text)
    assert hidden not in masked
    assert "***" in masked
