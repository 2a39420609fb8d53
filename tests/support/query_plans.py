"""The query plans SQLite makes for the statements a call runs.

SQLite plans without statistics, so the index it takes for a query is the same for a
ledger of one couple and one of 100,000 households: a test on a small ledger shows which
queries would read every delivery at the large one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event


@contextmanager
def sqlite_plans(engine: Engine, starting: str = "") -> Iterator[list[str]]:
    """Collect the statements run inside the block (those starting with `starting`); the
    list holds their plans, each a line of SQLite's EXPLAIN QUERY PLAN, once it ends."""
    assert engine.dialect.name == "sqlite"
    statements: list[tuple[str, Any]] = []

    def seen(_conn: object, _cursor: object, statement: str, parameters: Any, *_: object) -> None:
        if statement.startswith(starting):
            statements.append((statement, parameters))

    plans: list[str] = []
    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield plans
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    with engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        assert raw is not None
        plans += [
            " ".join(row[-1] for row in raw.execute(f"EXPLAIN QUERY PLAN {sql}", params))
            for sql, params in statements
        ]
