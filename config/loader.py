"""Reading the ritual file: TOML, then the schema, then the checks across tables.

Every problem is reported at once, as ``FILE:LINE: dotted.path: message``; nothing is
half-loaded. Lines come from :class:`config.positions.SourceMap`, since ``tomllib`` keeps none.
"""

from __future__ import annotations

import copy
import difflib
import logging
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from config.checks import Loc, Problem, check_file
from config.model import Deck, Household, Partner, Ritual, RitualFile
from config.positions import SourceMap

M = TypeVar("M", bound=BaseModel)

log = logging.getLogger(__name__)

__all__ = [
    "LoadedFile",
    "RitualFileError",
    "RitualFilesError",
    "load_ritual_file",
    "parse_ritual_file",
]


@dataclass(frozen=True)
class LoadedFile:
    path: str
    file: RitualFile
    warnings: list[Problem]
    text: str = ""  # the TOML as read: the ledger keeps the last good one

    def warning_lines(self) -> list[str]:
        return [_format(self.path, p) for p in self.warnings]


class RitualFileError(Exception):
    """The ritual file has errors; :meth:`lines` prints them for people and editors."""

    def __init__(self, path: str, problems: list[Problem]) -> None:
        self.path = path
        self.problems = sorted(problems, key=lambda p: (p.line, p.dotted))
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        return [_format(self.path, p) for p in self.problems]


class RitualFilesError(RitualFileError):
    """Problems of several files (a ritual directory's), each line naming its own file;
    the files in the order given, each file's problems by line."""

    def __init__(self, path: str, errors: Sequence[RitualFileError]) -> None:
        self.errors = list(errors)
        super().__init__(path, [p for e in self.errors for p in e.problems])
        self.problems = [p for e in self.errors for p in e.problems]

    def lines(self) -> list[str]:
        return [line for error in self.errors for line in error.lines()]


def _format(path: str, problem: Problem) -> str:
    label = "warning: " if problem.severity == "warning" else ""
    return f"{problem.file or path}:{problem.line}: {problem.dotted}: {label}{problem.message}"


def load_ritual_file(path: Path | str, *, today: datetime) -> LoadedFile:
    """Read and validate the file at `path`; raise :class:`RitualFileError` with every problem."""
    name = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise RitualFileError(
            name, [Problem((), "no such file (give --config FILE or set TEND_CONFIG)", line=1)]
        ) from None
    except OSError as exc:
        raise RitualFileError(name, [Problem((), f"cannot read: {exc}", line=1)]) from None
    return parse_ritual_file(decode(raw, name), name=name, today=today)


def decode(raw: bytes, name: str) -> str:
    """The file's text: UTF-8, as TOML requires, with a byte-order mark (which some Windows
    editors write) accepted; a byte that is not UTF-8 is reported at its own line."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        start = exc.start + (3 if raw.startswith(b"\xef\xbb\xbf") else 0)
        line = raw.count(b"\n", 0, start) + 1
        column = start - (raw.rfind(b"\n", 0, start) + 1) + 1
        problem = Problem(
            (),
            f"not UTF-8: byte 0x{raw[start]:02x} at column {column}; save the file as UTF-8",
            line=line,
        )
        raise RitualFileError(name, [problem]) from None


_TOML_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def parse_ritual_file(text: str, *, name: str, today: datetime) -> LoadedFile:
    """Validate ritual-file `text` (named `name` in messages).

    Raises :class:`RitualFileError` and nothing else, whatever the text: a check that fails
    in a way nobody foresaw is reported as a problem of the file, never as a traceback, so
    every caller's "keep the last good file" holds for it too.
    """
    try:
        return _parse(text.removeprefix("\ufeff"), name, today)
    except RitualFileError:
        raise
    except Exception as exc:
        log.debug("checking %s failed unexpectedly", name, exc_info=True)
        problem = Problem((), f"cannot be checked: {type(exc).__name__}: {exc}", line=1)
        raise RitualFileError(name, [problem]) from None


def read_toml(text: str, name: str) -> dict[str, Any]:
    """The TOML document `text` as data; :class:`RitualFileError` at the line of a syntax
    error."""
    try:
        return tomllib.loads(text)
    except RecursionError:
        raise RitualFileError(
            name, [Problem(("toml",), "not valid TOML: nested too deeply", line=1)]
        ) from None
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _TOML_AT.search(message)
        line = int(match.group(1)) if match else 1
        if match:
            message = f"{message[: match.start()]} (column {match.group(2)})"
        raise RitualFileError(
            name, [Problem(("toml",), f"not valid TOML: {message}", line=line)]
        ) from None


def _parse(text: str, name: str, today: datetime) -> LoadedFile:
    data = read_toml(text, name)
    source = SourceMap.scan(text)
    problems: list[Problem] = []
    file: RitualFile | None = None
    try:
        file = RitualFile.model_validate(data)
    except ValidationError as exc:
        problems += _from_pydantic(exc)

    unreadable: set[Loc] = set()
    raw_decks = data.get("decks")
    deck_items: dict[str, Sequence[str]]
    if file is not None:
        households = list(enumerate(file.households))
        rituals = list(enumerate(file.rituals))
        deck_items = {name: deck.items for name, deck in file.decks.items()}
        complete = True
    else:
        # What the schema refused is reported above; the checks across tables still run on
        # the rest of each table, so that one run reports every problem it can.
        households = _each(Household, data.get("households"), ("households",), unreadable)
        rituals = _each(Ritual, data.get("rituals"), ("rituals",), unreadable)
        raw_households = data.get("households")
        complete = isinstance(raw_households, list) and len(households) == len(raw_households)
        deck_items = _deck_items(raw_decks)
    # Names of every deck the file defines, valid or not: a ritual using a deck whose items
    # have an error is not also told that the deck is unknown.
    decks = list(raw_decks) if isinstance(raw_decks, dict) else []
    # The default zone as written, even when invalid (a number, an unknown name): it is
    # reported at its own line; households relying on it are not told they have no zone.
    raw_zone = data.get("timezone")
    timezone = None if raw_zone is None else str(raw_zone)
    problems += check_file(
        deck_items=deck_items,
        timezone=timezone,
        households=households,
        rituals=rituals,
        decks=decks,
        households_complete=complete,
        today=today,
        unreadable=unreadable,
    )
    placed = [Problem(p.path, p.message, p.severity, line=source.line_of(p.path)) for p in problems]
    errors = [p for p in placed if p.severity == "error"]
    if errors or file is None:
        raise RitualFileError(name, errors or placed)
    return LoadedFile(name, file, [p for p in placed if p.severity == "warning"], text)


def _from_pydantic(exc: ValidationError) -> list[Problem]:
    problems = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        message = error["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        if error["type"] == "extra_forbidden":
            message = f"unknown key {loc[-1]!r}" + _did_you_mean(str(loc[-1]), _KEYS)
        elif error["type"] == "missing":
            message = f"missing required key {loc[-1]!r}"
        elif error["type"] == "string_pattern_mismatch" and loc[-1] == "id":
            message = (
                "an id is lower-case letters, digits, '-' and '_', like 'alex' or 'date-night'"
            )
        elif error["type"] == "literal_error" and isinstance(error["input"], str):
            choices = re.findall(r"'([^']*)'", str(error.get("ctx", {}).get("expected", "")))
            message += _did_you_mean(error["input"], choices)
        problems.append(Problem(loc, message))
    return problems


#: Every key the ritual file knows, for "did you mean" on a misspelt one.
_KEYS = sorted(
    {
        name
        for model in (RitualFile, Household, Partner, Ritual, Deck)
        for name in model.model_fields
    }
)


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word.lower().replace("-", "_"), choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


#: Values put in place of ones the schema refused, by key: one a table cannot do without (a
#: ritual's schedule; the checks skip what depends on it, since it is in `unreadable`), or
#: one whose default would say something the file does not (a partner's channels left out
#: would default to SMS, and SMS has checks of its own).
_STAND_INS: dict[type[BaseModel], dict[str, Any]] = {
    Ritual: {"schedule": "daily at 12:00"},
    Household: {"channels": ["console"]},
}

#: Rounds of leaving values out: one that is left out may make another one wrong (a phone
#: refused leaves ``channels = ["sms"]`` without a number), never more than a few.
_ROUNDS = 8


def _each(model: type[M], raw: Any, where: Loc, unreadable: set[Loc]) -> list[tuple[int, M]]:
    """Each table of the list `raw` that validates once the values the schema refused are
    left out (their paths, below `where`, are added to `unreadable`). A table missing a value
    it cannot do without (an id, a partner's name, a kind) is left out itself."""
    if not isinstance(raw, list):
        return []
    valid = []
    for i, item in enumerate(raw):
        found = _salvaged(model, item)
        if found is not None:
            table, left_out = found
            valid.append((i, table))
            unreadable.update((*where, i, *loc) for loc in left_out)
    return valid


def _salvaged(model: type[M], raw: Any) -> tuple[M, set[Loc]] | None:
    """`raw` validated as `model` with the values it refuses left out, and their paths."""
    item = copy.deepcopy(raw)
    left_out: set[Loc] = set()
    for _ in range(_ROUNDS):
        try:
            return model.model_validate(item), left_out
        except ValidationError as exc:
            errors = exc.errors(include_url=False)
        progress = False
        for error in errors:
            loc = _removed(item, tuple(error["loc"]), _STAND_INS.get(model, {}))
            if loc is not None and loc not in left_out:
                left_out.add(loc)
                progress = True
        if not progress:
            return None
    return None


def _removed(item: Any, loc: Loc, stand_ins: dict[str, Any]) -> Loc | None:
    """Leave out of `item` (in place) the key of the innermost table on the way to `loc`,
    or put its stand-in there; the path of that key, or None when nothing can go."""
    table: dict[str, Any] | None = None
    path: Loc = ()
    node: Any = item
    for depth, part in enumerate(loc):
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            table, path = node, loc[: depth + 1]
        elif not (isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)):
            break
        node = node[part]
    if table is None:
        return None
    key = str(path[-1])
    if key in stand_ins:
        if table[key] == stand_ins[key]:
            return None
        table[key] = stand_ins[key]
    else:
        del table[key]
    return path


def _deck_items(raw: Any) -> dict[str, Sequence[str]]:
    """The items of each deck of the file that validates, by name."""
    if not isinstance(raw, dict):
        return {}
    items: dict[str, Sequence[str]] = {}
    for name, table in raw.items():
        try:
            items[str(name)] = Deck.model_validate(table).items
        except ValidationError:
            continue
    return items
