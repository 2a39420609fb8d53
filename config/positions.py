"""Line numbers for paths into a TOML document.

``tomllib`` reports no positions, but validation errors should point at the line they are
about.  :class:`SourceMap` scans the (already validated) TOML text once and records the line
of every table header, key and array element under the path pydantic would use for it, e.g.
``("households", 1, "partners", 0, "id")``.  This is a small character-level scanner, not a
parser: values are skipped, not decoded.
"""

from __future__ import annotations

import bisect
import contextlib
import tomllib
from collections.abc import Mapping, Sequence
from types import MappingProxyType

Path = tuple[str | int, ...]

_BARE_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_SCALAR_END = frozenset(",]}#\r\n")


class _ScanError(Exception):
    """The text is not shaped like TOML; scanning stops with what was found so far."""


def _decode_basic(raw: str) -> str:
    """The value of a quoted basic-string key such as ``"caf\\u00e9"``."""
    try:
        return str(tomllib.loads(f"k = {raw}")["k"])
    except tomllib.TOMLDecodeError as error:
        raise _ScanError(str(error)) from None


class SourceMap:
    """Lines of the tables, keys and array elements of one TOML document."""

    def __init__(self, lines: Mapping[Path, int]) -> None:
        self._lines = dict(lines)

    @property
    def lines(self) -> Mapping[Path, int]:
        """Every recorded path and its 1-based line (read-only)."""
        return MappingProxyType(self._lines)

    @classmethod
    def scan(cls, text: str) -> SourceMap:
        scanner = _Scanner(text)
        # Not valid TOML (or absurdly deep): keep the positions found so far.
        with contextlib.suppress(_ScanError, RecursionError):
            scanner.document()
        return cls(scanner.lines)

    def line_of(self, path: Sequence[str | int]) -> int:
        """Line of the longest known prefix of `path` (1 for the empty prefix)."""
        key = tuple(path)
        for end in range(len(key), 0, -1):
            line = self._lines.get(key[:end])
            if line is not None:
                return line
        return 1


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.lines: dict[Path, int] = {}
        self._newlines = [i for i, char in enumerate(text) if char == "\n"]
        self._aot_sizes: dict[Path, int] = {}  # arrays of tables: resolved path -> length

    # -- low-level helpers ---------------------------------------------------------------

    def line(self) -> int:
        return bisect.bisect_left(self._newlines, self.pos) + 1

    def peek(self, size: int = 1) -> str:
        return self.text[self.pos : self.pos + size]

    def expect(self, token: str) -> None:
        if self.peek(len(token)) != token:
            raise _ScanError(f"expected {token!r} at offset {self.pos}")
        self.pos += len(token)

    def skip_blank(self, newlines: bool) -> None:
        """Skip spaces and tabs, and with `newlines` also line breaks and comments."""
        allowed = " \t\r\n" if newlines else " \t"
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char in allowed:
                self.pos += 1
            elif char == "#" and newlines:
                end = self.text.find("\n", self.pos)
                self.pos = len(self.text) if end < 0 else end
            else:
                return

    def record(self, base: Path, keys: Sequence[str], line: int, *, keep: bool = False) -> Path:
        """Record `base + keys` at `line`, and any implicit tables on the way there.

        Earlier lines of intermediate tables are kept, and of the last key too with `keep`.
        """
        path = base
        for key in keys[:-1]:
            path = self.resolve((*path, key))
            self.lines.setdefault(path, line)
        path = (*path, keys[-1])
        if keep:
            self.lines.setdefault(path, line)
        else:
            self.lines[path] = line
        return path

    def resolve(self, path: Path) -> Path:
        """A path naming an array of tables stands for its last element."""
        size = self._aot_sizes.get(path)
        return path if size is None else (*path, size - 1)

    # -- grammar -------------------------------------------------------------------------

    def document(self) -> None:
        table: Path = ()
        while True:
            self.skip_blank(newlines=True)
            if self.pos >= len(self.text):
                return
            if self.peek() == "[":
                table = self.header()
            else:
                self.key_value(table)

    def header(self) -> Path:
        line = self.line()
        is_array = self.peek(2) == "[["
        self.pos += 2 if is_array else 1
        keys = self.key()
        self.expect("]]" if is_array else "]")
        if not is_array:
            return self.record((), keys, line)
        array = self.record((), keys, line, keep=True)  # the array's line is its first header
        index = self._aot_sizes.get(array, 0)
        self._aot_sizes[array] = index + 1
        self.lines[(*array, index)] = line
        return (*array, index)

    def key_value(self, table: Path) -> None:
        line = self.line()
        path = self.record(table, self.key(), line)
        self.expect("=")
        self.skip_blank(newlines=False)
        self.value(path)

    def key(self) -> list[str]:
        """A dotted key such as ``a . "b.c" . 'd'``; stops before the following token."""
        keys: list[str] = []
        while True:
            self.skip_blank(newlines=False)
            start, char = self.pos, self.peek()
            if char == '"':
                self.basic_string()
                raw = self.text[start : self.pos]
                keys.append(_decode_basic(raw) if "\\" in raw else raw[1:-1])
            elif char == "'":
                self.literal_string()
                keys.append(self.text[start + 1 : self.pos - 1])
            else:
                while self.pos < len(self.text) and self.text[self.pos] in _BARE_KEY_CHARS:
                    self.pos += 1
                if self.pos == start:
                    raise _ScanError(f"expected a key at offset {start}")
                keys.append(self.text[start : self.pos])
            self.skip_blank(newlines=False)
            if self.peek() != ".":
                return keys
            self.pos += 1

    def value(self, path: Path) -> None:
        char = self.peek()
        if char == "[":
            self.array(path)
        elif char == "{":
            self.inline_table(path)
        elif self.peek(3) in ('"""', "'''"):
            self.multiline_string(self.peek(3))
        elif char == '"':
            self.basic_string()
        elif char == "'":
            self.literal_string()
        else:  # number, boolean or date-time (which may contain a space)
            start = self.pos
            while self.pos < len(self.text) and self.text[self.pos] not in _SCALAR_END:
                self.pos += 1
            if self.pos == start:
                raise _ScanError(f"expected a value at offset {start}")

    def array(self, path: Path) -> None:
        self.expect("[")
        index = 0
        while True:
            self.skip_blank(newlines=True)
            if self.peek() == "]":
                self.pos += 1
                return
            element = (*path, index)
            self.lines[element] = self.line()
            self.value(element)
            self.skip_blank(newlines=True)
            if self.peek() == ",":
                self.pos += 1
            elif self.peek() != "]":
                raise _ScanError(f"expected ',' or ']' at offset {self.pos}")
            index += 1

    def inline_table(self, path: Path) -> None:
        self.expect("{")
        while True:
            self.skip_blank(newlines=True)  # newlines are TOML 1.1, harmless to accept
            if self.peek() == "}":
                self.pos += 1
                return
            self.key_value(path)
            self.skip_blank(newlines=True)
            if self.peek() == ",":
                self.pos += 1
            elif self.peek() != "}":
                raise _ScanError(f"expected ',' or '}}' at offset {self.pos}")

    def basic_string(self) -> None:
        self.expect('"')
        while (char := self.peek()) != '"':
            if char in ("", "\n"):
                raise _ScanError("unterminated string")
            self.pos += 2 if char == "\\" else 1
        self.pos += 1

    def literal_string(self) -> None:
        self.expect("'")
        end = self.text.find("'", self.pos)
        if end < 0 or "\n" in self.text[self.pos : end]:
            raise _ScanError("unterminated string")
        self.pos = end + 1

    def multiline_string(self, delimiter: str) -> None:
        self.expect(delimiter)
        while self.peek(3) != delimiter:
            if self.pos >= len(self.text):
                raise _ScanError("unterminated multi-line string")
            self.pos += 2 if delimiter == '"""' and self.peek() == "\\" else 1
        # Up to two quotes may directly precede the closing delimiter and belong to the value.
        while self.peek() == delimiter[0]:
            self.pos += 1
