"""What a ritual directory costs to load, per household file, against the single file.

Usage: .venv/bin/python bench/directory.py [HOUSEHOLDS] [--no-baseline]
Default: 100,000 households, the example's couple in four zones (as bench/plan_pure.py makes
them). Prints: parse_household per file (text in memory), load_ritual_directory of the
directory written to a temporary folder (reading, decoding, checks across files), and, as
the baseline, parse_ritual_file of the same households as one file.
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from plan_pure import ZONES, ritual_file

from config.directory import load_ritual_directory, parse_household, parse_shared
from config.loader import parse_ritual_file
from config.split import split_ritual_file

TODAY = datetime(2027, 1, 1, tzinfo=UTC)


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    households = int(args[0]) if args else 100_000
    text = ritual_file(households)
    split = split_ritual_file(ritual_file(1), name="bench", today=TODAY)
    (one,) = split.households.values()  # its zone is ZONES[0]: each file gets its own
    texts = {f"h{n}": one.replace(ZONES[0], ZONES[n % 4]) for n in range(households)}

    shared = parse_shared(split.rituals, name="rituals.toml", today=TODAY)
    started = time.perf_counter()
    for stem, household in texts.items():
        parse_household(shared, household, name=f"households/{stem}.toml", stem=stem, today=TODAY)
    seconds = time.perf_counter() - started
    each = seconds / households * 1e3
    print(f"parse_household x {households:,}: {seconds:.2f} s, {each:.3f} ms each")

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "households").mkdir()
        (root / "rituals.toml").write_text(split.rituals, encoding="utf-8")
        for stem, household in texts.items():
            (root / "households" / f"{stem}.toml").write_text(household, encoding="utf-8")
        started = time.perf_counter()
        loaded = load_ritual_directory(root, today=TODAY)
        seconds = time.perf_counter() - started
        assert len(loaded.households) == households and not loaded.broken
        print(
            f"load_ritual_directory, {households:,} files: {seconds:.2f} s, "
            f"{seconds / households * 1e3:.3f} ms each"
        )

    if "--no-baseline" not in sys.argv:
        started = time.perf_counter()
        parse_ritual_file(text, name="bench", today=TODAY)
        seconds = time.perf_counter() - started
        print(
            f"parse_ritual_file, one file of {households:,}: {seconds:.2f} s, "
            f"{seconds / households * 1e3:.3f} ms each"
        )


if __name__ == "__main__":
    main()
