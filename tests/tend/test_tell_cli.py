"""``tend reply`` runs TELL through the same code as the webhook, and what the CLI shows of
a TELL afterwards: ``tend status`` lists it (about no ritual), ``tend streaks`` counts the
appreciation it did and nothing more. In-process with Typer's runner, on SQLite and
PostgreSQL, the CLI's clock travelled.

The June couple: Alex's quiet hours are 22:00-08:00 in New York; Sam's appreciation nudge
went out on Sunday 7 June at 20:00 and is open when Sam answers it at 22:30.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import time_machine
from june_couple import SAM, ny, plan, rituals, send_due
from sqlalchemy import Engine, select
from typer.testing import CliRunner, Result

from scheduler.ledger import Ledger
from scheduler.ledger.engine import make_engine
from scheduler.ledger.rows import DeliveryRow
from tend import cli


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in ("TEND_CONFIG", "DATABASE_URL", "TEND_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture
def ritual_path(workdir: Path) -> Path:
    path = workdir / "tend.toml"
    path.write_text(rituals(), encoding="utf-8")
    return path


@pytest.fixture
def database_url(workdir: Path, engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def tend(*args: str, url: str, config: Path, at: datetime) -> Result:
    """Run ``tend ARGS`` at `at`, closing the command's engines after it."""
    engines: list[Engine] = []

    def make(cls: type[Ledger], url: str, **options: Any) -> Ledger:
        engines.append(make_engine(url, **options))
        return cls(engines[-1])

    with pytest.MonkeyPatch.context() as patch, time_machine.travel(at, tick=False):
        patch.setattr(Ledger, "at", classmethod(make))
        try:
            return CliRunner().invoke(
                cli.app, list(args), env={"DATABASE_URL": url, "TEND_CONFIG": str(config)}
            )
        finally:
            for engine in engines:
                engine.dispose()


def tells(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.execute(select(DeliveryRow).where(DeliveryRow.role == "tell")))


def test_tend_reply_passes_a_tell_on_after_alexs_quiet_hours_and_status_shows_it(
    ritual_path: Path, database_url: str, engine: Engine
) -> None:
    plan(engine, ritual_path.read_text())
    now = ny(6, 7, 22, 30)
    send_due(engine, now)

    result = tend(
        "reply",
        "--from",
        SAM,
        "TELL You made Sunday lovely",
        url=database_url,
        config=ritual_path,
        at=now,
    )

    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "Alex gets it tomorrow at 08:00, after their quiet hours. "
        "Your appreciation counts as done.\n"
    )
    [row] = tells(engine)
    assert (row.partner_key, row.channel, row.status, row.body) == (
        "alex",
        "sms",
        "pending",
        "Sam: You made Sunday lovely",
    )
    assert row.inbound_id.startswith("cli-") and row.occurrence_id is None
    assert row.due_at == ny(6, 8, 8)  # the end of Alex's quiet hours

    status = tend("status", url=database_url, config=ritual_path, at=now)
    assert status.exit_code == 0, status.output
    [line] = [line for line in status.stdout.splitlines() if " tell " in line]
    assert line.split()[-5:] == ["TELL", "alex", "tell", "sms", "pending"]
    assert "lovely" not in status.stdout

    streaks = tend("streaks", "--format", "json", url=database_url, config=ritual_path, at=now)
    assert streaks.exit_code == 0, streaks.output
    by_series = {(s["ritual"], s["recipient"]): s for s in json.loads(streaks.stdout)}
    assert by_series[("appreciation", "sam")]["current"] == 1  # the TELL was Sam's DONE
    assert by_series[("appreciation", "alex")]["current"] == 0
    assert {ritual for ritual, _ in by_series} == {"check-in", "date-night", "appreciation"}


def test_tend_reply_with_a_tell_and_no_words_says_what_to_write(
    ritual_path: Path, database_url: str, engine: Engine
) -> None:
    plan(engine, ritual_path.read_text())
    result = tend(
        "reply", "--from", SAM, "tell", url=database_url, config=ritual_path, at=ny(6, 8, 9)
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("TELL needs your words after it")
    assert tells(engine) == []
