from __future__ import annotations

import datetime as dt
import re
import tomllib
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.positions import Path, SourceMap

SAMPLE = '''\
timezone = "America/New_York"

[[households]]
id = "alex-sam"

  [[households.partners]]
  id = "alex"
  channels = ["sms"]

  [[households.partners]]
  id = "sam"
  channels = [
    "sms",   # first choice
    "email",
  ]

[[households]]
id = "jo-kim"

  [[households.partners]]
  id = "jo"
  phone = "+15550100"

  [[households.partners]]
  id = "kim"
  email = "kim@example.com"

[[rituals]]
id = "date-night"
message = """
Date night! [not a table]
x = "not a key"
"""
schedule = { times = 3, per = "week", between = "10:00-20:00" }

[[rituals]]
id = "check-in"
schedule.times = 1
schedule.per = "day"

[decks.date-ideas]
items = ["a, b", "c # not a comment", 'd']
'''


def _all_paths(value: Any, prefix: Path = ()) -> Iterator[Path]:
    """Every key and array-element path of a parsed TOML value."""
    if isinstance(value, dict):
        children: Iterator[tuple[str | int, Any]] = iter(value.items())
    elif isinstance(value, list):
        children = iter(enumerate(value))
    else:
        return
    for key, child in children:
        yield (*prefix, key)
        yield from _all_paths(child, (*prefix, key))


def _scan_valid(text: str) -> SourceMap:
    """Scan `text` after checking it is valid TOML and that exactly its paths are recorded."""
    document = tomllib.loads(text)
    source_map = SourceMap.scan(text)
    assert set(source_map.lines) == set(_all_paths(document))
    return source_map


# -- the ritual sample -------------------------------------------------------------------------


def test_sample_records_exactly_the_paths_of_the_document() -> None:
    _scan_valid(SAMPLE)


@pytest.mark.parametrize(
    ("path", "line"),
    [
        ((), 1),
        (("timezone",), 1),
        (("households",), 3),
        (("households", 0), 3),
        (("households", 0, "id"), 4),
        (("households", 0, "partners"), 6),
        (("households", 0, "partners", 0), 6),
        (("households", 0, "partners", 0, "channels", 0), 8),
        (("households", 0, "partners", 1), 10),
        (("households", 0, "partners", 1, "id"), 11),
        (("households", 0, "partners", 1, "channels"), 12),
        (("households", 0, "partners", 1, "channels", 0), 13),
        (("households", 0, "partners", 1, "channels", 1), 14),
        (("households", 1), 17),
        (("households", 1, "id"), 18),
        (("households", 1, "partners"), 20),
        (("households", 1, "partners", 0), 20),
        (("households", 1, "partners", 0, "phone"), 22),
        (("households", 1, "partners", 1), 24),
        (("households", 1, "partners", 1, "email"), 26),
        (("rituals",), 28),
        (("rituals", 0, "message"), 30),
        (("rituals", 0, "schedule"), 34),
        (("rituals", 0, "schedule", "per"), 34),
        (("rituals", 1), 36),
        (("rituals", 1, "schedule"), 38),
        (("rituals", 1, "schedule", "times"), 38),
        (("rituals", 1, "schedule", "per"), 39),
        (("decks",), 41),
        (("decks", "date-ideas"), 41),
        (("decks", "date-ideas", "items"), 42),
        (("decks", "date-ideas", "items", 0), 42),
        (("decks", "date-ideas", "items", 2), 42),
    ],
)
def test_sample_lines(path: Path, line: int) -> None:
    assert SourceMap.scan(SAMPLE).line_of(path) == line


@pytest.mark.parametrize(
    ("path", "line"),
    [
        # Missing fields and bad values deeper than anything recorded: longest known prefix.
        (("households", 1, "partners", 1, "phone"), 24),
        (("households", 0, "partners", 1, "channels", 1, "kind"), 14),
        (("rituals", 0, "schedule", "between", "start"), 34),
        (("decks", "date-ideas", "items", 3), 42),
        (("households", 7, "id"), 3),
        # Look-alikes inside the multi-line string were not recorded.
        (("rituals", 0, "x"), 28),
        (("not a table",), 1),
        # Unknown first key.
        (("nope",), 1),
        ((0,), 1),
        (("households", "0"), 3),
    ],
)
def test_line_of_falls_back_to_the_longest_known_prefix(path: Path, line: int) -> None:
    assert SourceMap.scan(SAMPLE).line_of(path) == line


def test_line_of_accepts_any_sequence() -> None:
    assert SourceMap.scan(SAMPLE).line_of(["households", 1, "id"]) == 18


def test_empty_document() -> None:
    assert SourceMap.scan("").line_of(("a", 0)) == 1


# -- table headers -----------------------------------------------------------------------------

HEADERS = """\
[ a . b ]  # a comment [c]
k = 1
[decks."date-ideas"]
items = []
['x']
[ "a.b" . 'c d' . e ]
["caf\\u00e9"]
[[ aot ]] # first
[[aot]]
[aot . sub]
z = 1
[t1.t2.t3]
[t1]
[[o]]
[[o.p]]
[[o.p]]
[[o]]
[o.q]
[[o.p]]
[[o.p.r]]
"""


@pytest.mark.parametrize(
    ("path", "line"),
    [
        (("a",), 1),
        (("a", "b"), 1),
        (("a", "b", "k"), 2),
        (("decks", "date-ideas"), 3),
        (("decks", "date-ideas", "items"), 4),
        (("x",), 5),
        (("a.b",), 6),
        (("a.b", "c d", "e"), 6),
        (("café",), 7),
        (("aot",), 8),
        (("aot", 0), 8),
        (("aot", 1), 9),
        (("aot", 1, "sub"), 10),
        (("aot", 1, "sub", "z"), 11),
        (("t1", "t2"), 12),
        (("t1", "t2", "t3"), 12),
        (("t1",), 13),  # the explicit header wins over the implicit table
        (("o", 0, "p"), 15),
        (("o", 0, "p", 1), 16),
        (("o", 1), 17),
        (("o", 1, "q"), 18),
        (("o", 1, "p"), 19),
        (("o", 1, "p", 0), 19),
        (("o", 1, "p", 0, "r", 0), 20),
    ],
)
def test_headers(path: Path, line: int) -> None:
    assert _scan_valid(HEADERS).line_of(path) == line


# -- keys --------------------------------------------------------------------------------------

KEYS = """\
a.b = 1
"quoted key" = 2
'literal.key' = 3
  p . "q.r" . 's' = 4
"esc\\"aped" = 5
[t]
x.y.z = true
x.w = 2020-01-01 12:00:00
1234 = 0x1f  # bare keys may be digits
inline = { k = 1, "n.m" = { deep = 2 }, d.e = 3 }
"""


@pytest.mark.parametrize(
    ("path", "line"),
    [
        (("a",), 1),
        (("a", "b"), 1),
        (("quoted key",), 2),
        (("literal.key",), 3),
        (("p", "q.r", "s"), 4),
        (('esc"aped',), 5),
        (("t", "x"), 7),
        (("t", "x", "y", "z"), 7),
        (("t", "x", "w"), 8),
        (("t", "1234"), 9),
        (("t", "inline", "n.m", "deep"), 10),
        (("t", "inline", "d", "e"), 10),
    ],
)
def test_keys(path: Path, line: int) -> None:
    assert _scan_valid(KEYS).line_of(path) == line


# -- multi-line strings ------------------------------------------------------------------------

STRINGS = '''\
basic = """
x = 1
[table]
[[aot]]
not = "closed\\""" yet \\
   still = "inside"
"""
after_basic = 1
quotes = """two quotes end it"""""
literal = \'\'\'
y = 2
[[also.not.a.table]]
a backslash \\\'\'\'
after_literal = 2
single = "with \\" # [ ] , = inside"
lit = '# [ ] , = "'
'''


@pytest.mark.parametrize(
    ("path", "line"),
    [
        (("basic",), 1),
        (("after_basic",), 8),
        (("quotes",), 9),
        (("literal",), 10),
        (("after_literal",), 14),
        (("single",), 15),
        (("lit",), 16),
    ],
)
def test_multiline_strings_are_skipped(path: Path, line: int) -> None:
    assert _scan_valid(STRINGS).line_of(path) == line


# -- arrays ------------------------------------------------------------------------------------

ARRAYS = """\
items = [
  "a, b",  # comment with ] and [ and ,
  "c # not a comment",
  'd]',

  # a whole-line comment
  "e \\" ]",
]
nested = [ [1, 2], [
    3,
    [4, 5],
  ], [],
]
people = [
  { name = "alex", schedule = { times = 3, per = "week" } },
  {name="sam"},
  { tags = ["x", "y"], nums = [
    1,
  ] },
]
flat = [1, 2.5, true, 1979-05-27 07:32:00Z, "s", 's', [], {}]
text = [\"\"\"
a = 1
\"\"\", '''
[b]
''', "last"]
"""


@pytest.mark.parametrize(
    ("path", "line"),
    [
        (("items",), 1),
        (("items", 0), 2),
        (("items", 1), 3),
        (("items", 2), 4),
        (("items", 3), 7),
        (("nested", 0), 9),
        (("nested", 0, 1), 9),
        (("nested", 1), 9),
        (("nested", 1, 0), 10),
        (("nested", 1, 1), 11),
        (("nested", 1, 1, 1), 11),
        (("nested", 2), 12),
        (("people", 0), 15),
        (("people", 0, "schedule", "per"), 15),
        (("people", 1), 16),
        (("people", 1, "name"), 16),
        (("people", 2, "tags", 1), 17),
        (("people", 2, "nums", 0), 18),
        (("flat", 3), 21),
        (("flat", 7), 21),
        (("text", 0), 22),
        (("text", 1), 24),
        (("text", 2), 26),
    ],
)
def test_arrays(path: Path, line: int) -> None:
    assert _scan_valid(ARRAYS).line_of(path) == line


def test_crlf_line_endings() -> None:
    text = 'a = 1\r\n[t]\r\nb = [\r\n  "x",\r\n  "y",\r\n]\r\n'
    assert _scan_valid(text).line_of(("t", "b", 1)) == 5


# -- robustness --------------------------------------------------------------------------------

HANDMADE = [
    "",
    "\n\n# only a comment",
    "a = 1",
    "a=1#c\nb=2",
    "a = \"\"\nb = ''",
    "a = \"\"\"\"\"\"\nb = ''''''",
    'a = """\\\n  continued"""',
    "a = '''''two quotes'''''",
    "a = [ ]\nb = [[]]\nc = [[[1]], [[2, [3]]]]",
    "a = {}\nb = { }\nc = {x={y={z=1}}}",
    "[[a]]\n[[a]]\n[[a.b]]\n[a.b.c]\n[[a]]",
    "t = 1979-05-27T00:32:00.999999-07:00\nd = 1979-05-27\nh = 07:32:00",
    "f = [inf, -inf, nan, +1_000, 0o17, 0b11, 6.626e-34]",
    '"" = 1\n[x.\'\'.""]',
    "a = [\n# c\n]\n",
    "a = 'x' # ''' \"\"\"",
]


@pytest.mark.parametrize("text", HANDMADE)
def test_handmade_documents(text: str) -> None:
    _scan_valid(text)


@given(st.text(alphabet="ab =.\"'[]{},#\\\n\t", max_size=40) | st.text(max_size=20))
def test_scan_never_raises_even_on_invalid_text(text: str) -> None:
    source_map = SourceMap.scan(text)
    assert source_map.line_of(("a", 0, "b")) >= 1


# Generated documents: random data rendered in randomly chosen TOML styles.

_BARE = re.compile(r"[A-Za-z0-9_-]+")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_TRICKY = ["x = 1", "[table]", "[[aot]]", "# hash", '"', "'", "\\", "a, b]", "{ y = 2 }", ""]
_COMMENTS = ["", "  # x = [1", ' # """', " #[[a]]", " # '''"]

_keys = st.one_of(
    st.from_regex(r"[A-Za-z0-9_-]{1,6}", fullmatch=True),
    st.sampled_from(["a.b", "x y", "é", 'say "hi"', "it's", "[t]", "#h", "=", "", "b\\s"]),
    st.text(max_size=4),
)
_strings = st.text(max_size=12) | st.lists(st.sampled_from(_TRICKY), max_size=4).map("\n".join)
_scalars = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    _strings,
    st.datetimes(),
    st.dates(),
    st.times(),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(_keys, inner, max_size=4),
        st.lists(st.dictionaries(_keys, inner, max_size=3), min_size=1, max_size=3),
    ),
    max_leaves=20,
)
_documents = st.dictionaries(_keys, _values, max_size=5)


def _escape(text: str, keep_newlines: bool) -> str:
    def one(char: str) -> str:
        if char in '"\\':
            return "\\" + char
        if char == "\n" and keep_newlines:
            return char
        return f"\\u{ord(char):04X}" if _CONTROL.match(char) else char

    return "".join(map(one, text))


class _Writer:
    def __init__(self, data: st.DataObject) -> None:
        self.data = data
        self.out: list[str] = []

    def pick(self, options: list[str]) -> str:
        return self.data.draw(st.sampled_from(options))

    def coin(self) -> bool:
        return self.data.draw(st.booleans())

    def key(self, key: str) -> str:
        if _BARE.fullmatch(key) and self.coin():
            return key
        if "'" not in key and not _CONTROL.search(key) and self.coin():
            return f"'{key}'"
        return f'"{_escape(key, keep_newlines=False)}"'

    def keys(self, keys: list[str]) -> str:
        return self.pick([".", " . ", ". "]).join(map(self.key, keys))

    def string(self, text: str) -> str:
        forms = [f'"{_escape(text, keep_newlines=False)}"']
        forms.append(f'"""\n{_escape(text, keep_newlines=True)}"""')
        if "'" not in text and not _CONTROL.search(text.replace("\n", "")):
            forms.append(f"'''\n{text}'''")
            if "\n" not in text:
                forms.append(f"'{text}'")
        return self.pick(forms)

    def value(self, value: Any) -> str:
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, int):
            return hex(value) if value >= 0 and self.coin() else str(value)
        if isinstance(value, float):
            return repr(value)
        if isinstance(value, str):
            return self.string(value)
        if isinstance(value, dt.datetime):
            return value.isoformat(sep=self.pick(["T", " "]))
        if isinstance(value, dt.date | dt.time):
            return value.isoformat()
        if isinstance(value, list):
            if not self.coin():
                return "[" + ", ".join(map(self.value, value)) + "]"
            lines = [f"  {self.value(item)},{self.pick(_COMMENTS)}\n" for item in value]
            return "[\n" + "".join(lines) + "]"
        pairs = [f"{self.keys(keys)} = {text}" for keys, text in self.pairs([], value)]
        return "{ " + ", ".join(pairs) + " }"

    def pairs(self, keys: list[str], table: dict[str, Any]) -> Iterator[tuple[list[str], str]]:
        """Key/value pairs of `table`, with non-empty sub-tables sometimes as dotted keys."""
        for key, value in table.items():
            if isinstance(value, dict) and value and self.coin():
                yield from self.pairs([*keys, key], value)
            else:
                yield [*keys, key], self.value(value)

    def header(self, keys: list[str], brackets: tuple[str, str]) -> None:
        space = self.pick(["", " "])
        path = self.keys(keys)
        self.out.append(f"{brackets[0]}{space}{path}{space}{brackets[1]}{self.pick(_COMMENTS)}")

    def table(self, keys: list[str], table: dict[str, Any]) -> None:
        plain: dict[str, Any] = {}
        nested: list[tuple[str, Any]] = []
        for key, value in table.items():
            tables = isinstance(value, list) and value and all(isinstance(v, dict) for v in value)
            if (isinstance(value, dict) or tables) and self.coin():
                nested.append((key, value))
            else:
                plain[key] = value
        for pair_keys, text in self.pairs([], plain):
            self.out.append(f"{self.keys(pair_keys)} = {text}{self.pick(_COMMENTS)}")
        for key, value in nested:
            if isinstance(value, dict):
                self.header([*keys, key], ("[", "]"))
                self.table([*keys, key], value)
            else:
                for item in value:
                    self.header([*keys, key], ("[[", "]]"))
                    self.table([*keys, key], item)

    def document(self, document: dict[str, Any]) -> str:
        self.table([], document)
        return "\n".join(self.out) + "\n"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_generated_documents(data: st.DataObject) -> None:
    document = data.draw(_documents)
    text = _Writer(data).document(document)
    assert tomllib.loads(text) == document  # the generator writes what it means to
    source_map = _scan_valid(text)
    for path, line in source_map.lines.items():
        assert 1 <= source_map.line_of(path[:-1]) <= line <= text.count("\n")
