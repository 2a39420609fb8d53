"""The README and docs/ stay true: their links resolve, their ritual files load, and the Procfile
lines and numbers they quote are the real ones."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from config.loader import load_ritual_file
from config.settings import SECRET_KEY_MIN_LENGTH

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^```.*?^```[ \t]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]+`")
# [text](target) or ![alt](target), with an optional "title"; the text may span lines.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def prose(text: str) -> str:
    """The page without fenced code blocks and inline code, where brackets are not links."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading's anchor in a markdown page, numbered as GitHub numbers repeats."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in FENCE.sub("", page.read_text(encoding="utf-8")).splitlines():
        heading = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not heading:
            continue
        base = slug(heading[1])
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(page: Path) -> list[str]:
    """The relative links in `page` whose file, or whose heading in a markdown file, is missing."""
    broken: list[str] = []
    for target in LINK.findall(prose(page.read_text(encoding="utf-8"))):
        if SCHEME.match(target):
            continue  # http:, https:, mailto: are not the repository's to check
        path_part, _, fragment = target.partition("#")
        linked = (page.parent / path_part).resolve() if path_part else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            broken.append(f"{target}: no heading with the anchor #{fragment}")
    return broken


def toml_blocks(page: Path) -> list[str]:
    return re.findall(
        r"^```toml[ \t]*\n(.*?)^```[ \t]*$",
        page.read_text(encoding="utf-8"),
        re.MULTILINE | re.DOTALL,
    )


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_every_relative_link_points_at_a_file_and_heading_that_exist(page: Path) -> None:
    assert broken_links(page) == []


def test_the_link_check_sees_the_readme_links_to_the_reference() -> None:
    targets = LINK.findall(prose((ROOT / "README.md").read_text(encoding="utf-8")))
    assert "docs/ritual-file.md" in targets
    assert any("#" in target for target in targets)


def test_a_missing_file_or_heading_is_reported(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other page\n\n## E-mail (SMTP)\n", encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text(
        "[ok](other.md#e-mail-smtp) [gone](missing.md) [no heading](other.md#nope)\n"
        "[here](#a-title) [web](https://example.com/x) `[code](missing.md)`\n\n# A title\n",
        encoding="utf-8",
    )
    assert broken_links(page) == [
        "missing.md: no such file",
        "other.md#nope: no heading with the anchor #nope",
    ]


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("What `tend plan` shows", "what-tend-plan-shows"),
        ("E-mail (SMTP)", "e-mail-smtp"),
        ("Try it with a ritual due in a minute", "try-it-with-a-ritual-due-in-a-minute"),
        ("Procfile and PostgreSQL", "procfile-and-postgresql"),
    ],
)
def test_headings_get_githubs_anchors(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor


@pytest.mark.parametrize(
    "page", [ROOT / "README.md", ROOT / "docs" / "ritual-file.md"], ids=["README", "ritual-file"]
)
def test_the_example_ritual_file_loads_without_errors_or_warnings(
    page: Path, tmp_path: Path
) -> None:
    (block,) = toml_blocks(page)
    path = tmp_path / "tend.toml"
    path.write_text(block, encoding="utf-8")
    loaded = load_ritual_file(path, today=datetime.now(UTC))  # raises RitualFileError on errors
    assert loaded.warning_lines() == []
    assert loaded.file.households
    assert loaded.file.rituals


PROCFILE_LINE = re.compile(r"^(?:web|worker|release): .+$", re.MULTILINE)


@pytest.mark.parametrize(
    "page", [ROOT / "README.md", ROOT / "docs" / "deployment.md"], ids=["README", "deployment"]
)
def test_the_procfile_lines_a_page_quotes_are_the_procfiles(page: Path) -> None:
    procfile = set((ROOT / "Procfile").read_text(encoding="utf-8").splitlines())
    text = page.read_text(encoding="utf-8")
    quoted = [
        span.strip("`") for span in CODE_SPAN.findall(text) if PROCFILE_LINE.match(span[1:-1])
    ]
    quoted += PROCFILE_LINE.findall("\n".join(FENCE.findall(text)))
    assert quoted
    assert sorted(set(quoted) - procfile) == []


@pytest.mark.parametrize(
    "page", [ROOT / "README.md", ROOT / "docs" / "deployment.md"], ids=["README", "deployment"]
)
def test_a_page_gives_the_secret_keys_minimum_length_the_settings_enforce(page: Path) -> None:
    text = " ".join(page.read_text(encoding="utf-8").split())  # a sentence may span lines
    said = re.findall(r"`TEND_SECRET_KEY`[^.]{0,100}?at least (\d+) characters", text)
    assert said, f"{page.name} does not say how long TEND_SECRET_KEY must be"
    assert {int(n) for n in said} == {SECRET_KEY_MIN_LENGTH}


def test_the_readme_says_how_to_run_the_procfile_locally() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "honcho start web worker" in text  # as tests/tend/test_procfile.py runs it
    assert "tend db upgrade" in text


def test_the_household_files_of_the_ritual_directory_section_load_against_its_rituals() -> None:
    """``toml households/ID.toml`` blocks: household files, checked against the rituals of
    the page's example (as ``tend config split`` would cut them from it)."""
    from config.directory import parse_household, parse_shared
    from config.split import split_ritual_file

    page = ROOT / "docs" / "ritual-file.md"
    text = page.read_text(encoding="utf-8")
    (example,) = toml_blocks(page)
    today = datetime.now(UTC)
    shared = parse_shared(
        split_ritual_file(example, name="example", today=today).rituals,
        name="rituals.toml",
        today=today,
    )
    blocks = re.findall(
        r"^```toml households/([\w-]+)\.toml[ \t]*\n(.*?)^```[ \t]*$",
        text,
        re.MULTILINE | re.DOTALL,
    )
    assert blocks, "the section shows a household file"
    for stem, block in blocks:
        loaded = parse_household(shared, block, name=f"{stem}.toml", stem=stem, today=today)
        assert loaded.warning_lines() == []
        assert loaded.household.id == stem
