"""Decks: lists of ideas, questions and prompts, and the order a household meets them in.

Built-in decks are TOML files beside this module. A deck rotates without repeating until it
is used up; each pass is shuffled by a seed of household, ritual and pass, so the item of an
occurrence follows from its index alone: a preview and the real send agree.
"""

from __future__ import annotations

import hashlib
import random
import tomllib
from collections.abc import Mapping, Sequence
from functools import cache, lru_cache
from importlib import resources

__all__ = ["DEFAULT_DECKS", "builtin_decks", "item_at"]

#: The deck a ritual uses when it names none.
DEFAULT_DECKS: Mapping[str, str] = {
    "date_night": "date-ideas",
    "check_in": "check-in-questions",
    "appreciation": "appreciations",
}


@cache
def builtin_decks() -> Mapping[str, tuple[str, ...]]:
    """Every deck shipped with Tend, by name."""
    decks: dict[str, tuple[str, ...]] = {}
    for entry in resources.files(__package__).iterdir():
        if entry.name.endswith(".toml"):
            data = tomllib.loads(entry.read_text(encoding="utf-8"))
            decks[entry.name.removesuffix(".toml")] = tuple(data["items"])
    return decks


def item_at(items: Sequence[str], seed: str, index: int) -> str:
    """The item for occurrence `index`: no repeat within a pass of ``len(items)`` occurrences."""
    size = len(items)
    passes, position = divmod(index, size)
    return items[_order(tuple(items), seed, passes)[position]]


@lru_cache(maxsize=4096)
def _order(items: tuple[str, ...], seed: str, passes: int) -> tuple[int, ...]:
    """The order of pass `passes`; a pass never opens with the item the last one closed on."""
    if len(items) <= 2:
        return _shuffled(len(items), seed, 0)  # a, b, a, b: the only way without repeats
    order = list(_shuffled(len(items), seed, passes))
    if order[0] == _shuffled(len(items), seed, passes - 1)[-1]:
        # Swapping the first two keeps every pass's last item as shuffled, so the rule
        # needs only the previous pass's plain shuffle: no chain back to pass 0.
        order[0], order[1] = order[1], order[0]
    return tuple(order)


@lru_cache(maxsize=4096)  # each pass's order asks for the previous pass's shuffle too
def _shuffled(size: int, seed: str, passes: int) -> tuple[int, ...]:
    key = hashlib.sha256(f"{seed}|{passes}".encode()).digest()
    order = list(range(size))
    random.Random(int.from_bytes(key[:8], "big")).shuffle(order)
    return tuple(order)
