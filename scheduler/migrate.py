"""Alembic migrations, run from code: ``tend db upgrade``, or automatically on SQLite.

The migrations ship inside the package (``scheduler/migrations``), so an installed Tend
needs no ``alembic.ini``.
"""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from scheduler.db import is_sqlite

__all__ = ["SchemaBehind", "current_revision", "ensure_schema", "head_revision", "upgrade"]


class SchemaBehind(RuntimeError):
    """The database is not at the code's migration head; the message says what to run."""


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", "scheduler:migrations")
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database to `revision` (default: the newest)."""
    config = _config()
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        connection.commit()


def ensure_schema(engine: Engine) -> None:
    """Upgrade SQLite in place; refuse a PostgreSQL database that is behind.

    Several processes share a PostgreSQL database and a migration may lock tables, so it runs
    once, on purpose (``tend db upgrade``, the Procfile's ``release`` phase), not whenever a
    process happens to start.
    """
    if is_sqlite(engine):
        upgrade(engine)
        return
    current, head = current_revision(engine), head_revision()
    if current != head:
        state = "has no Tend tables yet" if current is None else f"is at revision {current}"
        raise SchemaBehind(
            f"the database {state}; this Tend needs revision {head}. "
            "Run `tend db upgrade` first (the Procfile's release phase does it on deploy)."
        )
