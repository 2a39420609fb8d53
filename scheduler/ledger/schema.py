"""Alembic migrations, run from code: ``tend db upgrade``, or automatically on SQLite.

The migrations ship inside the package (``scheduler/migrations``), so an installed Tend
needs no ``alembic.ini``.
"""

from __future__ import annotations

from collections.abc import Callable

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from scheduler.ledger.engine import is_sqlite

__all__ = [
    "SchemaBehind",
    "check_schema",
    "current_revision",
    "downgrade",
    "ensure_schema",
    "head_revision",
    "upgrade",
]


class SchemaBehind(RuntimeError):
    """The database is not at the code's migration head; the message says what to run."""


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", "scheduler.ledger:migrations")
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
    _run(engine, command.upgrade, revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Migrate the database back to `revision` (``"base"``: no Tend tables)."""
    _run(engine, command.downgrade, revision)


def _run(engine: Engine, step: Callable[[Config, str], None], revision: str) -> None:
    config = _config()
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        step(config, revision)
        connection.commit()


def check_schema(engine: Engine) -> None:
    """Raise :class:`SchemaBehind`, saying what to run, unless the database is at head."""
    current, head = current_revision(engine), head_revision()
    if current == head:
        return
    if current is None:
        start = ", or start `tend run`" if is_sqlite(engine) else ""
        raise SchemaBehind(
            f"the database has no Tend tables yet; this Tend needs revision {head}. "
            f"Run `tend db upgrade`{start} (the Procfile's release phase does it on deploy)."
        )
    raise SchemaBehind(
        f"the database is at revision {current}; this Tend needs revision {head}. "
        "Run `tend db upgrade` (the Procfile's release phase does it on deploy)."
    )


def ensure_schema(engine: Engine) -> None:
    """Upgrade SQLite in place; refuse a PostgreSQL database that is behind.

    Several processes share a PostgreSQL database and a migration may lock tables, so it runs
    once, on purpose (``tend db upgrade``, the Procfile's ``release`` phase), not whenever a
    process happens to start.
    """
    if is_sqlite(engine):
        upgrade(engine)
    else:
        check_schema(engine)
