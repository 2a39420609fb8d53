"""`tend send-test`: one real message through the worker's notifier, its outcome printed."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fake_twilio import FakeTwilio
from ledger_setup import add_household

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "tend.toml"
SAM = "+15551230002"  # the example's Sam


def tend(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("TWILIO_", "SMTP_", "TEND_"))
        and name not in ("FORCE_COLOR", "COLUMNS")
    }
    environment.update(NO_COLOR="1", PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "tend", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    with FakeTwilio() as fake:
        yield fake


def twilio_env(fake: FakeTwilio) -> dict[str, str]:
    return {
        "TWILIO_ACCOUNT_SID": fake.account_sid,
        "TWILIO_AUTH_TOKEN": fake.auth_token,
        "TWILIO_FROM": "+15550001111",
        "TWILIO_API_BASE_URL": fake.base_url,
    }


def test_without_credentials_the_console_shows_the_message(tmp_path: Path) -> None:
    done = tend("send-test", "--to", "sam", "--config", str(EXAMPLE), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Tend test for Sam: sms works." in done.stdout
    assert "sent: alex-sam/sam by sms (+1*******002): console-1" in done.stdout
    assert SAM not in done.stdout + done.stderr


def test_through_twilio_it_prints_the_provider_id(tmp_path: Path, fake: FakeTwilio) -> None:
    done = tend(
        "send-test", "--to", "alex-sam/sam", "--config", str(EXAMPLE),
        cwd=tmp_path, env=twilio_env(fake),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [sent] = fake.messages
    assert sent["to"] == SAM
    assert f"sent: alex-sam/sam by sms (+1*******002): {sent['sid']} (queued, 1 segment(s))" in (
        done.stdout
    )
    assert SAM not in done.stdout + done.stderr
    assert fake.auth_token not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("code", "kind"),
    [(21610, "opted out"), (21211, "permanent"), (20429, "transient")],
)
def test_a_provider_error_is_printed_classified(
    tmp_path: Path, fake: FakeTwilio, code: int, kind: str
) -> None:
    fake.fail_next(
        429 if code == 20429 else 400, code=code, retry_after=30 if code == 20429 else None
    )
    done = tend(
        "send-test", "--to", "sam", "--config", str(EXAMPLE), cwd=tmp_path, env=twilio_env(fake)
    )
    assert done.returncode == 1
    assert done.stdout.startswith(
        f"failed ({kind}): alex-sam/sam by sms (+1*******002): Twilio {code}"
    )
    if code == 20429:
        assert "retry after 30 s" in done.stdout
    assert fake.messages == []
    assert SAM not in done.stdout + done.stderr


def test_unknown_partner_or_missing_address_is_one_clear_line(tmp_path: Path) -> None:
    done = tend("send-test", "--to", "robin", "--config", str(EXAMPLE), cwd=tmp_path)
    assert done.returncode == 2
    assert "no partner 'robin'; the partners are alex-sam/alex, alex-sam/sam" in done.stderr
    ritual = tmp_path / "one.toml"
    ritual.write_text(
        EXAMPLE.read_text()
        .replace('email = "sam@example.com"', "")
        .replace('channels = ["sms", "email"]\n\n  [[households.partners]]\n  id = "sam"', "x")
    )
    text = EXAMPLE.read_text()
    start = text.index('id = "sam"')
    end = text.index("\n\n", start)
    sam = text[start:end]
    ritual.write_text(
        text[:start]
        + sam.replace('email = "sam@example.com"\n', "").replace('["sms", "email"]', '["sms"]')
        + text[end:]
    )
    done = tend(
        "send-test", "--to", "sam", "--channel", "email", "--config", str(ritual), cwd=tmp_path
    )
    assert done.returncode == 2, done.stdout
    assert "alex-sam/sam has no address for email" in done.stderr


def ledger_with_the_couple(tmp_path: Path) -> str:
    """The example's couple in a ledger; Sam unsubscribed from e-mail on 1 November."""
    from scheduler.ledger.engine import make_engine
    from scheduler.ledger.schema import upgrade

    url = f"sqlite:///{tmp_path / 'tend.db'}"
    engine = make_engine(url)
    upgrade(engine)
    now = datetime(2026, 11, 1, tzinfo=UTC)
    both = {"channels": "sms,email"}
    add_household(
        engine,
        "alex-sam",
        {
            "alex": {**both, "phone": "+15551230001", "email": "alex@example.com"},
            "sam": {**both, "phone": SAM, "email": "sam@example.com", "email_opted_out_at": now},
        },
        now,
    )
    engine.dispose()
    return url


def sms_opted_out_at(url: str) -> object:
    from sqlalchemy import select

    from scheduler.ledger.engine import make_engine
    from scheduler.ledger.rows import PartnerRow

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(
                select(PartnerRow.sms_opted_out_at).where(PartnerRow.key == "sam")
            ).scalar_one()
    finally:
        engine.dispose()


def test_a_partner_who_unsubscribed_gets_no_test_either(tmp_path: Path) -> None:
    url = ledger_with_the_couple(tmp_path)
    done = tend(
        "send-test", "--to", "sam", "--channel", "email", "--config", str(EXAMPLE),
        cwd=tmp_path, env={"DATABASE_URL": url},
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stdout.startswith(
        "failed (opted out): alex-sam/sam by email (s***@example.com): opted out on "
        "2026-11-01 00:00 UTC"
    )
    assert "Tend test for Sam" not in done.stdout  # the console printed nothing


def test_an_opt_out_twilio_reports_is_recorded(tmp_path: Path, fake: FakeTwilio) -> None:
    url = ledger_with_the_couple(tmp_path)
    fake.opted_out.add(SAM)
    done = tend(
        "send-test", "--to", "sam", "--config", str(EXAMPLE),
        cwd=tmp_path, env={**twilio_env(fake), "DATABASE_URL": url},
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stdout.startswith("failed (opted out):")
    assert "recorded in the ledger" in done.stdout
    assert sms_opted_out_at(url) is not None
    again = tend(
        "send-test", "--to", "sam", "--config", str(EXAMPLE),
        cwd=tmp_path, env={**twilio_env(fake), "DATABASE_URL": url},
    )  # fmt: skip
    assert again.returncode == 1
    assert "(recorded in the ledger); not sent" in again.stdout
    assert len([r for r in fake.requests if r.method == "POST"]) == 1  # not asked again


def test_without_a_ledger_none_is_created(tmp_path: Path) -> None:
    done = tend("send-test", "--to", "sam", "--config", str(EXAMPLE), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "tend.db").exists()


@pytest.mark.parametrize("command", [("send-test", "--to", "sam"), ("worker",)])
def test_a_half_set_up_provider_stops_the_start_instead_of_printing(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    # An empty TWILIO_FROM= in .env once sent every SMS to the console, recorded as sent.
    env = {"TWILIO_ACCOUNT_SID": "AC" + "1" * 32, "TWILIO_AUTH_TOKEN": "t" * 32, "TWILIO_FROM": ""}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'tend.db'}"
    done = tend(*command, "--config", str(EXAMPLE), cwd=tmp_path, env=env)
    assert done.returncode == 2
    assert "Twilio is partly set up: set TWILIO_FROM or TWILIO_MESSAGING_SERVICE_SID" in (
        done.stderr
    )
    assert "Tend test for Sam" not in done.stdout


def test_without_any_provider_the_console_says_so(tmp_path: Path) -> None:
    done = tend("send-test", "--to", "sam", "--config", str(EXAMPLE), cwd=tmp_path)
    assert done.returncode == 0
    assert "printed here: no Twilio settings, so sms goes to the console" in done.stdout


def test_opt_in_undoes_an_unsubscribe_and_send_test_then_sends(tmp_path: Path) -> None:
    url = ledger_with_the_couple(tmp_path)  # Sam unsubscribed from e-mail
    env = {"DATABASE_URL": url}
    args = ("--to", "sam", "--channel", "email", "--config", str(EXAMPLE))
    done = tend("opt-in", *args, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "alex-sam/sam gets email messages again\n"
    again = tend("opt-in", *args, cwd=tmp_path, env=env)
    assert "had not opted out of email: nothing changed" in again.stdout
    sent = tend("send-test", *args, cwd=tmp_path, env=env)
    assert sent.returncode == 0, sent.stdout
    assert "Tend test for Sam: email works." in sent.stdout
