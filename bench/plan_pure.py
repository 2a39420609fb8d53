"""How fast the pure planner turns a ritual file into deliveries (no database).

Usage: .venv/bin/python bench/plan_pure.py [HOUSEHOLDS] [DAYS] [--memory]
Prints households, occurrences, deliveries, seconds and rates, first run (cold caches) and
second run (warm: schedule slot lists and deck orders cached).
"""

from __future__ import annotations

import sys
import time
import tracemalloc
from datetime import UTC, date, datetime
from pathlib import Path

from config.loader import parse_ritual_file
from rituals.planning import Plan

ZONES = ["America/New_York", "Europe/Berlin", "Australia/Sydney", "Asia/Kolkata"]


def ritual_file(households: int) -> str:
    example = (Path(__file__).parent.parent / "examples" / "tend.toml").read_text()
    head, _, rest = example.partition("[[households]]")
    block, _, rituals = rest.partition("# Every other Friday.")
    blocks = []
    for n in range(households):
        copy = block.replace('id = "alex-sam"', f'id = "h{n}"\ntimezone = "{ZONES[n % 4]}"')
        blocks.append("[[households]]" + copy)
    return head + "".join(blocks) + "# Every other Friday." + rituals


def ritual_directory(root: Path, households: int, *, extra_rituals: str = "") -> Path:
    """The households of :func:`ritual_file` as a ritual directory at `root`: rituals.toml
    (and `extra_rituals`, TOML ``[[rituals]]`` tables) and households/h{n}.toml."""
    from config.split import split_ritual_file

    split = split_ritual_file(ritual_file(1), name="bench", today=datetime(2027, 1, 1, tzinfo=UTC))
    (one,) = split.households.values()  # its zone is ZONES[0]: each file gets its own
    (root / "households").mkdir(parents=True, exist_ok=True)
    (root / "rituals.toml").write_text(split.rituals + extra_rituals, encoding="utf-8")
    for n in range(households):
        text = one.replace(ZONES[0], ZONES[n % 4])
        (root / "households" / f"h{n}.toml").write_text(text, encoding="utf-8")
    return root


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    households = int(args[0]) if args else 1000
    days = int(args[1]) if len(args) > 1 else 14
    text = ritual_file(households)
    started = time.perf_counter()
    plan = Plan(parse_ritual_file(text, name="bench", today=datetime(2027, 1, 1, tzinfo=UTC)).file)
    print(f"load+validate {households} households: {time.perf_counter() - started:.2f} s")
    if "--memory" in sys.argv:
        tracemalloc.start()
    for label in ("cold", "warm"):
        started = time.perf_counter()
        deliveries = plan.deliveries_between(date(2027, 1, 4), days)
        seconds = time.perf_counter() - started
        occurrences = len({d.occurrence.key for d in deliveries})
        print(
            f"{label}: {households} households x {days} days: {occurrences} occurrences, "
            f"{len(deliveries)} deliveries in {seconds:.2f} s = "
            f"{occurrences / seconds:,.0f} occurrences/s, "
            f"{len(deliveries) / seconds:,.0f} deliveries/s"
        )
    if tracemalloc.is_tracing():
        _current, peak = tracemalloc.get_traced_memory()
        print(f"python heap peak while planning: {peak / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
