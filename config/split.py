"""One ritual file as a ritual directory (``tend config split FILE DIR``): the texts of
``rituals.toml`` and of each ``households/<id>.toml``, worked out here, written by the CLI.

The file is cut, not rewritten: each ``[[households]]`` table (with the comment block right
above its header) becomes its household's file, ``[[households.partners]]`` there reads
``[[partners]]``, and everything else stays in ``rituals.toml`` as written, comments and
layout included. The cut is then loaded as a directory and must be the same ritual file;
when it is not (households written inline, ``households = [{ ... }]``, or a layout the cut
does not foresee), the files are written from the data instead, with tomlkit: the
rituals keep their comments, the household files are plain.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import tomlkit

from config.checks import Problem
from config.directory import HOUSEHOLDS, RITUALS, combine, parse_household, parse_shared
from config.loader import RitualFileError, RitualFilesError, parse_ritual_file, read_toml
from config.model import RitualFile
from config.positions import SourceMap

__all__ = ["Split", "split_ritual_file"]


@dataclass(frozen=True)
class Split:
    """The files of the ritual directory a ritual file amounts to."""

    rituals: str  # rituals.toml
    households: dict[str, str]  # household id -> the text of households/<id>.toml, in file order
    cut: bool  # True: cut from the file as written; False: written from the data

    def paths(self) -> list[str]:
        """The files, relative to the directory."""
        return [RITUALS, *(f"{HOUSEHOLDS}/{i}.toml" for i in self.households)]


def split_ritual_file(text: str, *, name: str, today: datetime) -> Split:
    """The ritual directory of the ritual file `text` (named `name`); raises
    :class:`RitualFileError` when the file is broken (nothing to split)."""
    text = text.removeprefix("\ufeff")
    single = parse_ritual_file(text, name=name, today=today).file
    try:
        split = _cut(text)
    except _CannotCut:
        split = None
    if split is None or _loaded(split, today) != single:
        split = _written(text)
        if _loaded(split, today, strict=True) != single:  # a bug, said plainly, not half-done
            message = "as a directory it would not be the same ritual file; not split"
            raise RitualFileError(name, [Problem((), message, line=1)])
    return split


class _CannotCut(Exception):
    """The file's households are not ``[[households]]`` tables the cut understands."""


_PARTNERS = re.compile(r"^(\s*)\[\[\s*households\s*\.\s*partners\s*\]\]")
_HOUSEHOLD_HEADER = re.compile(r"^\s*\[\[\s*households\s*\]\]\s*(#.*)?$")


def _cut(text: str) -> Split:
    lines = text.splitlines(keepends=True)
    positions = SourceMap.scan(text).lines
    data = read_toml(text, "")
    households = data.get("households")
    assert isinstance(households, list)
    headers = [positions.get(("households", i)) for i in range(len(households))]
    if any(line is None for line in headers) or positions.get(("households",)) != headers[0]:
        raise _CannotCut
    starts = [line for line in headers if line is not None]
    if any(not _HOUSEHOLD_HEADER.match(lines[line - 1]) for line in starts):
        raise _CannotCut  # `households = [...]`: an inline array, not tables
    # Where something else begins: any line of a path outside the households.
    others = sorted({line for path, line in positions.items() if path[:1] != ("households",)})
    taken: set[int] = set()  # 0-based indices of the lines that go to household files
    texts: dict[str, str] = {}
    for i, start in enumerate(starts):
        following = [line for line in (*starts[i + 1 :], *others) if line > start]
        end = min(following, default=len(lines) + 1)  # 1-based, exclusive
        first, last = _own_comments_above(lines, start), _before_comments_of_next(lines, start, end)
        taken.update(range(first - 1, last - 1))
        body = lines[first - 1 : last - 1]
        household_id = households[i].get("id")
        if not isinstance(household_id, str) or household_id in texts:
            raise _CannotCut
        texts[household_id] = _household_text(body, start - first, household_id)
    rituals = "".join(line for n, line in enumerate(lines) if n not in taken)
    return Split(_tidy(rituals), texts, cut=True)


def _own_comments_above(lines: list[str], start: int) -> int:
    """The first line (1-based) of the comment block right above line `start` (no blank
    line between): it is about that table."""
    first = start
    while first > 1 and lines[first - 2].lstrip().startswith("#"):
        first -= 1
    return first


def _before_comments_of_next(lines: list[str], start: int, end: int) -> int:
    """Where a household's table ends (1-based, exclusive) when what follows starts at
    `end`: before the comment block right above that (it is about the next table)."""
    last = end
    if end > len(lines):
        return last
    while last - 1 > start and lines[last - 2].lstrip().startswith("#"):
        last -= 1
    return last


_ID_LINE = re.compile(r"""^\s*id\s*=\s*(["'])(?P<id>[^"']*)\1\s*(#.*)?$""")


def _household_text(body: list[str], header: int, household_id: str) -> str:
    """A household's lines as its own file: the header (line `header` of `body`) gone (its
    comment kept), the id left to the file's name, partners' headers without the prefix,
    and the indentation of nested tables taken back to the margin."""
    out: list[str] = []
    indent = ""
    seen_partners = False
    for n, line in enumerate(body):
        if n == header:
            comment = _HOUSEHOLD_HEADER.match(line)
            if comment and comment.group(1):
                out.append(comment.group(1) + "\n")
            continue
        match = _ID_LINE.match(line)
        if match and not seen_partners and match["id"] == household_id:
            continue
        partners = _PARTNERS.match(line)
        if partners:
            seen_partners = True
            indent = partners.group(1)
            line = _PARTNERS.sub("[[partners]]", line, count=1)
        elif indent and line.startswith(indent):
            line = line[len(indent) :]
        out.append(line)
    return _tidy("".join(out))


def _tidy(text: str) -> str:
    """No blank lines at the start, one newline at the end, at most one blank line in a row."""
    text = re.sub(r"\n(?:[ \t]*\n){2,}", "\n\n", text.lstrip("\n"))
    return text.rstrip() + "\n"


def _written(text: str) -> Split:
    """The directory's files written from the data: tomlkit keeps the comments of what
    stays in rituals.toml; each household file is its table's keys, id left out."""
    document = tomlkit.parse(text)
    households: list[Mapping[str, Any]] = [h.unwrap() for h in document["households"]]
    del document["households"]
    texts: dict[str, str] = {}
    for household in households:
        own = tomlkit.document()
        for key, value in household.items():
            if key != "id":
                own[key] = value
        texts[str(household["id"])] = tomlkit.dumps(own)
    return Split(_tidy(tomlkit.dumps(document)), texts, cut=False)


def _loaded(split: Split, today: datetime, *, strict: bool = False) -> RitualFile | None:
    """`split` loaded as a ritual directory (households in the file's order); None when it
    does not load, or with `strict` its problems, each at its file of the directory."""
    try:
        shared = parse_shared(split.rituals, name=RITUALS, today=today)
        errors: list[RitualFileError] = []
        households = []
        for household_id, text in split.households.items():
            name = f"{HOUSEHOLDS}/{household_id}.toml"
            try:
                households.append(
                    parse_household(shared, text, name=name, stem=household_id, today=today)
                )
            except RitualFileError as exc:
                errors.append(exc)
        if errors:
            raise RitualFilesError(".", errors)
    except RitualFileError:
        if strict:
            raise
        return None
    return combine(shared, [h.household for h in households])
