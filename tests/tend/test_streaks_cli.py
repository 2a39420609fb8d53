"""``tend streaks`` and ``tend reply``, run in-process with Typer's runner on a ledger (SQLite
and PostgreSQL) that the planner and replies filled; the CLI's clock is travelled, not slept.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import time_machine
from june_couple import ALEX, SAM, ny, plan, rituals, send_due
from sqlalchemy import Engine, select
from typer.testing import CliRunner, Result

from scheduler.acts.replies import handle_reply
from scheduler.acts.wording import STRANGER
from scheduler.ledger import Ledger
from scheduler.ledger.engine import make_engine
from scheduler.ledger.rows import CompletionRow, InboundMessageRow, OccurrenceRow
from scheduler.reports.history import LABELS
from tend import cli
from tend.cli.ledger import GLYPHS

STREAK_KEYS = {"household", "ritual", "recipient", "current", "longest", "unit"}


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory without a `.env`, and no stray TEND_ or database variables."""
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
def ledger(workdir: Path, engine: Engine) -> Engine:
    """The shared migrated, empty ledger (SQLite, then PostgreSQL); on SQLite, the file is
    in the working directory."""
    return engine


@pytest.fixture
def database_url(ledger: Engine) -> str:
    return ledger.url.render_as_string(hide_password=False)


def tend(*args: str, url: str, config: Path, at: datetime) -> Result:
    """Run ``tend ARGS`` at `at`. A command's engine lives as long as its process, which
    here is the test's: it is closed after the run, before its connections are collected
    (a psycopg connection collected open is a ResourceWarning, an error under pytest)."""
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


def confirmed_weeks(engine: Engine, config: Path, weeks: int) -> datetime:
    """Sam confirms the first `weeks` Sunday check-ins from 7 June; the moment after the last."""
    file = plan(engine, config.read_text(), days=35)
    now = ny(6, 7, 19, 45)
    for week in range(weeks):
        now = ny(6, 7 + 7 * week, 19, 45)
        send_due(engine, now)
        handle_reply(
            Ledger(engine), file, sender=SAM, body="DONE", provider_id=f"SM{week}", now=now
        )
    return now


# ---------------------------------------------------------------------------- tend streaks


def test_streaks_as_json_prints_one_element_per_streak(
    ritual_path: Path, database_url: str, ledger: Engine
) -> None:
    now = confirmed_weeks(ledger, ritual_path, 3)

    result = tend("streaks", "--format", "json", url=database_url, config=ritual_path, at=now)

    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert isinstance(found, list)
    assert all(set(element) >= STREAK_KEYS for element in found)
    by_series = {(s["household"], s["ritual"], s["recipient"]): s for s in found}
    assert set(by_series) == {
        ("alex-sam", "check-in", None),
        ("alex-sam", "date-night", None),
        ("alex-sam", "appreciation", "alex"),
        ("alex-sam", "appreciation", "sam"),
    }
    check_in = by_series[("alex-sam", "check-in", None)]
    assert (check_in["current"], check_in["longest"], check_in["unit"]) == (3, 3, "weeks")
    date_night = by_series[("alex-sam", "date-night", None)]
    assert (date_night["current"], date_night["unit"]) == (0, "occurrences")


def test_streaks_of_one_household_and_as_a_table(
    ritual_path: Path, database_url: str, ledger: Engine
) -> None:
    now = confirmed_weeks(ledger, ritual_path, 2)

    one = tend(
        "streaks",
        "--household",
        "alex-sam",
        "--format",
        "json",
        url=database_url,
        config=ritual_path,
        at=now,
    )
    table = tend("streaks", url=database_url, config=ritual_path, at=now)

    assert one.exit_code == 0, one.output
    assert {s["household"] for s in json.loads(one.stdout)} == {"alex-sam"}
    assert table.exit_code == 0, table.output
    assert "check-in" in table.stdout
    assert "2 weeks" in table.stdout


def test_the_streaks_table_says_one_week_not_one_weeks(
    ritual_path: Path, database_url: str, ledger: Engine
) -> None:
    now = confirmed_weeks(ledger, ritual_path, 1)
    table = tend("streaks", url=database_url, config=ritual_path, at=now)
    assert table.exit_code == 0, table.output
    [row] = [line for line in table.stdout.splitlines() if " check-in " in f" {line} "]
    assert row.split()[:5] == ["alex-sam", "check-in", "both", "1", "week"], row
    assert "1 weeks" not in table.stdout


def test_streaks_of_an_unknown_household_exit_2(
    ritual_path: Path, database_url: str, ledger: Engine
) -> None:
    result = tend(
        "streaks", "--household", "unknown", url=database_url, config=ritual_path, at=ny(6, 8, 9)
    )

    assert result.exit_code == 2
    assert result.stdout == ""
    assert "unknown household 'unknown'" in result.stderr
    assert "alex-sam" in result.stderr


def test_streaks_without_a_ledger_yet_exit_2_and_say_so(ritual_path: Path, workdir: Path) -> None:
    missing = workdir / "nowhere.db"

    result = tend(
        "streaks",
        "--format",
        "json",
        url=f"sqlite:///{missing}",
        config=ritual_path,
        at=ny(6, 8, 9),
    )

    assert result.exit_code == 2
    assert result.stdout == ""
    assert f"no ledger at {missing} yet" in result.stderr
    assert not missing.exists()  # looking did not create one


# ---------------------------------------------------------------------------- tend reply


def inbound(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        return [
            dict(r)
            for r in connection.execute(
                select(*InboundMessageRow.__table__.c).order_by(InboundMessageRow.id)
            ).mappings()
        ]


def test_reply_applies_a_done_as_the_webhook_would_and_prints_the_answer(
    ritual_path: Path, database_url: str, ledger: Engine
) -> None:
    plan(ledger, ritual_path.read_text())
    now = ny(6, 7, 19, 45)
    send_due(ledger, now)

    result = tend("reply", "--from", ALEX, "DONE", url=database_url, config=ritual_path, at=now)

    assert result.exit_code == 0, result.output
    answer = (
        "Marked the check in (Sun 7 Jun) as done. That's 1 week: your streak has begun. "
        "Still open: 1) date night (Fri 5 Jun). Reply DONE 1 for it."
    )
    assert result.stdout == answer + "\n"
    (message,) = inbound(ledger)
    assert message["provider_id"].startswith("cli-")
    assert (message["sender"], message["body"], message["answer"], message["command"]) == (
        ALEX,
        "DONE",
        answer,
        "confirm",
    )
    assert (message["household_id"], message["partner_key"]) == ("alex-sam", "alex")
    assert message["received_at"] == now
    with ledger.connect() as connection:
        done = connection.execute(
            select(OccurrenceRow.ritual_id, OccurrenceRow.status, CompletionRow.partner_key)
            .join(CompletionRow, CompletionRow.occurrence_id == OccurrenceRow.id)
            .where(CompletionRow.action == "confirm", CompletionRow.source == "cli")
        ).all()
    assert [tuple(r) for r in done] == [("check-in", "confirmed", "alex")]

    # A second run is another message (another id), answered from the ledger as it is now.
    again = tend("reply", "--from", ALEX, "DONE", url=database_url, config=ritual_path, at=now)
    assert again.stdout.startswith("Marked the date night (Fri 5 Jun) as done.")
    assert len({m["provider_id"] for m in inbound(ledger)}) == 2


def test_reply_from_an_unknown_number_prints_the_stranger_answer(
    ritual_path: Path, database_url: str, ledger: Engine
) -> None:
    plan(ledger, ritual_path.read_text())

    result = tend(
        "reply",
        "--from",
        "+15550009999",
        "DONE",
        url=database_url,
        config=ritual_path,
        at=ny(6, 8, 9),
    )

    assert result.exit_code == 0, result.output
    assert result.stdout == STRANGER + "\n"
    (message,) = inbound(ledger)
    assert (message["command"], message["household_id"]) == ("stranger", None)


# ------------------------------------------------------------------ the history heatmap


def test_streaks_history_draws_a_character_per_occurrence_and_a_legend(
    ledger: Engine, database_url: str, ritual_path: Path
) -> None:
    at = confirmed_weeks(ledger, ritual_path, 3)
    result = tend_wide(
        "streaks",
        "--history",
        "--household",
        "alex-sam",
        url=database_url,
        config=ritual_path,
        at=at,
        columns=80,
    )

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "History of alex-sam, the last 12 months"
    assert "  check in" in lines
    check_in = lines[lines.index("  check in") + 1]
    assert check_in == "  ▪▪▪"  # Sam alone confirmed each
    assert all(len(line) <= 80 for line in lines)
    legend = " ".join(lines[-3:])
    for state, word in GLYPHS.items():
        assert f"{word} {LABELS[state]}" in legend


def test_streaks_format_svg_writes_the_heatmap_of_one_household(
    ledger: Engine, database_url: str, ritual_path: Path
) -> None:
    import xml.etree.ElementTree as ET

    at = confirmed_weeks(ledger, ritual_path, 3)
    result = tend(
        "streaks",
        "--format",
        "svg",
        "--household",
        "alex-sam",
        url=database_url,
        config=ritual_path,
        at=at,
    )

    assert result.exit_code == 0, result.output
    root = ET.fromstring(result.output)
    states = [
        (r.get("data-day"), r.get("data-state"))
        for r in root.iter("{http://www.w3.org/2000/svg}rect")
        if r.get("data-state")
    ]
    assert ("2026-06-07", "one") in states


def test_streaks_without_the_new_options_prints_the_table_as_before(
    ledger: Engine, database_url: str, ritual_path: Path
) -> None:
    at = confirmed_weeks(ledger, ritual_path, 1)
    result = tend("streaks", url=database_url, config=ritual_path, at=at)

    assert result.exit_code == 0, result.output
    assert "12-week rate" in result.output
    assert "■" not in result.output


def tend_wide(*args: str, url: str, config: Path, at: datetime, columns: int) -> Result:
    """``tend ARGS`` as a terminal `columns` wide would run it (Rich reads COLUMNS)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("COLUMNS", str(columns))
        return tend(*args, url=url, config=config, at=at)
