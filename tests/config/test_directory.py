"""A ritual directory: rituals.toml and households/*.toml, each problem at its own file's line."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from config.directory import (
    combine,
    is_ritual_directory,
    load_config,
    load_ritual_directory,
    load_shared,
    parse_household,
    parse_shared,
)
from config.loader import RitualFileError, RitualFilesError, load_ritual_file

TODAY = datetime(2026, 11, 25, tzinfo=UTC)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "tend.toml"

RITUALS = """\
timezone = "Europe/Berlin"

[[rituals]]
id = "check-in"
kind = "check_in"
schedule = "weekly on sun at 19:30"
deck = "check-in-questions"

[[rituals]]
id = "dates"
kind = "date_night"
schedule = "every 2 weeks on fri at 19:00"
"""


def household(id_: str | None = None, *partners: str, extra: str = "") -> str:
    """A household file: its id (when it says one), then a partner per name."""
    lines = [f'id = "{id_}"'] if id_ else []
    lines += [extra] if extra else []
    for name in partners or ("Alex", "Sam"):
        lines += ["", "[[partners]]", f'id = "{name.lower()}"', f'name = "{name}"']
    return "\n".join(lines) + "\n"


def directory(tmp_path: Path, rituals: str = RITUALS, **households: str | bytes) -> Path:
    """A ritual directory under `tmp_path`: rituals.toml and households/<stem>.toml."""
    root = tmp_path / "rituals"
    (root / "households").mkdir(parents=True)
    (root / "rituals.toml").write_text(textwrap.dedent(rituals), encoding="utf-8")
    for stem, text in households.items():
        path = root / "households" / f"{stem}.toml"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
    return root


def test_a_broken_household_file_is_reported_at_its_line_and_the_others_load(
    tmp_path: Path,
) -> None:
    root = directory(
        tmp_path,
        ann=household(),
        bob=household(None, "Bea", "Bob", extra='timezone = "Mars/Olympus"'),
        cy=household(None, "Cy", "Di"),
    )
    loaded = load_ritual_directory(root, today=TODAY)

    assert [h.household.id for h in loaded.households] == ["ann", "cy"]
    assert [h.id for h in loaded.file.households] == ["ann", "cy"]
    bob = str(root / "households" / "bob.toml")
    assert list(loaded.broken) == [bob]
    [line] = loaded.problem_lines()
    assert line.startswith(f"{bob}:1: timezone: ")
    assert "Mars/Olympus" in line


def test_load_config_raises_with_every_files_problems_each_naming_its_file(
    tmp_path: Path,
) -> None:
    root = directory(
        tmp_path,
        ann=household(),
        bob=household(None, "Bea", "Bea"),  # two partners with one id
        cy="[[partners]]\nid = 'cy'\nname = = 'Cy'\n",
    )
    with pytest.raises(RitualFilesError) as caught:
        load_config(root, today=TODAY)

    folder = root / "households"
    assert caught.value.lines() == [
        f"{folder / 'bob.toml'}:7: partners.1.id: duplicate id 'bea'",
        f"{folder / 'cy.toml'}:3: toml: not valid TOML: Invalid value (column 8)",
    ]
    assert isinstance(caught.value, RitualFileError)  # what every caller catches today


def test_two_household_files_with_one_id_report_the_one_not_named_after_it(
    tmp_path: Path,
) -> None:
    root = directory(tmp_path, alex=household("sam-and-alex"), **{"sam-and-alex": household()})
    loaded = load_ritual_directory(root, today=TODAY)

    assert [h.path for h in loaded.households] == [str(root / "households" / "sam-and-alex.toml")]
    alex = str(root / "households" / "alex.toml")
    assert loaded.problem_lines() == [
        f"{alex}:1: id: duplicate id 'sam-and-alex': "
        f"{root / 'households' / 'sam-and-alex.toml'} has it too"
    ]


def test_a_ritual_naming_a_household_with_no_file_is_an_error_at_its_line_in_rituals_toml(
    tmp_path: Path,
) -> None:
    rituals = RITUALS + 'households = ["ann", "zed"]\n'
    root = directory(tmp_path, rituals, ann=household())
    with pytest.raises(RitualFileError) as caught:
        load_ritual_directory(root, today=TODAY)

    assert caught.value.lines() == [
        f"{root / 'rituals.toml'}:13: rituals.1.households.1: unknown household 'zed': no file "
        "households/zed.toml (nor one that says id = 'zed')"
    ]


def test_a_household_named_by_a_ritual_whose_file_is_broken_is_not_unknown(
    tmp_path: Path,
) -> None:
    root = directory(tmp_path, RITUALS + 'households = ["zed"]\n', zed="colour = 'blue'\n")
    loaded = load_ritual_directory(root, today=TODAY)
    assert list(loaded.broken) == [str(root / "households" / "zed.toml")]


def test_the_id_is_the_files_stem_unless_the_file_says_another(tmp_path: Path) -> None:
    root = directory(tmp_path, ann=household(), b=household("bea-and-bob"))
    file = load_config(root, today=TODAY).file
    assert [h.id for h in file.households] == ["ann", "bea-and-bob"]


def test_a_file_name_that_is_not_an_id_says_to_rename_it_or_set_one(tmp_path: Path) -> None:
    root = directory(tmp_path, **{"Ann Smith": household()})
    loaded = load_ritual_directory(root, today=TODAY)
    [line] = loaded.problem_lines()
    assert "id: the file's name 'Ann Smith' is not an id" in line
    assert "rename the file" in line

    (root / "households" / "Ann Smith.toml").write_text(household("ann"), encoding="utf-8")
    assert [h.id for h in load_config(root, today=TODAY).file.households] == ["ann"]


def test_a_byte_order_mark_in_a_household_file_is_accepted(tmp_path: Path) -> None:
    root = directory(tmp_path, ann=b"\xef\xbb\xbf" + household().encode())
    assert [h.id for h in load_config(root, today=TODAY).file.households] == ["ann"]


def test_a_byte_that_is_not_utf8_breaks_only_its_household_file(tmp_path: Path) -> None:
    text = household(None, "Ann", "Ben").replace('"Ben"', '"B\xe9n"')
    root = directory(tmp_path, ann=household(), ben=text.encode("latin-1"))
    loaded = load_ritual_directory(root, today=TODAY)

    assert [h.household.id for h in loaded.households] == ["ann"]
    [line] = loaded.problem_lines()
    ben = root / "households" / "ben.toml"
    assert line == f"{ben}:8: (file): not UTF-8: byte 0xe9 at column 10; save the file as UTF-8"


def test_an_empty_households_folder_is_a_directory_of_no_households(tmp_path: Path) -> None:
    root = directory(tmp_path)
    loaded = load_config(root, today=TODAY)
    assert loaded.file.households == []
    assert [r.id for r in loaded.file.rituals] == ["check-in", "dates"]
    assert loaded.path == str(root)
    assert loaded.text == ""


def test_no_households_folder_or_no_rituals_toml_is_an_error(tmp_path: Path) -> None:
    root = directory(tmp_path)
    (root / "households").rmdir()
    with pytest.raises(RitualFileError) as caught:
        load_ritual_directory(root, today=TODAY)
    assert caught.value.lines()[0].startswith(f"{root / 'households'}:1: (file): no households")

    (root / "households").mkdir()
    (root / "rituals.toml").unlink()
    with pytest.raises(RitualFileError) as caught:
        load_config(root, today=TODAY)
    assert caught.value.lines()[0].startswith(f"{root / 'rituals.toml'}:1: (file): no rituals.toml")


def test_households_in_rituals_toml_are_an_error_at_their_line(tmp_path: Path) -> None:
    rituals = RITUALS + '\n[[households]]\nid = "ann"\npartners = [{ id = "a", name = "A" }]\n'
    with pytest.raises(RitualFileError) as caught:
        parse_shared(rituals, name="rituals.toml", today=TODAY)
    assert caught.value.lines() == [
        "rituals.toml:14: households: households go in households/ID.toml, one file each, "
        "not in rituals.toml"
    ]


def test_a_problem_of_rituals_toml_alone_is_reported_there(tmp_path: Path) -> None:
    rituals = RITUALS.replace('deck = "check-in-questions"', 'deck = "questons"')
    root = directory(tmp_path, rituals, ann=household())
    with pytest.raises(RitualFileError) as caught:
        load_shared(root, today=TODAY)
    [line] = caught.value.lines()
    assert line.startswith(f"{root / 'rituals.toml'}:7: rituals.0.deck: unknown deck 'questons'")


def test_a_ritual_for_a_partner_the_household_lacks_is_an_error_in_the_household_file() -> None:
    shared = parse_shared(
        RITUALS + 'to = "sam"\nplanner = "sam"\n', name="rituals.toml", today=TODAY
    )
    with pytest.raises(RitualFileError) as caught:
        parse_household(
            shared, household(None, "Ann", "Ben"), name="h/ann.toml", stem="ann", today=TODAY
        )
    assert caught.value.lines() == [
        "h/ann.toml:2: partners: ritual 'dates': to = 'sam', a partner this household does "
        "not have (use both | each or a partner id, or name the households it is for: "
        "households = [...])",
        "h/ann.toml:2: partners: ritual 'dates': planner = 'sam', a partner this household "
        "does not have (use alternate | both or a partner id, or name the households it is "
        "for: households = [...])",
    ]
    good = parse_household(shared, household(), name="h/as.toml", stem="as", today=TODAY)
    assert good.household.id == "as"
    assert good.warnings == []


def test_a_ritual_in_a_partners_quiet_hours_is_a_warning_at_their_quiet_hours_line() -> None:
    shared = parse_shared(RITUALS, name="rituals.toml", today=TODAY)
    text = household().replace('name = "Sam"', 'name = "Sam"\nquiet_hours = "19:00-23:00"')
    loaded = parse_household(shared, text, name="h/as.toml", stem="as", today=TODAY)
    assert loaded.warning_lines() == [
        "h/as.toml:9: partners.1.quiet_hours: warning: ritual 'check-in': 19:30 "
        "(Europe/Berlin) falls in Sam's quiet hours (19:00-23:00): their messages will wait "
        "until 23:00",
        "h/as.toml:9: partners.1.quiet_hours: warning: ritual 'dates': 19:00 "
        "(Europe/Berlin) falls in Sam's quiet hours (19:00-23:00): their messages will wait "
        "until 23:00",
    ]


def test_a_random_window_a_household_can_never_get_is_an_error_in_its_file() -> None:
    rituals = """\
    timezone = "UTC"

    [[rituals]]
    id = "nudges"
    kind = "appreciation"
    schedule = { times = 1, per = "day", between = "10:00-12:00" }
    """
    shared = parse_shared(textwrap.dedent(rituals), name="rituals.toml", today=TODAY)
    text = household().replace('name = "Sam"', 'name = "Sam"\nquiet_hours = "09:00-13:00"')
    with pytest.raises(RitualFileError) as caught:
        parse_household(shared, text, name="h/as.toml", stem="as", today=TODAY)
    assert caught.value.lines() == [
        "h/as.toml:2: partners: ritual 'nudges': never fires for this household: every time "
        "in 10:00-12:00 falls in a partner's quiet hours"
    ]


def test_a_household_with_no_zone_anywhere_is_an_error_in_its_file() -> None:
    shared = parse_shared(RITUALS.replace('timezone = "Europe/Berlin"', ""), name="r", today=TODAY)
    with pytest.raises(RitualFileError) as caught:
        parse_household(shared, household(), name="h/as.toml", stem="as", today=TODAY)
    assert caught.value.lines() == [
        "h/as.toml:1: (file): no time zone: set 'timezone' here or in rituals.toml"
    ]
    zoned = household(extra='timezone = "America/Chicago"')
    assert parse_household(shared, zoned, name="h", stem="as", today=TODAY).warnings == []


def test_a_template_that_fails_with_a_households_name_is_an_error_at_that_name() -> None:
    rituals = RITUALS + 'message = "{{ planner[2] }} plans. Reply DONE after."\n'
    shared = parse_shared(rituals, name="rituals.toml", today=TODAY)  # "Bo"[2] is no letter
    assert parse_household(
        shared, household("a", "Alexa", "Jonas"), name="h", stem="a", today=TODAY
    )
    with pytest.raises(RitualFileError) as caught:
        parse_household(
            shared, household("b", "Bo", "Jonas"), name="h/b.toml", stem="b", today=TODAY
        )
    [line] = caught.value.lines()
    assert line.startswith("h/b.toml:5: partners.0.name: ritual 'dates': message: ")
    assert line.endswith("(with the name 'Bo')")


def test_with_household_a_directory_reads_only_that_households_file(tmp_path: Path) -> None:
    root = directory(
        tmp_path,
        ann=household(),
        bob="this is not TOML",
        c=household("cy"),
    )
    with pytest.raises(RitualFileError):
        load_config(root, today=TODAY)

    only = load_config(root, today=TODAY, household="ann")
    assert [h.id for h in only.file.households] == ["ann"]
    # No file is named cy.toml: the one that says id = "cy" is found.
    assert [h.id for h in load_config(root, today=TODAY, household="cy").file.households] == ["cy"]
    with pytest.raises(RitualFileError) as caught:
        load_config(root, today=TODAY, household="dee")
    assert caught.value.lines() == [
        f"{root / 'households'}:1: (file): no household 'dee': no dee.toml here, and no file "
        "says id = 'dee'"
    ]
    with pytest.raises(RitualFileError) as caught:
        load_config(root, today=TODAY, household="c")  # c.toml holds cy
    assert caught.value.lines() == [
        f"{root / 'households'}:1: (file): no household 'c': c.toml says another id, and no "
        "file says id = 'c'"
    ]
    with pytest.raises(RitualFileError) as caught:
        load_config(root, today=TODAY, household="bob")
    assert caught.value.lines()[0].startswith(f"{root / 'households' / 'bob.toml'}:1: toml:")


def test_the_example_as_a_directory_is_the_example_file(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    head, _, rest = text.partition("[[households]]")
    block, marker, rituals = rest.partition("# Every other Friday.")
    root = directory(
        tmp_path,
        head + marker + rituals,
        **{"alex-sam": block.replace("[[households.partners]]", "[[partners]]")},
    )
    single = load_ritual_file(EXAMPLE, today=TODAY)
    loaded = load_config(root, today=TODAY)
    assert loaded.file == single.file
    assert loaded.warnings == single.warnings == []
    assert is_ritual_directory(root)
    assert not is_ritual_directory(EXAMPLE)


def test_a_single_file_loads_exactly_as_before(tmp_path: Path) -> None:
    assert load_config(EXAMPLE, today=TODAY) == load_ritual_file(EXAMPLE, today=TODAY)
    assert load_config(EXAMPLE, today=TODAY, household="alex-sam") == load_ritual_file(
        EXAMPLE, today=TODAY
    )
    with pytest.raises(RitualFileError) as caught:
        load_config(tmp_path / "missing.toml", today=TODAY)
    assert "no such file" in caught.value.lines()[0]


def test_combine_puts_households_with_the_shared_rituals() -> None:
    shared = parse_shared(RITUALS, name="rituals.toml", today=TODAY)
    assert shared.file.households == []
    ann = parse_household(shared, household(), name="h/ann.toml", stem="ann", today=TODAY)
    file = combine(shared, [ann.household])
    assert file.households == [ann.household]
    assert file.rituals == shared.file.rituals
    assert shared.file.households == []


def test_a_household_file_in_the_single_files_syntax_says_how_to_write_it() -> None:
    shared = parse_shared(RITUALS, name="rituals.toml", today=TODAY)
    text = '[[households]]\nid = "ann"\n\n  [[households.partners]]\n  id = "a"\n  name = "A"\n'
    with pytest.raises(RitualFileError) as caught:
        parse_household(shared, text, name="h/ann.toml", stem="ann", today=TODAY)
    assert caught.value.lines()[0] == (
        "h/ann.toml:1: households: a household file holds one household's keys at its top "
        "level: write [[partners]], not [[households.partners]], and no [[households]]"
    )


def test_with_household_a_file_of_that_name_saying_another_id_is_looked_past(
    tmp_path: Path,
) -> None:
    root = directory(tmp_path, ann=household("bea"), zz=household("ann"))
    only = load_config(root, today=TODAY, household="ann")
    assert [h.id for h in only.file.households] == ["ann"]
    assert load_config(root, today=TODAY, household="bea").file.households[0].id == "bea"
