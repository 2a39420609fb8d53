"""Scheduler fixtures. The ledgers (`engine`, `sqlite_engine`, `pg_engine`) are
tests/conftest.py's."""

from __future__ import annotations
