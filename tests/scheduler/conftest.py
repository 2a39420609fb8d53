"""Ledger fixtures: a migrated SQLite file per test, and the machine's PostgreSQL, reset."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, text

from config.loader import parse_ritual_file
from config.model import RitualFile
from scheduler.ledger.engine import make_engine
from scheduler.ledger.schema import upgrade


def reset_postgres(engine: Engine) -> None:
    """An empty ``public`` schema: the CI database is Tend's own."""
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))


@pytest.fixture
def sqlite_url(tmp_path: object) -> str:
    return f"sqlite:///{tmp_path}/tend.db"


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    engine = make_engine(sqlite_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_engine(postgres_url: str) -> Iterator[Engine]:
    engine = make_engine(postgres_url)
    reset_postgres(engine)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_engine(pg_engine: Engine) -> Engine:
    """`pg_engine` under the name the `engine` fixture's "postgres" parameter looks up."""
    return pg_engine


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request: pytest.FixtureRequest) -> Engine:
    """The test runs once on SQLite and once on PostgreSQL."""
    found: Engine = request.getfixturevalue(f"{request.param}_engine")
    return found


def ritual_file(text: str, today: datetime | None = None) -> RitualFile:
    return parse_ritual_file(
        text, name="test.toml", today=today or datetime(2026, 1, 1, tzinfo=UTC)
    ).file
