"""The ledger's schema: Alembic migrations match the models, both ways, on both databases."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from ledger_setup import reset_postgres
from sqlalchemy import Engine, insert, inspect, text

from scheduler.ledger.engine import BUSY_TIMEOUT_MS, make_engine
from scheduler.ledger.inbound import _STRANGER_ANSWERED
from scheduler.ledger.rows import Base, InboundMessageRow
from scheduler.ledger.schema import (
    SchemaBehind,
    current_revision,
    downgrade,
    ensure_schema,
    head_revision,
    pauses,
    upgrade,
    wait_for_schema,
)

TABLES = set(Base.metadata.tables)


def schema_differences(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))


def tables_of(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def test_upgrade_gives_exactly_the_schema_of_the_models(engine: Engine) -> None:
    assert tables_of(engine) == TABLES
    assert current_revision(engine) == head_revision()
    assert schema_differences(engine) == []


def test_the_comparison_notices_a_schema_that_differs_from_the_models(engine: Engine) -> None:
    # Guards the test above: an empty comparison must not be a comparison that sees nothing.
    with engine.begin() as connection:
        connection.execute(text("DROP INDEX ix_occurrence_at"))
    differences = schema_differences(engine)
    assert [d[0] for d in differences if isinstance(d, tuple)] == ["add_index"]


def test_downgrade_to_base_then_upgrade_again_gives_the_models_schema(engine: Engine) -> None:
    downgrade(engine, "base")
    assert tables_of(engine) == set()
    assert current_revision(engine) is None

    upgrade(engine)
    assert tables_of(engine) == TABLES
    assert current_revision(engine) == head_revision()
    assert schema_differences(engine) == []


def test_upgrade_twice_is_a_no_op(engine: Engine) -> None:
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    assert schema_differences(engine) == []


def test_ensure_schema_upgrades_a_new_sqlite_database(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        assert current_revision(engine) is None
        ensure_schema(engine)
        assert current_revision(engine) == head_revision()
        assert tables_of(engine) == TABLES
        ensure_schema(engine)  # and again: nothing to do
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_ensure_schema_refuses_an_empty_postgres_database(pg_engine: Engine) -> None:
    reset_postgres(pg_engine)
    with pytest.raises(SchemaBehind, match="tend db upgrade") as raised:
        ensure_schema(pg_engine)
    assert "has no Tend tables yet" in str(raised.value)
    assert head_revision() in str(raised.value)
    assert tables_of(pg_engine) == set()  # it did not migrate behind the operator's back


def test_ensure_schema_accepts_a_postgres_database_at_head(pg_engine: Engine) -> None:
    ensure_schema(pg_engine)
    assert current_revision(pg_engine) == head_revision()


def test_the_pauses_between_looks_at_the_schema_double_from_half_a_second_up_to_ten() -> None:
    assert list(islice(pauses(), 8)) == [0.5, 1, 2, 4, 8, 10, 10, 10]


class Waiting:
    """What `wait_for_schema` was told and how long it paused, with no time passing;
    `during` runs at the pause of that index, and `stop_at` gives up there."""

    def __init__(
        self, during: dict[int, Callable[[], None]] | None = None, stop_at: int | None = None
    ) -> None:
        self.during = during or {}
        self.stop_at = stop_at
        self.told: list[str] = []
        self.paused: list[float] = []

    def tell(self, behind: SchemaBehind) -> None:
        self.told.append(str(behind))

    def pause(self, seconds: float) -> bool:
        index = len(self.paused)
        self.paused.append(seconds)
        if index in self.during:
            self.during[index]()
        return index == self.stop_at


def test_waiting_for_an_empty_postgres_database_tells_once_and_ends_when_it_is_upgraded(
    pg_engine: Engine,
) -> None:
    reset_postgres(pg_engine)
    waiting = Waiting(during={3: lambda: upgrade(pg_engine)})

    assert wait_for_schema(pg_engine, waiting.pause, waiting.tell) is True

    assert waiting.paused == [0.5, 1, 2, 4]  # looked again after each pause; at head after 4
    assert len(waiting.told) == 1
    assert "no Tend tables yet" in waiting.told[0]
    assert "tend db upgrade" in waiting.told[0]


def test_waiting_for_an_older_postgres_revision_ends_when_it_is_upgraded(
    pg_engine: Engine,
) -> None:
    downgrade(pg_engine, "0003")
    waiting = Waiting(during={0: lambda: upgrade(pg_engine)})

    assert wait_for_schema(pg_engine, waiting.pause, waiting.tell) is True

    assert waiting.paused == [0.5]
    assert [told.split(";")[0] for told in waiting.told] == ["the database is at revision 0003"]


def test_a_stop_while_waiting_for_the_schema_gives_up_and_migrates_nothing(
    pg_engine: Engine,
) -> None:
    reset_postgres(pg_engine)
    waiting = Waiting(stop_at=1)

    assert wait_for_schema(pg_engine, waiting.pause, waiting.tell) is False

    assert waiting.paused == [0.5, 1]
    assert tables_of(pg_engine) == set()


def test_a_revision_this_tend_does_not_know_is_refused_without_waiting(
    pg_engine: Engine,
) -> None:
    with pg_engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'ffff'"))
    waiting = Waiting()

    with pytest.raises(SchemaBehind, match="revision ffff, which this Tend does not know"):
        wait_for_schema(pg_engine, waiting.pause, waiting.tell)

    assert waiting.paused == []
    assert waiting.told == []


def test_waiting_for_the_schema_on_sqlite_migrates_it_at_once(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    waiting = Waiting()
    try:
        assert wait_for_schema(engine, waiting.pause, waiting.tell) is True
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()
    assert (waiting.paused, waiting.told) == ([], [])


def test_sqlite_connections_use_wal_a_busy_timeout_and_foreign_keys(
    sqlite_engine: Engine,
) -> None:
    with sqlite_engine.connect() as connection:
        pragma = connection.exec_driver_sql
        assert pragma("PRAGMA journal_mode").scalar() == "wal"
        assert pragma("PRAGMA busy_timeout").scalar() == BUSY_TIMEOUT_MS == 5000
        assert pragma("PRAGMA foreign_keys").scalar() == 1


def test_every_new_sqlite_connection_gets_the_settings(sqlite_engine: Engine) -> None:
    # Two driver connections open at once (no transaction: Tend's BEGIN IMMEDIATE would make
    # the second wait for the first): the settings come with each, not just the first.
    connections = [sqlite_engine.raw_connection() for _ in range(2)]
    try:
        for connection in connections:
            cursor = connection.cursor()
            settings = [
                cursor.execute(f"PRAGMA {name}").fetchone()[0]
                for name in ("journal_mode", "busy_timeout", "foreign_keys")
            ]
            cursor.close()
            assert settings == ["wal", 5000, 1]
    finally:
        for connection in connections:
            connection.close()


def test_sqlite_foreign_keys_are_enforced(sqlite_engine: Engine) -> None:
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError), sqlite_engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO partner (household_id, key, name, channels, timezone, active) "
                "VALUES ('nobody', 'alex', 'Alex', 'sms', 'UTC', 1)"
            )
        )


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite+pysqlite://"])
def test_make_engine_refuses_an_in_memory_sqlite_database(url: str) -> None:
    with pytest.raises(ValueError, match="in-memory SQLite") as raised:
        make_engine(url)
    assert "use a file" in str(raised.value)


def test_make_engine_accepts_a_sqlite_file(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'tend.db'}")
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT 1").scalar() == 1
    finally:
        engine.dispose()
    assert (tmp_path / "tend.db").exists()


def test_the_strangers_answered_query_seeks_its_partial_index(engine: Engine) -> None:
    # An unknown number's flood leaves many unanswered rows under its number; whether it was
    # answered today must not read them (scheduler.acts.replies, STRANGER_WINDOW).
    start = datetime(2026, 1, 1, tzinfo=UTC)
    flood = "+15559990000"
    with engine.begin() as connection:
        connection.execute(
            insert(InboundMessageRow),
            [
                {
                    "provider_id": f"SM{i:032d}",
                    "channel": "sms",
                    "sender": flood if i % 2 else f"+1555{i:07d}",
                    "body": "hello",
                    "answer": "" if i > 1 else "Tend does not know this number",
                    "command": "stranger",
                    "received_at": start + timedelta(seconds=i),
                }
                for i in range(5000)
            ],
        )
        if engine.dialect.name == "postgresql":
            connection.execute(text("ANALYZE inbound_message"))
    compiled = _STRANGER_ANSWERED.compile(engine)
    values = compiled.construct_params({"sender": flood, "since": start.replace(tzinfo=None)})
    explain = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    with engine.connect() as connection:
        found = connection.execute(_STRANGER_ANSWERED, {"sender": flood, "since": start}).all()
        plan = connection.exec_driver_sql(
            explain + str(compiled),
            tuple(values[k] for k in compiled.positiontup) if compiled.positiontup else values,
        ).all()
    assert len(found) == 1
    assert "ix_inbound_message_stranger_answered" in " ".join(str(r[-1]) for r in plan)
