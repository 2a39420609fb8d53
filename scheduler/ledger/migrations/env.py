"""Alembic environment: run by :mod:`scheduler.ledger.schema` with a connection it hands over."""

from __future__ import annotations

from alembic import context

from scheduler.ledger.rows import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - always run through scheduler.ledger.schema
    raise RuntimeError("run migrations with `tend db upgrade`, not the alembic command")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # ALTER TABLE on SQLite is limited
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
