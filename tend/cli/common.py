"""What every command shares: the clock, the environment, the ritual file, the ledger, and
the one place that turns what went wrong into a line and an exit code.

A command raises; :func:`handled` (every command is wrapped in it) prints the line and
exits 2 for a usage problem (a bad file, a bad variable, an unreachable database), 1 for a
failure of what was asked (``Failed``), never with a traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, ParamSpec, TypeVar

import typer
from pydantic import ValidationError

from config.loader import LoadedFile, RitualFileError
from config.model import Household, Partner, RitualFile
from config.settings import Settings, without_password

if TYPE_CHECKING:  # SQLAlchemy and the drivers load only for a command that opens a ledger
    from scheduler.ledger import Ledger
    from scheduler.source import FileSource

__all__ = [
    "ConfigOption",
    "Failed",
    "HouseholdOption",
    "Usage",
    "find_partner",
    "handled",
    "ledger_for",
    "ledger_if_any",
    "load",
    "load_file",
    "now",
    "open_ledger",
    "safe_url",
    "settings",
]

P = ParamSpec("P")
R = TypeVar("R")

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Ritual file, or ritual directory (rituals.toml and households/*.toml). "
        "Default: $TEND_CONFIG, else ./tend.toml.",
        show_default=False,
    ),
]

# A command about one household, named by its id (``--household ID``, required).
HouseholdOption = Annotated[
    str, typer.Option("--household", help="The household's id.", show_default=False)
]


class Usage(Exception):
    """What was asked cannot be done as asked: its lines go to stderr (or, `stdout`, to
    stdout: ``tend check``'s problems are its output), and exit 2."""

    def __init__(self, *lines: str, code: int = 2, stdout: bool = False) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines
        self.code = code
        self.stdout = stdout


class Failed(Usage):
    """What was asked was tried and failed: its line goes to stdout, and exit 1."""

    def __init__(self, line: str) -> None:
        super().__init__(line, code=1, stdout=True)


def handled(command: Callable[P, R]) -> Callable[P, R]:
    """`command`, with every error it raises turned into lines and an exit code."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except Usage as exc:
            for line in exc.lines:
                typer.echo(line, err=not exc.stdout)
            raise typer.Exit(exc.code) from None
        except Exception as exc:
            problem = _ledger_problem(exc)
            if problem is None:
                raise
            typer.echo(problem, err=True)
            raise typer.Exit(2) from None

    return run


def _ledger_problem(exc: Exception) -> str | None:
    """The line for a ledger that is behind or cannot be reached; None for anything else.

    A command that never opened a ledger never imported it, and then `exc` is not one of
    its errors: the check costs no import.
    """
    if "scheduler.ledger" not in sys.modules:
        return None
    from scheduler.ledger import DatabaseError, SchemaBehind

    if isinstance(exc, SchemaBehind):
        return f"tend: {exc}"
    if isinstance(exc, DatabaseError):
        # One line for a database that cannot be reached, never a traceback.
        return f"tend: cannot reach the database {_url_now()}: {exc.orig}"
    return None


class _Opened:
    """The database this command opened, for the line that says it cannot be reached."""

    url = "(no database)"


def _url_now() -> str:
    return _Opened.url


def now() -> datetime:
    """The one place the CLI reads the clock."""
    return datetime.now(UTC)


def settings() -> Settings:
    """The environment (and ``.env``), once; a bad variable is one clear line, exit 2."""
    try:
        return Settings()
    except ValidationError as exc:
        lines = []
        for error in exc.errors(include_url=False):
            name = str(error["loc"][0]) if error["loc"] else "environment"
            lines.append(f"environment: {name.upper()}: {error['msg']}")
        raise Usage(*lines) from None


def safe_url(settings: Settings) -> str:
    return without_password(settings.database_url)


def open_ledger(settings: Settings) -> Ledger:
    """The one way a command opens the ledger (it connects only when first used)."""
    from scheduler.ledger import Ledger

    try:
        ledger = Ledger.at(settings.database_url)
    except ValueError as exc:
        raise Usage(f"environment: DATABASE_URL: {exc}") from None
    except ImportError as exc:  # a URL for a database whose driver Tend does not ship
        raise Usage(
            f"environment: DATABASE_URL: {exc.name or exc} is not installed; Tend supports "
            "sqlite:///FILE and postgresql:// (or postgres://) URLs"
        ) from None
    _Opened.url = safe_url(settings)
    return ledger


def ledger_if_any(
    settings: Settings, *, checking: str = "opt-outs are not checked"
) -> Ledger | None:
    """The ledger when there is one to read (never creates an SQLite file); None, with a
    note, when it cannot be read."""
    from scheduler.ledger import DatabaseError

    ledger = open_ledger(settings)
    if ledger.missing_sqlite_file():
        return None
    try:
        ledger.partners.opted_out_at("", "", "sms")  # reachable, and has the partner table
    except DatabaseError:
        typer.echo(
            f"tend: note: cannot read the ledger at {safe_url(settings)}; {checking}",
            err=True,
        )
        return None
    return ledger


def ledger_for(settings: Settings, *, first: str = "`tend run` (or `tend worker`)") -> Ledger:
    """The ledger, migrated (SQLite) or checked (PostgreSQL); exit 2 when there is none yet
    or it cannot be reached."""
    ledger = open_ledger(settings)
    if ledger.missing_sqlite_file():
        raise Usage(f"tend: no ledger at {ledger.sqlite_path} yet: start {first} first")
    ledger.ensure_schema()
    return ledger


def load(
    config: Path | None,
    *,
    errors_to_stdout: bool = False,
    settings_: Settings | None = None,
    fallback: Ledger | None = None,
) -> tuple[Settings, FileSource]:
    """Settings and the ritual file, started; its errors, then exit 2.

    With `fallback` (a long-running process), a broken file falls back to the last good one
    that ledger kept, so a restart during a bad edit does not stop sending.
    """
    from scheduler.source import FileSource

    found = settings_ or settings()
    source = FileSource(config or found.config_path, ledger=fallback, clock=now)
    try:
        loaded = source.start()
    except RitualFileError as exc:
        raise Usage(*exc.lines(), stdout=errors_to_stdout) from None
    if source.problems:
        for line in source.problems:
            typer.echo(line, err=not errors_to_stdout)
        assert source.synced_at is not None
        typer.echo(
            f"tend: starting on the last good ritual file, synced "
            f"{source.synced_at:%Y-%m-%d %H:%M} UTC; fix {source.path} and it is picked up "
            "within seconds",
            err=True,
        )
    _warnings(loaded)
    return found, source


def load_file(
    config: Path | None,
    *,
    errors_to_stdout: bool = False,
    settings_: Settings | None = None,
    household: str | Sequence[str] | None = None,
) -> tuple[Settings, LoadedFile]:
    """Settings and the ritual file or directory, for a command that reads it once; its
    errors (every file's, each line naming its own), then exit 2. With `household`, a ritual
    directory is read only as far as those households need (a single file is read whole)."""
    from config.directory import load_config

    found = settings_ or settings()
    try:
        loaded = load_config(config or found.config_path, today=now(), household=household)
    except RitualFileError as exc:
        raise Usage(*exc.lines(), stdout=errors_to_stdout) from None
    _warnings(loaded)
    return found, loaded


def _warnings(loaded: LoadedFile) -> None:
    for line in loaded.warning_lines():
        typer.echo(line, err=True)


def find_partner(file: RitualFile, to: str) -> tuple[Household, Partner]:
    """The partner `to` names: an id, or HOUSEHOLD/PARTNER when ids repeat."""
    wanted_household, _, wanted = to.rpartition("/")
    found = [
        (h, p)
        for h in file.households
        for p in h.partners
        if p.id == wanted and wanted_household in ("", h.id)
    ]
    if len(found) == 1:
        return found[0]
    if not found:
        known = ", ".join(f"{h.id}/{p.id}" for h in file.households for p in h.partners)
        raise Usage(f"tend: no partner {to!r}; the partners are {known}")
    options = ", ".join(f"{h.id}/{p.id}" for h, p in found)
    raise Usage(f"tend: {to!r} is in several households; say which: {options}")
