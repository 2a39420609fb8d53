"""``tend config split FILE DIR``: the same plan from the directory as from the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tend_process import ERROR_LINE, ROOT, tend

EXAMPLE = ROOT / "examples" / "tend.toml"

# Three households, not in the order of their names, one with its own zone and a partner
# elsewhere; a ritual for two of them; a deck between the households; comments throughout.
THREE = """\
# Three couples.
timezone = "America/New_York"

# The Lees, in Berlin.
[[households]]
id = "lee"
timezone = "Europe/Berlin"   # their own
share_pulse = true

  [[households.partners]]
  id = "kim"
  name = "Kim"
  phone = "+15551230003"
  quiet_hours = "22:00-08:00"

  [[households.partners]]
  id = "jo"
  name = "Jo"
  email = "jo@example.com"
  timezone = "Europe/London"

[decks.walks]
items = ["The river path", "Up the hill at sunset"]

[[households]]  # the first couple
id = "alex-sam"

  [[households.partners]]
  id = "alex"
  name = "Alex"
  phone = "+15551230001"

  [[households.partners]]
  id = "sam"
  name = "Sam"
  phone = "+15551230002"
  channels = ["sms"]

[[households]]
id = "bea"
partners = [{ id = "bea", name = "Bea", email = "bea@example.com" }]

# Sunday evenings.
[[rituals]]
id = "check-in"
kind = "check_in"
schedule = "weekly on sun at 19:30"
pulse = true

[[rituals]]
id = "walk"
kind = "custom"
schedule = "weekly on sat at 10:00"
deck = "walks"
message = "A walk today, {{ partner }}: {{ item }}"
households = ["lee", "alex-sam"]

[[rituals]]
id = "nudges"
kind = "appreciation"
schedule = { times = 2, per = "week", between = "10:00-20:00" }
to = "each"
"""

INLINE = """\
timezone = "UTC"
households = [
  { id = "pat", partners = [{ id = "pat", name = "Pat", phone = "+15551230001" }] },
  { id = "quinn", partners = [{ id = "quinn", name = "Quinn" }] },
]

[[rituals]]
id = "check-in"
kind = "check_in"
schedule = "weekly on sun at 19:30"
"""


def plan(config: Path, cwd: Path) -> list[dict[str, Any]]:
    result = tend(
        "plan", "--config", str(config), "--format", "json", "--from", "2027-03-01",
        "--days", "42",
        cwd=cwd,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    deliveries = json.loads(result.stdout)
    assert isinstance(deliveries, list)
    return deliveries


def split(file: Path, directory: Path, cwd: Path) -> str:
    result = tend("config", "split", str(file), str(directory), cwd=cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_the_example_split_plans_exactly_as_the_file(tmp_path: Path) -> None:
    directory = tmp_path / "tend"
    said = split(EXAMPLE, directory, tmp_path)

    assert "wrote rituals.toml and 1 household file in households/" in said
    assert sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*.toml")) == [
        "households/alex-sam.toml",
        "rituals.toml",
    ]
    assert plan(directory, tmp_path) == plan(EXAMPLE, tmp_path) != []
    check = tend("check", "--config", str(directory), cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"{directory}: OK: 1 household in 2 files, 2 partners, 5 rituals" in check.stdout
    assert check.stderr == ""  # no warnings either

    rituals = (directory / "rituals.toml").read_text(encoding="utf-8")
    # The comments stay with what they are about; the households are gone from here.
    assert "# Every other Friday. The planner alternates" in rituals
    assert "# Tend ritual file: one couple, five rituals." in rituals
    assert "households" not in rituals.replace("# default for households", "")
    household = (directory / "households" / "alex-sam.toml").read_text(encoding="utf-8")
    assert household.startswith('[[partners]]\nid = "alex"\nname = "Alex"\n')
    assert 'phone = "+15551230001"               # E.164' in household
    assert "alex-sam" not in household  # the file's name is its id


def test_three_households_split_into_three_files_and_plan_the_same(tmp_path: Path) -> None:
    file = tmp_path / "three.toml"
    file.write_text(THREE, encoding="utf-8")
    directory = tmp_path / "three"
    split(file, directory, tmp_path)

    folder = directory / "households"
    assert sorted(p.name for p in folder.iterdir()) == ["alex-sam.toml", "bea.toml", "lee.toml"]
    assert plan(directory, tmp_path) == plan(file, tmp_path) != []
    assert {d["household"] for d in plan(directory, tmp_path)} == {"lee", "alex-sam", "bea"}
    check = tend("check", "--config", str(directory), cwd=tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"{directory}: OK: 3 households in 4 files, 5 partners, 3 rituals" in check.stdout
    single = tend("check", "--config", str(file), cwd=tmp_path)
    assert single.stderr.count("warning") == check.stderr.count("warning")

    assert (folder / "lee.toml").read_text(encoding="utf-8") == (
        "# The Lees, in Berlin.\n"
        'timezone = "Europe/Berlin"   # their own\n'
        "share_pulse = true\n"
        "\n"
        "[[partners]]\n"
        'id = "kim"\n'
        'name = "Kim"\n'
        'phone = "+15551230003"\n'
        'quiet_hours = "22:00-08:00"\n'
        "\n"
        "[[partners]]\n"
        'id = "jo"\n'
        'name = "Jo"\n'
        'email = "jo@example.com"\n'
        'timezone = "Europe/London"\n'
    )
    assert (
        (folder / "alex-sam.toml")
        .read_text(encoding="utf-8")
        .startswith("# the first couple\n\n[[partners]]\n")
    )
    assert (folder / "bea.toml").read_text(encoding="utf-8") == (
        'partners = [{ id = "bea", name = "Bea", email = "bea@example.com" }]\n'
    )
    rituals = (directory / "rituals.toml").read_text(encoding="utf-8")
    assert '[decks.walks]\nitems = ["The river path", "Up the hill at sunset"]\n' in rituals
    assert "# Sunday evenings.\n[[rituals]]\n" in rituals


def test_households_written_inline_are_split_from_their_data(tmp_path: Path) -> None:
    file = tmp_path / "inline.toml"
    file.write_text(INLINE, encoding="utf-8")
    directory = tmp_path / "inline"
    said = split(file, directory, tmp_path)

    assert "comments in them are not kept" in said
    assert plan(directory, tmp_path) == plan(file, tmp_path) != []
    assert (directory / "households" / "pat.toml").read_text(encoding="utf-8") == (
        '[[partners]]\nid = "pat"\nname = "Pat"\nphone = "+15551230001"\n'
    )
    assert "households" not in (directory / "rituals.toml").read_text(encoding="utf-8")


def test_a_broken_file_is_not_split_and_its_problems_are_shown(tmp_path: Path) -> None:
    file = tmp_path / "broken.toml"
    file.write_text(THREE.replace('"+15551230003"', '"+1555"'), encoding="utf-8")
    directory = tmp_path / "out"
    result = tend("config", "split", str(file), str(directory), cwd=tmp_path)

    assert result.returncode == 2
    first, last = result.stderr.splitlines()
    assert ERROR_LINE.match(first)
    assert first.startswith(f"{file}:13: households.0.partners.0.phone: ")
    assert last == f"tend: {file} has errors: fix them first (nothing was written)"
    assert not directory.exists()


@pytest.mark.parametrize("what", ["a file in it", "a file"])
def test_a_directory_that_exists_and_is_not_empty_is_refused(tmp_path: Path, what: str) -> None:
    directory = tmp_path / "out"
    if what == "a file":
        directory.write_text("mine", encoding="utf-8")
    else:
        directory.mkdir()
        (directory / "notes.txt").write_text("mine", encoding="utf-8")
    result = tend("config", "split", str(EXAMPLE), str(directory), cwd=tmp_path)

    assert result.returncode == 2
    assert result.stderr == (
        f"tend: {directory} exists and is not an empty directory; give a new one "
        "(nothing was written)\n"
    )
    assert sorted(p.name for p in tmp_path.rglob("*")) == (
        ["out"] if what == "a file" else ["notes.txt", "out"]
    )


def test_an_empty_directory_is_filled(tmp_path: Path) -> None:
    directory = tmp_path / "out"
    directory.mkdir()
    split(EXAMPLE, directory, tmp_path)
    assert (directory / "households" / "alex-sam.toml").is_file()
