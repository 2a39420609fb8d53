"""One ritual file and its ritual directory agree: a file with an error is a directory with
one, and a good file splits into the same ritual file."""

from __future__ import annotations

import copy
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.directory import combine, parse_household, parse_shared
from config.loader import RitualFileError, parse_ritual_file
from config.model import RitualFile
from config.split import split_ritual_file

TODAY = datetime(2026, 11, 25, tzinfo=UTC)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tend.toml"

# The example with a second household, elsewhere, and a ritual for one household only.
BASE: dict[str, Any] = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
BASE["households"].append(
    {
        "id": "kim-lee",
        "timezone": "Europe/Berlin",
        "partners": [
            {"id": "kim", "name": "Kim", "phone": "+15551230003", "quiet_hours": "23:00-07:00"},
            {"id": "lee", "name": "Lee", "email": "lee@example.com", "timezone": "Europe/London"},
        ],
    }
)
BASE["rituals"].append(
    {
        "id": "walk",
        "kind": "custom",
        "schedule": "weekly on sat at 09:00",
        "message": "A walk, {{ partner }}?",
        "households": ["kim-lee"],
        "to": "kim",
    }
)

_VALUES = st.one_of(
    st.sampled_from(
        [
            "alex",
            "kim",
            "sam",
            "both",
            "each",
            "alternate",
            "Mars/Olympus",
            "EST",
            "Europe/Berlin",
            "18:00-23:59",
            "09:00-21:00",
            "19:00-20:00",
            "+15551230001",
            "+1555",
            ["sms"],
            ["email"],
            ["console"],
            ["nobody"],
            ["kim-lee"],
            [],
            "daily at 19:00",
            "daily at 03:00",
            "cron: 30 19 * * sun",
            {"times": 2, "per": "day", "between": "08:00-09:00"},
            "{{ partner }}, {{ item }}",
            "{{ partner[3] }} plans",
            "{{ nope }}",
            "Hi {{ partner }}! " + "x" * 400,
            "Hi {{ partner }}! " + "x" * 1600,
            "Kimberly-Anne",
            "",
            True,
            7,
        ]
    ),
)
_FIELDS: list[tuple[str | int, ...]] = [
    ("rituals", 0, "planner"),
    ("rituals", 0, "schedule"),
    ("rituals", 0, "message"),
    ("rituals", 2, "to"),
    ("rituals", 3, "schedule"),
    ("rituals", 5, "to"),
    ("rituals", 5, "households"),
    ("rituals", 5, "message"),
    ("households", 0, "timezone"),
    ("households", 0, "partners", 0, "quiet_hours"),
    ("households", 0, "partners", 1, "phone"),
    ("households", 0, "partners", 1, "name"),
    ("households", 1, "id"),
    ("households", 1, "partners", 0, "channels"),
    ("households", 1, "partners", 0, "quiet_hours"),
    ("households", 1, "partners", 1, "timezone"),
    ("households", 1, "partners", 1, "id"),
    ("timezone",),
]


def as_directory(data: dict[str, Any]) -> RitualFile:
    """`data` loaded as a ritual directory; RitualFileError when any file has an error."""
    households = data.pop("households")
    shared = parse_shared(tomli_w.dumps(data), name="rituals.toml", today=TODAY)
    loaded = []
    for household in households:
        stem = str(household.get("id"))
        text = tomli_w.dumps(household)
        loaded.append(parse_household(shared, text, name=stem, stem=stem, today=TODAY).household)
    ids = [h.id for h in loaded]
    named = {name for r in shared.file.rituals for name in r.households or ()}
    if len(set(ids)) != len(ids) or not named <= set(ids):
        raise RitualFileError("directory", [])  # what load_ritual_directory reports
    return combine(shared, loaded)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changes=st.lists(st.tuples(st.sampled_from(_FIELDS), _VALUES), min_size=1, max_size=3))
def test_a_directory_has_an_error_exactly_when_its_single_file_has_one(
    changes: list[tuple[tuple[str | int, ...], object]],
) -> None:
    data = copy.deepcopy(BASE)
    for path, value in changes:
        table: Any = data
        for part in path[:-1]:
            table = table[part]
        table[path[-1]] = value
    text = tomli_w.dumps(data)
    try:
        single: RitualFile | None = parse_ritual_file(text, name="tend.toml", today=TODAY).file
    except RitualFileError:
        single = None
    try:
        directory: RitualFile | None = as_directory(copy.deepcopy(data))
    except RitualFileError:
        directory = None
    assert (single is None) == (directory is None), changes
    assert directory == single
    if single is not None:
        split = split_ritual_file(text, name="tend.toml", today=TODAY)
        assert list(split.households) == [h.id for h in single.households]
    else:
        with pytest.raises(RitualFileError):
            split_ritual_file(text, name="tend.toml", today=TODAY)


def test_the_base_file_is_good_and_splits_by_cutting() -> None:
    text = tomli_w.dumps(BASE)
    single = parse_ritual_file(text, name="tend.toml", today=TODAY)
    assert single.warnings == []
    split = split_ritual_file(text, name="tend.toml", today=TODAY)
    assert split.cut
    assert as_directory(copy.deepcopy(BASE)) == single.file
