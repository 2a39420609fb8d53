"""Fixtures for every package: the ledger on SQLite and on the machine's PostgreSQL
(``TEND_TEST_POSTGRES_URL``), and the one parametrised ``engine`` that runs a test on both."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from ledger_setup import reset_postgres
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from scheduler.ledger.engine import make_engine
from scheduler.ledger.schema import upgrade


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """The URL of a real PostgreSQL for tests; skipped on a laptop, required in CI.

    Under ``pytest -n`` (``make test``) each worker has a database of its own beside the one
    named, ``test_gw0``, ``test_gw1`` ..., created for the run and dropped after it, so
    tests that empty and migrate the ledger never meet another worker's."""
    url = os.environ.get("TEND_TEST_POSTGRES_URL")
    if not url:
        if os.environ.get("TEND_REQUIRE_POSTGRES") == "1":
            pytest.fail("TEND_REQUIRE_POSTGRES=1 but TEND_TEST_POSTGRES_URL is not set")
        pytest.skip(
            "PostgreSQL tests need TEND_TEST_POSTGRES_URL "
            "(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test); .ci/run sets it"
        )
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        yield url
        return
    with _database_of_its_own(url, f"{make_url(url).database}_{worker}") as own:
        yield own


@contextmanager
def _database_of_its_own(url: str, name: str) -> Iterator[str]:
    """A new, empty database `name` on `url`'s server (one left by a killed run is replaced);
    dropped afterwards, with any connection a process left open."""
    parsed = make_url(url)
    server = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield parsed.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(server, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/tend.db"


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    """A migrated SQLite ledger, ``tend.db`` in the test's ``tmp_path``."""
    engine = make_engine(sqlite_url)
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_engine(postgres_url: str) -> Iterator[Engine]:
    """The machine's PostgreSQL, emptied and migrated; emptied again after the test."""
    engine = make_engine(postgres_url)
    reset_postgres(engine)
    upgrade(engine)
    yield engine
    reset_postgres(engine)
    engine.dispose()


@pytest.fixture
def empty_postgres_url(postgres_url: str) -> Iterator[str]:
    """The URL of a database of the test's own, new and empty, on the test PostgreSQL's
    server; dropped after the test (with any connection a process left open)."""
    name = f"{make_url(postgres_url).database}_{uuid.uuid4().hex[:8]}"
    with _database_of_its_own(postgres_url, name) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """The test runs once on SQLite and once on PostgreSQL (ids ``[sqlite]``, ``[postgres]``).

    Most tests take ``engine``; one that needs the database some other way (a URL for a
    subprocess, a ledger not migrated yet) takes this."""
    found: str = request.param
    return found


@pytest.fixture
def engine(backend: str, request: pytest.FixtureRequest) -> Engine:
    """A migrated, empty ledger: `sqlite_engine`, then `pg_engine`."""
    found: Engine = request.getfixturevalue("sqlite_engine" if backend == "sqlite" else "pg_engine")
    return found
