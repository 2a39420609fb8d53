"""Alembic migrations, run from code: ``tend db upgrade``, or automatically on SQLite.

The migrations ship inside the package (``scheduler/migrations``), so an installed Tend
needs no ``alembic.ini``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Engine

from scheduler.ledger.engine import is_sqlite

__all__ = [
    "FIRST_PAUSE_SECONDS",
    "LONGEST_PAUSE_SECONDS",
    "SchemaBehind",
    "check_schema",
    "current_revision",
    "downgrade",
    "ensure_schema",
    "head_revision",
    "pauses",
    "upgrade",
    "wait_for_schema",
]

#: While waiting for the schema: the first pause before looking again, and the longest.
FIRST_PAUSE_SECONDS = 0.5
LONGEST_PAUSE_SECONDS = 10.0


class SchemaBehind(RuntimeError):
    """The database is not at the code's migration head; the message says what to run.

    `upgradable`: ``tend db upgrade`` of this Tend brings it there (it has no tables yet, or an
    older revision); not so for a revision this Tend does not know (a newer Tend's)."""

    def __init__(self, message: str, *, upgradable: bool = True) -> None:
        super().__init__(message)
        self.upgradable = upgradable


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
    if not _known(current):
        raise SchemaBehind(
            f"the database is at revision {current}, which this Tend does not know (a newer "
            f"Tend migrated it?); this Tend needs revision {head}. Run a Tend as new as the "
            "database's migrations.",
            upgradable=False,
        )
    raise SchemaBehind(
        f"the database is at revision {current}; this Tend needs revision {head}. "
        "Run `tend db upgrade` (the Procfile's release phase does it on deploy)."
    )


def _known(revision: str) -> bool:
    try:
        return ScriptDirectory.from_config(_config()).get_revision(revision) is not None
    except CommandError:  # alembic's "No such revision or branch"
        return False


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


def pauses(
    first: float = FIRST_PAUSE_SECONDS, longest: float = LONGEST_PAUSE_SECONDS
) -> Iterator[float]:
    """Seconds to pause before each look at the schema: `first`, doubled each time, capped at
    `longest` (0.5, 1, 2, 4, 8, 10, 10, ...)."""
    pause = first
    while True:
        yield pause
        pause = min(pause * 2, longest)


def wait_for_schema(
    engine: Engine,
    pause: Callable[[float], bool],
    waiting: Callable[[SchemaBehind], None],
) -> bool:
    """:func:`ensure_schema`, but a PostgreSQL database that ``tend db upgrade`` will bring to
    head is waited for, not refused: a local Procfile runner starts `web` and `worker` beside
    (or before) the upgrade. True once the schema is at head.

    `waiting` is told once, before the first pause; ``pause(seconds)`` waits between looks
    (:func:`pauses`) and returns True to give up (a stop signal: then this returns False).
    A revision this Tend does not know still raises :class:`SchemaBehind` at once.
    """
    behind = _behind(engine)
    if behind is None:
        return True
    waiting(behind)
    looks = pauses()
    with _quiet_migration_log():  # alembic's "Context impl" lines, once per look otherwise
        while not pause(next(looks)):
            if _behind(engine) is None:
                return True
    return False


def _behind(engine: Engine) -> SchemaBehind | None:
    """None when the schema is at head (SQLite: migrated); what to wait for when an upgrade
    will bring it there; raises when none will."""
    try:
        ensure_schema(engine)
    except SchemaBehind as behind:
        if not behind.upgradable:
            raise
        return behind
    return None


@contextmanager
def _quiet_migration_log() -> Iterator[None]:
    logger = logging.getLogger("alembic.runtime.migration")
    level = logger.level
    logger.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        logger.setLevel(level)
