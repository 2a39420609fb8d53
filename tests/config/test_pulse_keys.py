"""The pulse's keys in the ritual file: ``pulse`` and ``support_message`` on a ritual,
``share_pulse`` on a household; what ``tend check`` says about them (FILE:LINE), their
defaults, and the JSON Schema."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from config.loader import RitualFileError, load_ritual_file
from config.model import RitualFile
from rituals.pulse import DEFAULT_SUPPORT_MESSAGE

TODAY = datetime(2026, 1, 1, tzinfo=UTC)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tend.toml"

FILE = """\
timezone = "UTC"

[[households]]
id = "alex-sam"
{share}
  [[households.partners]]
  id = "alex"
  name = "Alex"

[[rituals]]
id = "check-in"
kind = "check_in"
schedule = "weekly on sun at 19:00"
{ritual}
"""


def load(tmp_path: Path, share: str = "", ritual: str = "") -> RitualFile:
    path = tmp_path / "tend.toml"
    path.write_text(FILE.format(share=share, ritual=textwrap.dedent(ritual)), encoding="utf-8")
    return load_ritual_file(path, today=TODAY).file


def problems(tmp_path: Path, share: str = "", ritual: str = "") -> list[tuple[int, str, str]]:
    with pytest.raises(RitualFileError) as caught:
        load(tmp_path, share, ritual)
    return [(p.line, p.dotted, p.message) for p in caught.value.problems]


def test_the_pulse_is_off_unless_set_so_an_existing_files_messages_do_not_change(
    tmp_path: Path,
) -> None:
    file = load(tmp_path)
    [ritual] = file.rituals
    assert ritual.pulse is None and not ritual.asks_pulse
    assert ritual.support_message == DEFAULT_SUPPORT_MESSAGE
    assert file.households[0].share_pulse is False


def test_the_keys_are_read(tmp_path: Path) -> None:
    file = load(
        tmp_path,
        share="share_pulse = true",
        ritual='pulse = true\nsupport_message = "Talk to someone you trust."',
    )
    [ritual] = file.rituals
    assert ritual.asks_pulse and ritual.support_message == "Talk to someone you trust."
    assert file.households[0].share_pulse is True


def test_the_example_file_asks_the_pulse_on_its_check_in() -> None:
    file = load_ritual_file(EXAMPLE, today=TODAY).file
    assert [r.id for r in file.rituals if r.asks_pulse] == ["check-in"]


def test_a_pulse_on_a_ritual_that_is_not_a_check_in_is_an_error_at_its_line(
    tmp_path: Path,
) -> None:
    text = FILE.format(share="", ritual="").replace('kind = "check_in"', 'kind = "date_night"')
    path = tmp_path / "tend.toml"
    path.write_text(text + "pulse = true\n", encoding="utf-8")
    with pytest.raises(RitualFileError) as caught:
        load_ritual_file(path, today=TODAY)
    [problem] = caught.value.problems
    assert (problem.line, problem.dotted) == (15, "rituals.0.pulse")
    assert "only by a check-in" in problem.message
    assert f"{path}:15: rituals.0.pulse:" in str(caught.value)


@pytest.mark.parametrize(
    ("share", "ritual", "expected"),
    [
        ('share_pulse = "yes"', "", (5, "households.0.share_pulse")),
        ("", "pulse = 1", (14, "rituals.0.pulse")),
        ("", 'support_message = ""', (14, "rituals.0.support_message")),
        ("", f'support_message = "{"x" * 321}"', (14, "rituals.0.support_message")),
    ],
    ids=["share-not-a-boolean", "pulse-not-a-boolean", "empty-support", "support-too-long"],
)
def test_a_wrong_value_is_an_error_at_its_line(
    tmp_path: Path, share: str, ritual: str, expected: tuple[int, str]
) -> None:
    assert [(line, dotted) for line, dotted, _ in problems(tmp_path, share, ritual)] == [expected]


def test_the_json_schema_has_the_keys() -> None:
    schema = RitualFile.model_json_schema(mode="validation")
    defs = schema["$defs"]
    assert {"pulse", "support_message"} <= set(defs["Ritual"]["properties"])
    assert "share_pulse" in defs["Household"]["properties"]
    assert defs["Household"]["properties"]["share_pulse"]["default"] is False
