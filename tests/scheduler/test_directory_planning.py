"""A ritual directory planned as the worker plans it (:class:`DirectoryPlanner`), on both
databases: only what changed is read and planned, a re-plan with nothing changed reads no
household file and writes no row, a broken household file keeps its household on its last
good version (across a restart too), a household file renamed, removed and added back
follows the single file's rules (opt-outs and streaks), and a change to rituals.toml
re-plans every household.

Time is passed in: Monday 12 January 2026, UTC.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, select
from sqlalchemy.exc import OperationalError

from scheduler.directory import DirectorySource
from scheduler.ledger import Ledger
from scheduler.ledger.engine import is_ahead
from scheduler.ledger.rows import (
    CompletionRow,
    DeliveryRow,
    HouseholdRow,
    OccurrenceRow,
    PartnerRow,
)
from scheduler.ledger.synced import Synced
from scheduler.planner.directory import DirectoryPlanner

NOON = datetime(2026, 1, 12, 9, 0, tzinfo=UTC)

RITUALS = """\
timezone = "UTC"

[[rituals]]
id = "check-in"
kind = "check_in"
schedule = "daily at 19:00"
message = "Check-in time, {{ partner }}."
"""


def household(
    n: int, *, name: str = "Alex", quiet: str | None = None, id: str | None = None
) -> str:
    own = f'id = "{id}"\n' if id is not None else ""
    quiet_line = f'quiet_hours = "{quiet}"\n' if quiet else ""
    return (
        own
        + f"""
[[partners]]
id = "a"
name = "{name}"
phone = "+1555123{n:04d}"
channels = ["sms"]
{quiet_line}
[[partners]]
id = "b"
name = "Sam"
phone = "+1555987{n:04d}"
channels = ["sms"]
"""
    )


def write(path: Path, text: str) -> None:
    """Write `text`, and move the file's time on: a rewrite within the same tick of the
    file system's clock is still seen (size or time differ)."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    stat = path.stat()
    if stat.st_mtime_ns <= before:
        os.utime(path, ns=(stat.st_atime_ns, before + 1_000_000))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "rituals"
    (root / "households").mkdir(parents=True)
    write(root / "rituals.toml", RITUALS)
    for n in range(3):
        write(root / "households" / f"h{n}.toml", household(n))
    return root


class Writes:
    """Counts the statements that write (INSERT, UPDATE, DELETE) run on `engine`."""

    def __init__(self, engine: Engine) -> None:
        self.count = 0
        event.listen(engine, "before_cursor_execute", self._seen)
        self.engine = engine

    def _seen(self, _conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            self.count += 1

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self._seen)


@pytest.fixture
def writes(engine: Engine) -> Iterator[Writes]:
    found = Writes(engine)
    yield found
    found.close()


def start(engine: Engine, folder: Path, now: datetime) -> tuple[DirectorySource, DirectoryPlanner]:
    source = DirectorySource(folder, ledger=Ledger(engine), clock=lambda: now)
    source.start()
    return source, DirectoryPlanner(Ledger(engine), source, days=2)


def bodies(engine: Engine, household_id: str) -> list[str]:
    with engine.connect() as connection:
        return sorted(
            connection.execute(
                select(DeliveryRow.body).where(
                    DeliveryRow.household_id == household_id, DeliveryRow.status == "pending"
                )
            ).scalars()
        )


def statuses(engine: Engine, household_id: str) -> dict[str, int]:
    with engine.connect() as connection:
        rows = connection.execute(
            select(DeliveryRow.status).where(DeliveryRow.household_id == household_id)
        ).scalars()
        found: dict[str, int] = {}
        for status in rows:
            found[status] = found.get(status, 0) + 1
        return found


def active(engine: Engine) -> dict[str, bool]:
    with engine.connect() as connection:
        return dict(connection.execute(select(HouseholdRow.id, HouseholdRow.active)).tuples().all())


def test_a_directory_is_planned_and_a_re_plan_with_nothing_changed_reads_no_file_and_writes_nothing(
    engine: Engine, folder: Path, writes: Writes
) -> None:
    source, planner = start(engine, folder, NOON)
    report = planner.plan(NOON)
    assert report is not None and report.occurrences > 0
    for n in range(3):
        assert bodies(engine, f"h{n}"), f"h{n} planned"
    assert source.files_read == 3
    read, written = source.files_read, writes.count
    later = NOON + timedelta(hours=1)
    assert planner.plan(later) is None
    assert planner.plan(later + timedelta(minutes=59)) is None
    assert source.files_read == read, "no household file read"
    assert writes.count == written, "no row written"


def test_an_edited_household_file_is_read_and_planned_alone(
    engine: Engine, folder: Path, writes: Writes
) -> None:
    source, planner = start(engine, folder, NOON)
    planner.plan(NOON)
    before = {n: bodies(engine, f"h{n}") for n in range(3)}
    read = source.files_read
    write(folder / "households" / "h1.toml", household(1, name="Alexa"))
    report = planner.plan(NOON + timedelta(minutes=1))
    assert report is not None
    assert source.files_read == read + 1
    assert all("Alexa" in b for b in bodies(engine, "h1") if "Alex" in b)
    assert any("Alexa" in b for b in bodies(engine, "h1"))
    assert bodies(engine, "h0") == before[0] and bodies(engine, "h2") == before[2]
    # The next look: nothing moved again.
    written = writes.count
    assert planner.plan(NOON + timedelta(minutes=2)) is None
    assert writes.count == written


class Begins:
    """For each transaction begun on `engine`: whether its thread was inside
    ``Ledger.ahead()`` (on SQLite, ahead of the dispatcher's waiting transactions)."""

    def __init__(self, engine: Engine) -> None:
        self.ahead: list[bool] = []
        self.engine = engine
        event.listen(engine, "begin", self._seen)

    def _seen(self, _connection: object) -> None:
        self.ahead.append(is_ahead())

    def take(self) -> list[bool]:
        seen, self.ahead = self.ahead, []
        return seen


def test_an_edit_is_synced_and_planned_ahead_of_the_dispatcher_and_a_change_of_everyone_is_not(
    engine: Engine, folder: Path
) -> None:
    _source, planner = start(engine, folder, NOON)
    begins = Begins(engine)
    try:
        planner.plan(NOON)
        first = begins.take()
        assert first and not any(first), "a first plan (every household) takes turns"

        write(folder / "households" / "h1.toml", household(1, name="Alexa"))
        begins.take()
        planner.plan(NOON + timedelta(minutes=1))
        edit = begins.take()
        assert edit and all(edit), "every transaction of the edit goes ahead"
        assert any("Alexa" in b for b in bodies(engine, "h1"))

        # An edit on the morning of a new day: the edit ahead, then the households whose
        # day moved, taking turns.
        write(folder / "households" / "h2.toml", household(2, name="Robin"))
        begins.take()
        planner.plan(NOON + timedelta(days=1))
        both = begins.take()
        assert both[0] and not both[-1], both
        assert both == sorted(both, reverse=True), "never ahead again once the edit is done"

        write(folder / "rituals.toml", RITUALS.replace("Check-in time", "Time to talk"))
        begins.take()
        planner.plan(NOON + timedelta(days=1, minutes=1))
        everyone = begins.take()
        assert everyone and not any(everyone), "a change of rituals.toml takes turns"
    finally:
        event.remove(engine, "begin", begins._seen)


def test_a_broken_household_file_keeps_its_household_on_the_last_good_version_and_the_others_go_on(
    engine: Engine, folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _source, planner = start(engine, folder, NOON)
    planner.plan(NOON)
    kept = bodies(engine, "h1")
    write(folder / "households" / "h1.toml", household(1).replace('name = "Alex"', "name = 4"))
    write(folder / "households" / "h2.toml", household(2, name="Robin"))
    with caplog.at_level(logging.ERROR, logger="scheduler.service"):
        planner.plan(NOON + timedelta(minutes=1))
    said = [r.getMessage() for r in caplog.records if "h1.toml" in r.getMessage()]
    assert len(said) == 1 and "stays on its last good version" in said[0], said
    assert "h1.toml:" in said[0]  # file:line
    assert bodies(engine, "h1") == kept, "h1 as it was: nothing cancelled"
    assert any("Robin" in b for b in bodies(engine, "h2")), "the others go on"
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="scheduler.service"):
        planner.plan(NOON + timedelta(minutes=2))
    assert not [r for r in caplog.records if "h1.toml" in r.getMessage()], "said once"

    # A restart with the file still broken: the ledger's last good version, planned on.
    slots_before = slots(engine, "h1")
    next_day = NOON + timedelta(days=1)
    _source, planner = start(engine, folder, next_day)
    with caplog.at_level(logging.ERROR, logger="scheduler.service"):
        planner.plan(next_day)
    assert any("stays on its last good version" in r.getMessage() for r in caplog.records)
    assert slots(engine, "h1") > slots_before, "its horizon moved on with the day"
    assert active(engine)["h1"] is True

    # Mended: picked up, said so.
    write(folder / "households" / "h1.toml", household(1, name="Alexis"))
    planner.plan(next_day + timedelta(minutes=1))
    assert any("Alexis" in b for b in bodies(engine, "h1"))


def test_a_household_file_removed_and_added_back_keeps_its_history_and_its_opt_out(
    engine: Engine, folder: Path
) -> None:
    _source, planner = start(engine, folder, NOON)
    planner.plan(NOON)
    ledger = Ledger(engine)
    ledger.partners.record_opt_out("h1", "b", "sms", NOON)
    occurrence = _first_occurrence(engine, "h1")
    with engine.begin() as connection:
        connection.execute(
            CompletionRow.__table__.insert().values(
                occurrence_id=occurrence,
                partner_key="a",
                action="confirm",
                at=NOON,
                source="sms",
            )
        )
    text = (folder / "households" / "h1.toml").read_text()
    (folder / "households" / "h1.toml").unlink()
    planner.plan(NOON + timedelta(minutes=1))
    assert active(engine) == {"h0": True, "h1": False, "h2": True}
    assert "pending" not in statuses(engine, "h1"), "nothing more is sent to h1"

    write(folder / "households" / "h1.toml", text)
    planner.plan(NOON + timedelta(minutes=2))
    assert active(engine)["h1"] is True
    assert "pending" in statuses(engine, "h1")
    with engine.connect() as connection:
        opted = connection.execute(
            select(PartnerRow.sms_opted_out_at).where(
                PartnerRow.household_id == "h1", PartnerRow.key == "b"
            )
        ).scalar_one()
        done = connection.execute(
            select(CompletionRow.id).where(CompletionRow.occurrence_id == occurrence)
        ).all()
    assert opted is not None, "the opt-out belongs to the number"
    assert len(done) == 1, "its history stays"


def test_a_renamed_household_file_is_another_household_unless_it_keeps_its_id(
    engine: Engine, folder: Path
) -> None:
    _source, planner = start(engine, folder, NOON)
    planner.plan(NOON)
    households = folder / "households"
    (households / "h1.toml").rename(households / "kim-lee.toml")
    planner.plan(NOON + timedelta(minutes=1))
    assert active(engine) == {"h0": True, "h1": False, "h2": True, "kim-lee": True}
    # Renamed again, now saying which household it is: h1 again, kim-lee gone.
    (households / "kim-lee.toml").unlink()
    write(households / "couple-one.toml", household(1, id="h1"))
    planner.plan(NOON + timedelta(minutes=2))
    assert active(engine) == {"h0": True, "h1": True, "h2": True, "kim-lee": False}


def test_a_change_to_rituals_toml_plans_every_household_again(engine: Engine, folder: Path) -> None:
    _source, planner = start(engine, folder, NOON)
    planner.plan(NOON)
    write(folder / "rituals.toml", RITUALS.replace("Check-in time", "Time to talk"))
    report = planner.plan(NOON + timedelta(minutes=1))
    assert report is not None
    for n in range(3):
        found = bodies(engine, f"h{n}")
        assert found and all(b.startswith("Time to talk") for b in found), found


def test_a_rituals_toml_some_household_is_not_valid_against_is_refused_as_a_whole(
    engine: Engine, folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _source, planner = start(engine, folder, NOON)
    planner.plan(NOON)
    before = {n: bodies(engine, f"h{n}") for n in range(3)}
    # `to` names a partner h2 does not have.
    write(folder / "households" / "h2.toml", household(2).replace('id = "b"', 'id = "c"'))
    planner.plan(NOON + timedelta(minutes=1))
    changed = RITUALS.replace("Check-in time", "Time to talk") + 'to = "b"\n'
    write(folder / "rituals.toml", changed)
    with caplog.at_level(logging.ERROR, logger="scheduler.service"):
        assert planner.plan(NOON + timedelta(minutes=2)) is None
    said = "\n".join(r.getMessage() for r in caplog.records)
    assert "rituals.toml" in said and "h2.toml" in said, said
    assert bodies(engine, "h0") == before[0], "the last good rituals.toml stays for everyone"


def test_the_next_local_day_is_planned_from_the_ledger_without_reading_a_household_file(
    engine: Engine, folder: Path
) -> None:
    source, planner = start(engine, folder, NOON)
    planner.plan(NOON)
    read = source.files_read
    with engine.connect() as connection:
        before = len(connection.execute(select(OccurrenceRow.id)).all())
    report = planner.plan(NOON + timedelta(days=1))
    assert report is not None and report.occurrences == 3, "one more day for each household"
    with engine.connect() as connection:
        after = len(connection.execute(select(OccurrenceRow.id)).all())
    assert after == before + 3
    assert source.files_read == read


def test_a_plan_a_crash_cut_short_after_the_sync_is_finished_by_the_next_process(
    engine: Engine, folder: Path
) -> None:
    source, planner = start(engine, folder, NOON)
    planner.plan(NOON)
    write(folder / "households" / "h0.toml", household(0, name="Alexandra"))
    # The sync is written; the process dies before it plans (its planned_hash says so).
    look = source.look()
    for read in source.read(look):
        from config.directory import combine

        assert source.shared is not None
        view = combine(source.shared, [f.household for f in read.changed])
        Ledger(engine).synced.sync_households(
            view,
            {f.household.id: source.digest_of(f.household.id) or "" for f in read.changed},
            NOON,
        )
    assert not any("Alexandra" in b for b in bodies(engine, "h0"))
    _source, planner = start(engine, folder, NOON + timedelta(minutes=5))
    planner.plan(NOON + timedelta(minutes=5))
    assert any("Alexandra" in b for b in bodies(engine, "h0"))


def slots(engine: Engine, household_id: str) -> int:
    with engine.connect() as connection:
        return len(
            connection.execute(
                select(OccurrenceRow.slot).where(OccurrenceRow.household_id == household_id)
            ).all()
        )


def _first_occurrence(engine: Engine, household_id: str) -> int:
    with engine.connect() as connection:
        found: int = (
            connection.execute(
                select(OccurrenceRow.id)
                .where(OccurrenceRow.household_id == household_id)
                .order_by(OccurrenceRow.at)
            )
            .scalars()
            .first()
        )
    return found


def test_with_the_file_watch_a_look_stats_only_the_files_it_heard_of(
    engine: Engine, folder: Path
) -> None:
    import threading

    source, planner = start(engine, folder, NOON)
    planner.plan(NOON)
    assert source.full_looks == 1
    woken = threading.Event()
    assert source.watch(woken.set)
    try:
        write(folder / "households" / "h1.toml", household(1, name="Alexa"))
        assert woken.wait(30), "the watch heard of the edit"
        look = source.look()
        assert look.touched == ["h1"] and not look.gone
        assert source.full_looks == 1, "no full look while the watch runs"
        for read in source.read(look):
            assert [f.household.id for f in read.changed] == ["h1"]
        woken.clear()
        (folder / "households" / "h2.toml").unlink()
        assert woken.wait(30)
        look = source.look()
        assert look.gone == ["h2"] and not look.touched
    finally:
        source.stop_watching()


def test_an_edit_whose_sync_failed_part_way_is_synced_and_planned_at_the_next_look(
    engine: Engine, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database failed (a lock that timed out, a lost connection) after the look had
    seen the edit: the next plan still finds it, from the files against the ledger."""
    _source, planner = start(engine, folder, NOON)
    planner.plan(NOON)
    write(folder / "households" / "h1.toml", household(1, name="Alexa"))
    write(folder / "households" / "h2.toml", household(2, name="Robin"))
    (folder / "households" / "h0.toml").unlink()

    def locked(*_args: object, **_kwargs: object) -> None:
        raise OperationalError(
            "BEGIN IMMEDIATE", {}, sqlite3.OperationalError("database is locked")
        )

    with monkeypatch.context() as failing:
        failing.setattr(Synced, "sync_households", locked)
        with pytest.raises(OperationalError):
            planner.plan(NOON + timedelta(minutes=1))
    assert not any("Alexa" in b for b in bodies(engine, "h1"))
    planner.plan(NOON + timedelta(minutes=2))
    assert any("Alexa" in b for b in bodies(engine, "h1"))
    assert any("Robin" in b for b in bodies(engine, "h2"))
    assert active(engine) == {"h0": False, "h1": True, "h2": True}
    assert "pending" not in statuses(engine, "h0")


def test_the_file_watch_goes_on_after_a_plan_it_woke_failed(
    engine: Engine, folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import threading

    source, planner = start(engine, folder, NOON)
    planner.plan(NOON)
    first, again = threading.Event(), threading.Event()

    def wake() -> None:
        if not first.is_set():
            first.set()
            raise OperationalError("BEGIN", {}, sqlite3.OperationalError("database is locked"))
        again.set()

    assert source.watch(wake)
    try:
        with caplog.at_level(logging.ERROR, logger="scheduler.service"):
            write(folder / "households" / "h1.toml", household(1, name="Alexa"))
            assert first.wait(30), "the watch heard of the first edit"
            write(folder / "households" / "h2.toml", household(2, name="Robin"))
            assert again.wait(30), "the watch heard of the second edit"
    finally:
        source.stop_watching()
    said = [r.getMessage() for r in caplog.records]
    assert any("planning after a change of the ritual directory failed" in m for m in said)
    assert not any("the file watch stopped" in m for m in said)


def test_the_watch_hears_of_an_edit_while_a_plan_it_woke_is_still_under_way(
    engine: Engine, folder: Path
) -> None:
    """The worker's wake-up is its plan, and a zone's new day makes that plan long (90 s at
    100,000 households): the watch must hear of an edit meanwhile, or the plan has nothing
    to give way to. Edits heard during the plan make one more wake-up after it."""
    source, planner = start(engine, folder, NOON)
    planner.plan(NOON)
    in_plan, release, again = threading.Event(), threading.Event(), threading.Event()
    calls = 0

    def wake() -> None:  # the first stands for a long plan
        nonlocal calls
        calls += 1
        if calls == 1:
            assert source.look().touched == ["h1"]  # as the plan looks first
            in_plan.set()
            assert release.wait(30)
        else:
            again.set()

    assert source.watch(wake)
    try:
        write(folder / "households" / "h1.toml", household(1, name="Alexa"))
        assert in_plan.wait(30), "the watch woke the plan"
        write(folder / "households" / "h2.toml", household(2, name="Robin"))
        write(folder / "households" / "h0.toml", household(0, name="Kim"))
        deadline = time.monotonic() + 30
        while not source.heard_of_changes() and time.monotonic() < deadline:
            in_plan.wait(0.01)  # a real inotify event on its way, not a clock to pass
        assert source.heard_of_changes(), "heard of while the plan it woke still runs"
        assert calls == 1
        release.set()
        assert again.wait(30), "one more wake-up for what was heard meanwhile"
        assert sorted(source.look().touched) == ["h0", "h2"]
    finally:
        release.set()
        source.stop_watching()


def test_a_household_file_broken_by_itself_does_not_hold_back_a_change_to_rituals_toml(
    engine: Engine, folder: Path
) -> None:
    _source, planner = start(engine, folder, NOON)
    planner.plan(NOON)
    write(folder / "households" / "h2.toml", "[[partners]\n")
    planner.plan(NOON + timedelta(minutes=1))
    write(folder / "rituals.toml", RITUALS.replace("Check-in time", "Time to talk"))
    planner.plan(NOON + timedelta(minutes=2))
    for n in range(2):
        assert all(b.startswith("Time to talk") for b in bodies(engine, f"h{n}"))


def test_a_rituals_toml_changed_while_no_worker_ran_is_judged_against_the_synced_one(
    engine: Engine, folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _source, planner = start(engine, folder, NOON)
    planner.plan(NOON)
    before = bodies(engine, "h0")
    # Stopped; meanwhile h2 loses partner b, and rituals.toml sends to partner b alone.
    write(folder / "households" / "h2.toml", household(2).replace('id = "b"', 'id = "c"'))
    write(folder / "rituals.toml", RITUALS.replace("Check-in time", "Talk") + 'to = "b"\n')
    later = NOON + timedelta(minutes=30)
    with caplog.at_level(logging.ERROR, logger="scheduler.service"):
        source, planner = start(engine, folder, later)
        planner.plan(later)
    said = "\n".join(r.getMessage() for r in caplog.records)
    assert "not in force" in said and "h2.toml" in said, said
    assert bodies(engine, "h0") == before, "the synced rituals.toml stays in force"
    assert source.problems is not None


def test_a_households_folder_that_cannot_be_listed_ends_no_household(
    engine: Engine, folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _source, planner = start(engine, folder, NOON)
    planner.plan(NOON)
    hidden = folder / "households-away"
    (folder / "households").rename(hidden)  # a network mount gone, say
    with caplog.at_level(logging.ERROR, logger="scheduler.service"):
        planner.plan(NOON + timedelta(minutes=1))
        _source, again = start(engine, folder, NOON + timedelta(minutes=2))
        again.plan(NOON + timedelta(minutes=2))
    assert active(engine) == {"h0": True, "h1": True, "h2": True}
    assert any("cannot list" in r.getMessage() for r in caplog.records)
    hidden.rename(folder / "households")
    write(folder / "households" / "h1.toml", household(1, name="Back"))
    again.plan(NOON + timedelta(minutes=3))
    assert any("Back" in b for b in bodies(engine, "h1"))


def test_a_file_renamed_with_its_id_or_saying_another_id_keeps_one_household_for_each_id(
    engine: Engine, folder: Path
) -> None:
    _source, planner = start(engine, folder, NOON)
    planner.plan(NOON)
    households = folder / "households"
    before = statuses(engine, "h1")
    # Renamed and told its id in one go: the same household, nothing doubled or cancelled.
    (households / "h1.toml").unlink()
    write(households / "couple-one.toml", household(1, id="h1"))
    planner.plan(NOON + timedelta(minutes=1))
    assert active(engine) == {"h0": True, "h1": True, "h2": True}
    assert statuses(engine, "h1") == before
    # A file that now says another id: the household it held is gone, the new one planned.
    write(households / "couple-one.toml", household(1, id="kim-lee"))
    planner.plan(NOON + timedelta(minutes=2))
    assert active(engine) == {"h0": True, "h1": False, "h2": True, "kim-lee": True}
    assert "pending" not in statuses(engine, "h1")
    assert statuses(engine, "kim-lee").get("pending") == before.get("pending")


def test_a_broken_edit_undone_is_said_and_breaking_it_again_is_said_again(
    engine: Engine, folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _source, planner = start(engine, folder, NOON)
    planner.plan(NOON)
    path = folder / "households" / "h1.toml"
    good = path.read_text()
    with caplog.at_level(logging.INFO, logger="scheduler.service"):
        write(path, good.replace("+1555", "+1"))
        planner.plan(NOON + timedelta(minutes=1))
        write(path, good)  # undone, as an editor's undo or `git checkout` would
        planner.plan(NOON + timedelta(minutes=2))
        write(path, good.replace("+1555", "+1"))
        planner.plan(NOON + timedelta(minutes=3))
    said = [r.getMessage() for r in caplog.records if "h1.toml" in r.getMessage()]
    assert [m.split(" ", 1)[1][:14] for m in said] == [
        "has errors; ho",
        "is good again",
        "has errors; ho",
    ], said


def test_the_watch_hears_of_edits_in_a_directory_given_by_a_relative_path(
    engine: Engine, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    monkeypatch.chdir(folder.parent)
    source = DirectorySource(Path(folder.name), ledger=Ledger(engine), clock=lambda: NOON)
    source.start()
    DirectoryPlanner(Ledger(engine), source, days=2).plan(NOON)
    woken = threading.Event()
    assert source.watch(woken.set)
    try:
        write(folder / "households" / "h0.toml", household(0, name="Alexa"))
        assert woken.wait(30)
        assert source.look().touched == ["h0"]
    finally:
        source.stop_watching()


def planned_in_order(
    monkeypatch: pytest.MonkeyPatch, during_first: Callable[[], None]
) -> list[str]:
    """Plan one household a chunk, recording which; `during_first` runs inside the first
    chunk's plan (an edit made while a long plan is under way)."""
    import scheduler.planner.directory as directory_planner

    monkeypatch.setattr(directory_planner, "CHUNK", 1)
    order: list[str] = []
    real = directory_planner.plan_horizon

    def plan_horizon(*args: Any, **kwargs: Any) -> Any:
        order.extend(kwargs["households"])
        if len(order) == 1:
            during_first()
        return real(*args, **kwargs)

    monkeypatch.setattr(directory_planner, "plan_horizon", plan_horizon)
    return order


def edit_heard(source: DirectorySource, folder: Path, woken: threading.Event) -> Callable[[], None]:
    def edit() -> None:
        write(folder / "households" / "h2.toml", household(2, name="Robin"))
        assert woken.wait(30), "the watch heard of the edit"

    return edit


def test_a_plan_of_the_households_whose_day_moved_gives_way_to_an_edit_between_chunks(
    engine: Engine, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A zone's midnight moves the day of every household in it (25,000 of 100,000): an
    edit made meanwhile is planned after the chunk under way, then the rest."""
    source, planner = start(engine, folder, NOON)
    planner.plan(NOON)
    days = slots(engine, "h0")
    woken = threading.Event()
    assert source.watch(woken.set)
    try:
        order = planned_in_order(monkeypatch, edit_heard(source, folder, woken))
        tomorrow = NOON + timedelta(days=1)
        first = planner.plan(tomorrow)
        assert first is not None and not first.complete
        assert order == ["h0"]
        assert not any("Robin" in b for b in bodies(engine, "h2"))

        second = planner.plan(tomorrow)  # what the watch's wake-up runs
        assert second is not None and second.complete
        assert order == ["h0", "h2", "h1"]
        assert any("Robin" in b for b in bodies(engine, "h2"))
        assert planner.plan(tomorrow) is None  # each household's new day planned once
        assert [slots(engine, h) for h in ("h0", "h1", "h2")] == [days + 1] * 3
    finally:
        source.stop_watching()


def test_a_first_plan_of_every_household_gives_way_to_an_edit_and_plans_it_first(
    engine: Engine, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = DirectorySource(folder, ledger=Ledger(engine), clock=lambda: NOON)
    source.start()
    planner = DirectoryPlanner(Ledger(engine), source, days=2)
    woken = threading.Event()
    assert source.watch(woken.set)
    try:
        order = planned_in_order(monkeypatch, edit_heard(source, folder, woken))
        first = planner.plan(NOON)
        assert first is not None and not first.complete
        assert order == ["h0"]
        second = planner.plan(NOON)
        assert second is not None and second.complete
        assert order == ["h0", "h2", "h1"]
        assert any("Robin" in b for b in bodies(engine, "h2"))
        assert planner.plan(NOON) is None
    finally:
        source.stop_watching()


def test_the_watch_passes_over_hidden_files_as_a_full_look_does(
    engine: Engine, folder: Path
) -> None:
    """An editor's hidden copy (``.h1.toml``) is no household file: a full look leaves it
    out, and so must a look at what the watch heard of."""
    source, planner = start(engine, folder, NOON)
    planner.plan(NOON)
    woken = threading.Event()
    assert source.watch(woken.set)
    try:
        write(folder / "households" / ".h1.toml", household(1, name="Draft"))
        assert woken.wait(30)
        assert not source.heard_of_changes()
        look = source.look()
        assert look.touched == [] and look.gone == []
        assert planner.plan(NOON) is None
    finally:
        source.stop_watching()
    assert ".h1" not in active(engine)
