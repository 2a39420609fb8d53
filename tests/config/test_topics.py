"""A ritual's deck as a list of decks (topics) in the ritual file: what loads, and each
mistake at its own FILE:LINE, as ``tend check`` (and ``tend reply``, the same loader) says it."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from config.loader import RitualFileError, load_ritual_file
from config.model import RitualFile

TODAY = datetime(2026, 12, 1, tzinfo=UTC)

HEAD = """\
timezone = "UTC"
[[households]]
id = "h"
partners = [{ id = "p", name = "Pat", phone = "+15551230001" }]

[[rituals]]
id = "talk"
kind = "check_in"
schedule = "weekly on sun at 19:30"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tend.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def lines_of(tmp_path: Path, text: str) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(RitualFileError) as caught:
        load_ritual_file(path, today=TODAY)
    return [line.removeprefix(f"{path}:") for line in caught.value.lines()]


def test_a_list_of_built_in_decks_loads_as_written(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + 'deck = ["finances", "family-life", "relationship-goals"]\n')
    loaded = load_ritual_file(path, today=TODAY)
    [ritual] = loaded.file.rituals
    assert ritual.deck == ["finances", "family-life", "relationship-goals"]
    assert ritual.decks == ("finances", "family-life", "relationship-goals")
    assert loaded.warnings == []


def test_a_list_may_name_the_files_own_decks_and_a_list_of_one_is_fine(tmp_path: Path) -> None:
    text = HEAD + 'deck = ["ours"]\n\n[decks.ours]\nitems = ["What was good today?"]\n'
    [ritual] = load_ritual_file(write(tmp_path, text), today=TODAY).file.rituals
    assert ritual.decks == ("ours",)


def test_one_deck_name_is_kept_as_a_name(tmp_path: Path) -> None:
    [ritual] = load_ritual_file(
        write(tmp_path, HEAD + 'deck = "feelings"\n'), today=TODAY
    ).file.rituals
    assert ritual.deck == "feelings"
    assert ritual.decks == ("feelings",)


def test_an_unknown_deck_in_the_list_is_reported_at_its_own_line(tmp_path: Path) -> None:
    text = HEAD + 'deck = [\n  "finances",\n  "famly-life",\n  "feelings",\n  "nope",\n]\n'
    lines = lines_of(tmp_path, text)
    assert [line.split(": ")[:2] for line in lines] == [
        ["12", "rituals.0.deck.1"],
        ["14", "rituals.0.deck.3"],
    ]
    assert "unknown deck 'famly-life' (known: " in lines[0]
    assert "family-life" in lines[0] and "together" in lines[0]
    assert "unknown deck 'nope'" in lines[1]


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ('["finances", "feelings", "finances"]', "'finances' is in the list twice"),
        ("[]", "an empty list: name at least one deck, or leave 'deck' out"),
        ('["finances", 3]', "item 1 is not a deck's name"),
        ("3", "a deck's name, or a list of deck names"),
    ],
    ids=["a deck twice", "an empty list", "a number in the list", "a number"],
)
def test_a_list_that_cannot_be_a_rotation_is_refused_at_the_deck(
    tmp_path: Path, value: str, says: str
) -> None:
    [line] = lines_of(tmp_path, HEAD + f"deck = {value}\n")
    assert line.startswith("10: rituals.0.deck: "), line
    assert says in line


def test_a_refused_deck_brings_no_second_error_at_item_or_topic(tmp_path: Path) -> None:
    ritual = HEAD.replace('kind = "check_in"', 'kind = "custom"')
    text = ritual + 'deck = []\nmessage = "{{ topic }}: {{ item }}"\n'
    [line] = lines_of(tmp_path, text)
    assert line.startswith("10: rituals.0.deck: ")


def test_topic_is_a_template_variable_of_a_ritual_with_a_deck(tmp_path: Path) -> None:
    text = (
        HEAD + 'deck = ["finances", "feelings"]\nmessage = "This week: {{ topic }}. {{ item }}"\n'
    )
    assert load_ritual_file(write(tmp_path, text), today=TODAY).warnings == []


def test_topic_without_a_deck_is_an_error_that_says_so(tmp_path: Path) -> None:
    ritual = HEAD.replace('kind = "check_in"', 'kind = "custom"')
    [line] = lines_of(tmp_path, ritual + 'message = "This week: {{ topic }}"\n')
    assert line.startswith("10: rituals.0.message: undefined variable 'topic'")
    assert line.endswith("(this ritual has no deck)")


def test_the_length_check_renders_every_deck_of_the_list_with_its_topic(tmp_path: Path) -> None:
    long = "a rather long question that goes on " * 4 + "and on?"
    text = (
        HEAD
        + 'deck = ["finances", "long-one"]\n'
        + 'message = "{{ topic }}: {{ item }} {{ item }} Reply DONE."\n'
        + f'\n[decks.long-one]\nitems = ["{long}"]\n'
    )
    loaded = load_ritual_file(write(tmp_path, text), today=TODAY)
    [warning] = loaded.warning_lines()
    assert ": rituals.0.message: warning: an SMS of this message needs 3 segments" in warning
    assert "with the item 'a rather long question" in warning


def test_the_json_schema_accepts_a_deck_name_or_a_list_of_them() -> None:
    schema = RitualFile.model_json_schema(mode="validation")
    deck = schema["$defs"]["Ritual"]["properties"]["deck"]
    forms = json.dumps(deck)
    assert '"type": "string"' in forms
    [listed] = [f for f in deck["anyOf"][0]["oneOf"] if f["type"] == "array"]
    assert listed["items"] == {"type": "string"}
    assert listed["minItems"] == 1
    assert listed["uniqueItems"] is True
