"""The web and CLI tests' SQLite ledger; `engine` (SQLite, then PostgreSQL) is in
tests/conftest.py."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine


@pytest.fixture
def ledger(sqlite_engine: Engine) -> Engine:
    """A migrated SQLite ledger, for the tests that need no PostgreSQL."""
    return sqlite_engine


@pytest.fixture
def database_url(backend: str, sqlite_url: str, request: pytest.FixtureRequest) -> str:
    """A new ledger for a `tend run` subprocess: an SQLite file it creates, or the machine's
    PostgreSQL emptied and migrated (`pg_engine`: a worker on PostgreSQL refuses a schema
    that is behind; `tend db upgrade` is a release step there). A module may have its own."""
    if backend == "sqlite":
        return sqlite_url
    request.getfixturevalue("pg_engine")
    url: str = request.getfixturevalue("postgres_url")
    return url
