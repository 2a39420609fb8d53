"""``--config DIR``: the real ``tend`` on a ritual directory (rituals.toml, households/*.toml)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tend_process import ERROR_LINE, tend

RITUALS = """\
timezone = "Europe/Berlin"

[[rituals]]
id = "check-in"
kind = "check_in"
schedule = "weekly on sun at 19:30"

[[rituals]]
id = "dates"
kind = "date_night"
schedule = "every 2 weeks on fri at 19:00"
"""

COUPLE = """\
[[partners]]
id = "{a}"
name = "{A}"
phone = "+1555123{n}01"

[[partners]]
id = "{b}"
name = "{B}"
email = "{b}@example.com"
"""


def couple(a: str, b: str, n: int) -> str:
    return COUPLE.format(a=a, A=a.title(), b=b, B=b.title(), n=f"{n:02d}")


def ritual_directory(tmp_path: Path, **households: str) -> Path:
    root = tmp_path / "tend"
    (root / "households").mkdir(parents=True)
    (root / "rituals.toml").write_text(RITUALS, encoding="utf-8")
    for stem, text in households.items():
        (root / "households" / f"{stem}.toml").write_text(text, encoding="utf-8")
    return root


def test_check_on_a_directory_counts_its_households_and_files(tmp_path: Path) -> None:
    root = ritual_directory(tmp_path, ann=couple("ann", "al", 1), bo=couple("bo", "bea", 2))
    result = tend("check", "--config", str(root), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{root}: OK: 2 households in 3 files, 4 partners, 2 rituals" in result.stdout
    assert "next for ann: " in result.stdout
    assert "next for bo: " in result.stdout


def test_check_reads_the_directory_named_by_tend_config(tmp_path: Path) -> None:
    root = ritual_directory(tmp_path, ann=couple("ann", "al", 1))
    result = tend("check", cwd=tmp_path, env={"TEND_CONFIG": str(root)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{root}: OK: 1 household in 2 files" in result.stdout


def test_check_on_a_directory_prints_every_problem_of_every_file_at_its_own_line(
    tmp_path: Path,
) -> None:
    root = ritual_directory(
        tmp_path,
        ann=couple("ann", "al", 1),
        bo=couple("bo", "bea", 2).replace("+155512302", "+1555"),
        cy=couple("cy", "di", 3).replace('name = "Di"', 'name = "Di"\ncolour = "red"'),
    )
    (root / "rituals.toml").write_text(RITUALS + 'to = "ann"\nhouseholds = ["ann"]\n')
    result = tend("check", "--config", str(root), cwd=tmp_path)

    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert all(ERROR_LINE.match(line) for line in lines), lines
    folder = root / "households"
    assert [ERROR_LINE.match(line)["file"] for line in lines] == [  # type: ignore[index]
        str(folder / "bo.toml"),
        str(folder / "cy.toml"),
    ]
    assert lines[0].startswith(f"{folder / 'bo.toml'}:4: partners.0.phone: ")
    assert lines[1].startswith(f"{folder / 'cy.toml'}:9: partners.1.colour: unknown key")


def test_check_reports_a_ritual_for_a_partner_a_household_lacks_in_that_households_file(
    tmp_path: Path,
) -> None:
    root = ritual_directory(tmp_path, ann=couple("ann", "al", 1), bo=couple("bo", "bea", 2))
    (root / "rituals.toml").write_text(RITUALS + 'planner = "ann"\n')
    result = tend("check", "--config", str(root), cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout.splitlines() == [
        f"{root / 'households' / 'bo.toml'}:1: partners: ritual 'dates': planner = 'ann', a "
        "partner this household does not have (use alternate | both or a partner id, or name "
        "the households it is for: households = [...])"
    ]


def test_plan_for_one_household_reads_only_its_file(tmp_path: Path) -> None:
    root = ritual_directory(
        tmp_path, ann=couple("ann", "al", 1), bo="[[partners]\nthis is not TOML\n"
    )
    everything = tend("plan", "--config", str(root), "--format", "json", cwd=tmp_path)
    assert everything.returncode == 2
    assert re.match(
        rf"{re.escape(str(root / 'households' / 'bo.toml'))}:1: toml: ", everything.stderr
    )

    result = tend(
        "plan", "--config", str(root), "--household", "ann", "--format", "json",
        "--from", "2027-03-01", "--days", "14",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert {d["household"] for d in plan} == {"ann"}
    assert {d["ritual"] for d in plan} == {"check-in", "dates"}


def test_plan_for_a_household_no_file_has_exits_2_naming_the_folder(tmp_path: Path) -> None:
    root = ritual_directory(tmp_path, ann=couple("ann", "al", 1))
    result = tend("plan", "--config", str(root), "--household", "zed", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith(f"{root / 'households'}:1: (file): no household 'zed'")
