"""Decks: lists of ideas, questions and prompts, and the order a household meets them in.

Built-in decks are TOML files beside this module. A deck rotates without repeating until it
is used up; each pass is shuffled by a seed of household, ritual and pass, and opens clear of
the last items of the pass before, so no item comes back within :data:`SPACING` occurrences.
The item of an occurrence follows from its index alone: a preview and the real send agree.

A ritual may rotate a list of decks (topics): occurrence ``n`` draws from deck ``n mod k`` of
the ``k``, and each deck keeps its own sequence of draws, as if it were the ritual's only deck.
"""

from __future__ import annotations

import hashlib
import random
import tomllib
from collections.abc import Mapping, Sequence
from functools import cache, lru_cache
from importlib import resources

__all__ = ["DEFAULT_DECKS", "SPACING", "builtin_decks", "item_at", "topic_at", "topic_title"]

#: No item comes back within this many occurrences, across the end of a pass too: a pass
#: opens clear of the last items of the one before (a smaller deck keeps what it can).
SPACING = 3

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


def topic_at(decks: Sequence[tuple[str, Sequence[str]]], seed: str, index: int) -> tuple[str, str]:
    """The deck (its name) and item for occurrence `index` of a ritual that rotates `decks`,
    given as ``(name, items)`` in the ritual's order.

    Occurrence `index` falls to deck ``index mod len(decks)``, as its draw number
    ``index // len(decks)``: each deck is used up before any of its items repeats, and keeps
    its items apart across its passes (:func:`item_at`), counted in its own draws. A list of
    one deck is that deck: the same items in the same order as naming it alone.
    """
    count = len(decks)
    name, items = decks[index % count]
    own = seed if count == 1 else f"{seed}|{name}"  # two decks of one size: not one shuffle
    return name, item_at(items, own, index // count)


def topic_title(deck: str) -> str:
    """A deck's name as a message says it (``{{ topic }}``): "family-life" -> "Family life"."""
    words = deck.replace("-", " ").replace("_", " ").strip()
    return words[:1].upper() + words[1:]


@lru_cache(maxsize=4096)
def _order(items: tuple[str, ...], seed: str, passes: int) -> tuple[int, ...]:
    """The order of pass `passes`: its own shuffle, opening clear of the last items of the
    pass before (see :data:`SPACING`)."""
    size = len(items)
    if size <= 2:
        return _shuffled(size, seed, 0)  # a, b, a, b: the only way without repeats
    spacing = min(SPACING, (size + 2) // 2)
    if size < 2 * spacing - 1:
        return _in_halves(size, seed, passes)
    return _opened_clear(_shuffled(size, seed, passes), _shuffled(size, seed, passes - 1), spacing)


def _opened_clear(order: tuple[int, ...], before: tuple[int, ...], spacing: int) -> tuple[int, ...]:
    """`order` with its opening moved on just enough that no item of the end of `before`
    comes back within `spacing` occurrences; the order is otherwise kept.

    The last ``spacing - 1`` places are never touched, so every pass ends as shuffled: the
    rule needs only the previous pass's plain shuffle, with no chain back to pass 0. Taking
    the first item that may stand at each place never runs dry in a deck of at least
    ``2 * spacing - 1`` items (the end of `before` holds ``spacing - 1`` of them).
    """
    tail = spacing - 1
    # The item `j` places from the end of `before` may come from place `spacing - j` on.
    earliest = {before[-j]: spacing - j for j in range(1, tail + 1)}
    rest = list(order[: len(order) - tail])
    opened: list[int] = []
    # From place `tail` on every item may stand anywhere: the rest keeps its order.
    for place in range(min(tail, len(rest))):
        pick = next(k for k, item in enumerate(rest) if earliest.get(item, 0) <= place)
        opened.append(rest.pop(pick))
    return (*opened, *rest, *order[len(order) - tail :])


def _in_halves(size: int, seed: str, passes: int) -> tuple[int, ...]:
    """A deck too small to move only its opening (4 items, spacing 3): one half always opens
    a pass and the other closes it, each half shuffled anew every pass; an item then comes
    back no sooner than half the deck and one later."""
    opening = set(_shuffled(size, f"{seed}|opening", 0)[: size // 2])
    order = _shuffled(size, seed, passes)
    return (*(i for i in order if i in opening), *(i for i in order if i not in opening))


@lru_cache(maxsize=4096)  # each pass's order asks for the previous pass's shuffle too
def _shuffled(size: int, seed: str, passes: int) -> tuple[int, ...]:
    key = hashlib.sha256(f"{seed}|{passes}".encode()).digest()
    order = list(range(size))
    random.Random(int.from_bytes(key[:8], "big")).shuffle(order)
    return tuple(order)
