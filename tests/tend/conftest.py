"""The web and CLI tests' SQLite ledger; `engine` (SQLite, then PostgreSQL) is in
tests/conftest.py."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine


@pytest.fixture
def ledger(sqlite_engine: Engine) -> Engine:
    """A migrated SQLite ledger, for the tests that need no PostgreSQL."""
    return sqlite_engine
