"""A ritual directory: ``rituals.toml`` and ``households/*.toml``, one household per file.

``rituals.toml`` is a ritual file without its ``[[households]]``: the rituals, decks and
defaults every household shares. Each file in ``households/`` holds the keys of one
``[[households]]`` table at its top level (``timezone``, ``share_pulse``, ``streak_link``,
``[[partners]]``); its id is the file's stem unless it sets ``id`` itself.

``rituals.toml`` is checked alone once (:func:`parse_shared`), then each household file
against it (:func:`parse_household`): the checks the single file runs for a household
(its names in the messages, ``to`` and ``planner``, quiet hours against each schedule) are
reported at the household file's own lines, and a broken household file holds back no
other. What needs every file (two files with one id, a ritual naming a household that has
no file) is :func:`load_ritual_directory`'s.

A single file keeps working as before: :func:`load_config` reads either.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from config.checks import HouseholdChecks, Loc, Problem, check_file
from config.loader import (
    LoadedFile,
    RitualFileError,
    RitualFilesError,
    _deck_items,
    _each,
    _format,
    _from_pydantic,
    _salvaged,
    decode,
    load_ritual_file,
    read_toml,
)
from config.model import Household, Ritual, RitualFile
from config.positions import SourceMap

__all__ = [
    "HOUSEHOLDS",
    "RITUALS",
    "HouseholdFile",
    "LoadedDirectory",
    "SharedFile",
    "combine",
    "is_ritual_directory",
    "load_config",
    "load_ritual_directory",
    "load_shared",
    "parse_household",
    "parse_shared",
]

RITUALS = "rituals.toml"
HOUSEHOLDS = "households"  # the folder of *.toml household files


def is_ritual_directory(path: Path | str) -> bool:
    """Whether `path` (a ``--config``) names a directory rather than one ritual file."""
    return Path(path).is_dir()


@dataclass(frozen=True)
class SharedFile:
    """``rituals.toml``, validated: `file` has its rituals, decks and defaults, and no
    households (``households == []``)."""

    path: str
    text: str
    file: RitualFile
    warnings: list[Problem]
    # The household checks against these rituals, for the day they were made for.
    _checks: dict[date, HouseholdChecks] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def checks(self, today: datetime) -> HouseholdChecks:
        """The checks of one household against these rituals, as of `today` (made once a
        day: what households share is worked out once, not per household)."""
        day = today.date()
        found = self._checks.get(day)
        if found is None:
            found = HouseholdChecks(
                timezone=self.file.timezone,
                rituals=self.file.rituals,
                deck_items={name: deck.items for name, deck in self.file.decks.items()},
                today=today,
            )
            self._checks.clear()
            self._checks[day] = found
        return found

    def warning_lines(self) -> list[str]:
        return [_format(self.path, p) for p in self.warnings]


@dataclass(frozen=True)
class HouseholdFile:
    """One file of ``households/``, validated against the shared rituals."""

    path: str
    stem: str
    text: str
    household: Household
    warnings: list[Problem]

    def warning_lines(self) -> list[str]:
        return [_format(self.path, p) for p in self.warnings]


@dataclass(frozen=True)
class LoadedDirectory:
    """Every file of a ritual directory: the good households and the broken files."""

    path: str
    shared: SharedFile
    households: list[HouseholdFile]  # the good ones, in file-name order
    broken: dict[str, RitualFileError]  # household file path -> its problems
    file: RitualFile  # combine(shared, good households)

    def problem_lines(self) -> list[str]:
        """Every problem of every broken household file, each line naming its file, in
        file-name order (``FILE:LINE: path: message``)."""
        return [line for error in self.broken.values() for line in error.lines()]

    def warning_lines(self) -> list[str]:
        """The warnings of rituals.toml and of each good household file."""
        lines = self.shared.warning_lines()
        for household in self.households:
            lines += household.warning_lines()
        return lines


# -- rituals.toml ---------------------------------------------------------------------------

# Stands in for the households while rituals.toml's schema is checked (the schema asks for
# at least one); never seen: the file's households are left empty.
_NO_HOUSEHOLD: dict[str, Any] = {"id": "placeholder", "partners": [{"id": "p", "name": "P"}]}


def parse_shared(text: str, *, name: str, today: datetime) -> SharedFile:
    """Validate `text` as ``rituals.toml`` (named `name` in messages): the schema, and the
    checks that need no household (decks, templates, schedules). Raises
    :class:`RitualFileError` and nothing else, whatever the text."""
    try:
        return _shared(text.removeprefix("\ufeff"), name, today)
    except RitualFileError:
        raise
    except Exception as exc:
        raise RitualFileError(name, [_unforeseen(exc)]) from None


def _shared(text: str, name: str, today: datetime) -> SharedFile:
    data = read_toml(text, name)
    problems: list[Problem] = []
    if "households" in data:
        problems.append(
            Problem(
                ("households",),
                f"households go in {HOUSEHOLDS}/ID.toml, one file each, not in {RITUALS}",
            )
        )
        data = {key: value for key, value in data.items() if key != "households"}
    file: RitualFile | None = None
    try:
        file = RitualFile.model_validate({**data, "households": [_NO_HOUSEHOLD]})
    except ValidationError as exc:
        problems += _from_pydantic(exc)
    unreadable: set[Loc] = set()
    raw_decks = data.get("decks")
    rituals: list[tuple[int, Ritual]]
    deck_items: dict[str, Sequence[str]]
    if file is not None:
        rituals = list(enumerate(file.rituals))
        deck_items = {deck_name: deck.items for deck_name, deck in file.decks.items()}
    else:
        rituals = _each(Ritual, data.get("rituals"), ("rituals",), unreadable)
        deck_items = _deck_items(raw_decks)
    raw_zone = data.get("timezone")
    problems += check_file(
        timezone=None if raw_zone is None else str(raw_zone),
        households=[],
        rituals=rituals,
        decks=list(raw_decks) if isinstance(raw_decks, dict) else [],
        households_complete=False,  # references to households are checked across files
        today=today,
        deck_items=deck_items,
        unreadable=unreadable,
        any_audience=True,
    )
    placed = _placed(problems, text, name)
    errors = [p for p in placed if p.severity == "error"]
    if errors or file is None:
        raise RitualFileError(name, errors or placed)
    warnings = [p for p in placed if p.severity == "warning"]
    return SharedFile(name, text, file.model_copy(update={"households": []}), warnings)


def load_shared(directory: Path | str, *, today: datetime) -> SharedFile:
    """Read and validate ``rituals.toml`` of the ritual directory `directory`."""
    path = Path(directory) / RITUALS
    if not Path(directory).is_dir():
        raise RitualFileError(str(directory), [Problem((), "no such directory", line=1)])
    missing = (
        f"no {RITUALS} in the ritual directory {str(directory)!r}: it holds the rituals, "
        f"decks and defaults, and {HOUSEHOLDS}/*.toml the households (`tend config split "
        "FILE DIR` makes one from a ritual file)"
    )
    return parse_shared(_read(path, missing), name=str(path), today=today)


# -- households/*.toml ----------------------------------------------------------------------


def parse_household(
    shared: SharedFile, text: str, *, name: str, stem: str, today: datetime
) -> HouseholdFile:
    """Validate `text` as one household file (named `name` in messages; its id is `stem`
    unless it sets ``id``) against the shared rituals: its schema, and every check the
    single file runs that involves this household, at this file's own lines (a problem
    about a ritual names the ritual). Raises :class:`RitualFileError` and nothing else."""
    try:
        return _household(shared, text.removeprefix("\ufeff"), name, stem, today)
    except RitualFileError:
        raise
    except Exception as exc:
        raise RitualFileError(name, [_unforeseen(exc)]) from None


def _household(
    shared: SharedFile, text: str, name: str, stem: str, today: datetime
) -> HouseholdFile:
    data = read_toml(text, name)
    problems: list[Problem] = []
    if "households" in data:  # the single file's way of writing it
        problems.append(
            Problem(
                ("households",),
                "a household file holds one household's keys at its top level: write "
                "[[partners]], not [[households.partners]], and no [[households]]",
            )
        )
        data = {key: value for key, value in data.items() if key != "households"}
    own_id = "id" in data
    if not own_id:
        data = {"id": stem, **data}
    household: Household | None = None
    unreadable: set[Loc] = set()
    try:
        household = Household.model_validate(data)
    except ValidationError as exc:
        for problem in _from_pydantic(exc):
            if problem.path == ("id",) and not own_id:
                problem = Problem(
                    ("id",),
                    f"the file's name {stem!r} is not an id ({problem.message}): rename the "
                    'file, or set id = "..." in it',
                )
            problems.append(problem)
        found = _salvaged(Household, data)
        if found is not None:
            household, unreadable = found
    if household is not None:
        problems += shared.checks(today).check(household, unreadable=unreadable)
    if not problems:  # the usual case: no positions needed, and the text is not scanned
        assert household is not None
        return HouseholdFile(name, stem, text, household, [])
    placed = _placed(problems, text, name)
    errors = [p for p in placed if p.severity == "error"]
    if errors or household is None:
        raise RitualFileError(name, errors or placed)
    return HouseholdFile(name, stem, text, household, placed)


def combine(shared: SharedFile, households: Sequence[Household]) -> RitualFile:
    """The ritual file the directory amounts to: shared rituals and these households (no
    validation again: each part is validated already)."""
    return shared.file.model_copy(update={"households": list(households)})


def _household_files(directory: Path | str) -> list[Path]:
    """The household files of a ritual directory, in file-name order; hidden files (an
    editor's lock or backup, ``.#alex.toml``) are not households."""
    folder = Path(directory) / HOUSEHOLDS
    if not folder.is_dir():
        raise RitualFileError(
            str(folder),
            [
                Problem(
                    (),
                    f"no {HOUSEHOLDS} folder: a ritual directory has {RITUALS} and "
                    f"{HOUSEHOLDS}/*.toml, one household per file",
                    line=1,
                )
            ],
        )
    return sorted(
        (p for p in folder.glob("*.toml") if p.is_file() and not p.name.startswith(".")),
        key=lambda p: p.name,
    )


def _load_household(shared: SharedFile, path: Path, today: datetime) -> HouseholdFile:
    text = _read(path, "no such file")
    return parse_household(shared, text, name=str(path), stem=path.stem, today=today)


# -- the whole directory --------------------------------------------------------------------


def load_ritual_directory(path: Path | str, *, today: datetime) -> LoadedDirectory:
    """Every file of the ritual directory `path`, and the checks across files.

    :class:`RitualFileError` only when ``rituals.toml`` is broken (a ritual naming a household
    no file has included) or there is no ``households/`` folder; a broken household file is
    in :attr:`LoadedDirectory.broken`, and the others load."""
    shared = load_shared(path, today=today)
    good: list[HouseholdFile] = []
    broken: dict[str, RitualFileError] = {}
    for file_path in _household_files(path):
        try:
            good.append(_load_household(shared, file_path, today))
        except RitualFileError as exc:
            broken[str(file_path)] = exc
    # One id, one file: a file named after its household keeps the id (a broken one too);
    # another that says the same id is reported.
    owner: dict[str, str] = {Path(p).stem: p for p in broken}
    owner.update({h.household.id: h.path for h in good if h.household.id == h.stem})
    kept: list[HouseholdFile] = []
    for household_file in good:
        household_id = household_file.household.id
        first = owner.setdefault(household_id, household_file.path)
        if first == household_file.path:
            kept.append(household_file)
            continue
        line = SourceMap.scan(household_file.text).line_of(("id",))
        broken[household_file.path] = RitualFileError(
            household_file.path,
            [Problem(("id",), f"duplicate id {household_id!r}: {first} has it too", line=line)],
        )
    broken = {p: broken[p] for p in sorted(broken, key=lambda p: Path(p).name)}
    _known_households(shared, set(owner))
    households = [h.household for h in kept]
    return LoadedDirectory(str(path), shared, kept, broken, combine(shared, households))


def _known_households(shared: SharedFile, known: set[str]) -> None:
    """Each household a ritual names has a file (good or broken); else rituals.toml is wrong."""
    problems = [
        Problem(
            ("rituals", i, "households", k),
            f"unknown household {name!r}: no file {HOUSEHOLDS}/{name}.toml (nor one that "
            f"says id = {name!r})",
        )
        for i, ritual in enumerate(shared.file.rituals)
        for k, name in enumerate(ritual.households or ())
        if name not in known
    ]
    if problems:
        raise RitualFileError(shared.path, _placed(problems, shared.text, shared.path))


def load_config(
    path: Path | str, *, today: datetime, household: str | Sequence[str] | None = None
) -> LoadedFile:
    """What a command loads from ``--config``: a single file exactly as
    :func:`~config.loader.load_ritual_file` reads it, or a ritual directory as one
    :class:`LoadedFile` (`path` the directory, `text` empty).

    A directory with any broken file raises :class:`RitualFileError` with every file's
    problems, each line naming its own file. With `household` (an id, or several), a
    directory reads only ``rituals.toml`` and those households' files
    (``households/ID.toml``, or when no file has that stem, the files that say
    ``id = "ID"``); a single file is read whole either way.
    """
    if not is_ritual_directory(path):
        return load_ritual_file(path, today=today)
    if household is not None:
        wanted = [household] if isinstance(household, str) else list(household)
        shared, found = _some(path, wanted, today)
    else:
        loaded = load_ritual_directory(path, today=today)
        if loaded.broken:
            raise RitualFilesError(str(path), list(loaded.broken.values()))
        shared, found = loaded.shared, loaded.households
    warnings = [*shared.warnings, *(w for h in found for w in h.warnings)]
    return LoadedFile(str(path), combine(shared, [h.household for h in found]), warnings, "")


def _some(
    directory: Path | str, wanted: Sequence[str], today: datetime
) -> tuple[SharedFile, list[HouseholdFile]]:
    """rituals.toml and the files of the households `wanted`, and no other."""
    shared = load_shared(directory, today=today)
    folder = Path(directory) / HOUSEHOLDS
    files: list[Path] | None = None  # every household file, listed once when needed
    found: list[HouseholdFile] = []
    errors: list[RitualFileError] = []
    for household_id in dict.fromkeys(wanted):
        named = folder / f"{household_id}.toml"
        candidates = [named] if named.is_file() else []
        matches: list[HouseholdFile] = []
        for looked_further in (False, True):
            if looked_further:  # no file of that name, or it says another id
                files = _household_files(directory) if files is None else files
                candidates = [p for p in files if p != named and _says_id(p, household_id)]
            for candidate in candidates:
                try:
                    loaded = _load_household(shared, candidate, today)
                except RitualFileError as exc:
                    errors.append(exc)
                    continue
                if loaded.household.id == household_id:
                    matches.append(loaded)
            if matches or errors:
                break
        if len(matches) > 1:
            others = ", ".join(m.path for m in matches[1:])
            line = SourceMap.scan(matches[0].text).line_of(("id",))
            problem = Problem(("id",), f"duplicate id {household_id!r}: {others} too", line=line)
            errors.append(RitualFileError(matches[0].path, [problem]))
        elif not matches and not errors:
            errors.append(
                RitualFileError(
                    str(folder),
                    [
                        Problem(
                            (),
                            f"no household {household_id!r}: "
                            + (
                                f"{household_id}.toml says another id, "
                                if named.is_file()
                                else f"no {household_id}.toml here, "
                            )
                            + f"and no file says id = {household_id!r}",
                            line=1,
                        )
                    ],
                )
            )
        found += matches[:1]
    if errors:
        raise RitualFilesError(str(directory), errors)
    return shared, found


def _says_id(path: Path, household_id: str) -> bool:
    """Whether the household file at `path` sets ``id = "ID"`` in its own table (before any
    ``[[partners]]``): read as text, not parsed, since most files are not the one."""
    try:
        text = decode(path.read_bytes(), str(path))
    except (OSError, RitualFileError):
        return False
    top = re.split(r"(?m)^\s*\[", text, maxsplit=1)[0]
    pattern = rf"""(?m)^\s*id\s*=\s*(["']){re.escape(household_id)}\1"""
    return re.search(pattern, top) is not None


# -- shared helpers -------------------------------------------------------------------------


def _read(path: Path, missing: str) -> str:
    name = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise RitualFileError(name, [Problem((), missing, line=1)]) from None
    except OSError as exc:
        raise RitualFileError(name, [Problem((), f"cannot read: {exc}", line=1)]) from None
    return decode(raw, name)


def _placed(problems: Sequence[Problem], text: str, name: str) -> list[Problem]:
    """`problems` at their lines of `text`, in the file `name`."""
    source = SourceMap.scan(text)
    return [
        Problem(p.path, p.message, p.severity, line=source.line_of(p.path), file=name)
        for p in problems
    ]


def _unforeseen(exc: Exception) -> Problem:
    """A check that failed in a way nobody foresaw: a problem of the file, not a crash."""
    return Problem((), f"cannot be checked: {type(exc).__name__}: {exc}", line=1)
