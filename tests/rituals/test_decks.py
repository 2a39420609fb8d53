"""Decks rotate without repeats, in an order fixed by the seed and the index alone."""

from __future__ import annotations

import itertools
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rituals.decks import DEFAULT_DECKS, SPACING, builtin_decks, item_at
from rituals.sms import count_segments


def test_tend_ships_three_decks_of_at_least_thirty_items() -> None:
    decks = builtin_decks()
    assert set(DEFAULT_DECKS.values()) <= set(decks)
    for name in DEFAULT_DECKS.values():
        items = decks[name]
        assert len(items) >= 30, name
        assert len(set(items)) == len(items), name


@pytest.mark.parametrize("name", sorted(set(DEFAULT_DECKS.values())))
def test_built_in_items_are_plain_gsm_text(name: str) -> None:
    # A single non-GSM character turns an SMS into UCS-2: 70 characters a segment, not 160.
    for item in builtin_decks()[name]:
        assert count_segments(item).encoding == "GSM-7", item


def test_no_item_repeats_before_the_deck_is_used_up() -> None:
    items = [f"idea {n}" for n in range(31)]
    first_pass = [item_at(items, "alex-sam|date-night|", i) for i in range(31)]
    second_pass = [item_at(items, "alex-sam|date-night|", i) for i in range(31, 62)]
    assert sorted(first_pass) == sorted(items)
    assert sorted(second_pass) == sorted(items)
    assert first_pass != items  # shuffled, not in file order
    assert first_pass != second_pass  # each pass has its own order


def test_households_meet_the_deck_in_different_orders() -> None:
    items = [f"idea {n}" for n in range(30)]
    ours = [item_at(items, "alex-sam|date-night|", i) for i in range(30)]
    theirs = [item_at(items, "kim-lee|date-night|", i) for i in range(30)]
    assert ours != theirs


def test_an_index_gives_the_same_item_in_another_process() -> None:
    code = (
        "from rituals.decks import item_at; "
        "print('|'.join(item_at([str(n) for n in range(40)], 'h|r|', i) for i in range(-5, 90)))"
    )
    runs = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        for _ in range(2)
    }
    here = "|".join(item_at([str(n) for n in range(40)], "h|r|", i) for i in range(-5, 90))
    assert runs == {here + "\n"}


@pytest.mark.parametrize("size", [2, 3, 4, 7, 30])
def test_a_new_pass_never_opens_with_the_item_the_last_one_closed_on(size: int) -> None:
    items = [f"idea {n}" for n in range(size)]
    for seed in ("alex-sam|reunion|", "kim-lee|reunion|", "x|y|z"):
        run = [item_at(items, seed, i) for i in range(-3 * size, 40 * size)]
        assert all(a != b for a, b in itertools.pairwise(run)), seed


@settings(max_examples=300, deadline=None)
@given(
    size=st.integers(min_value=SPACING + 1, max_value=40),
    seed=st.text(min_size=1, max_size=30),
    start=st.integers(min_value=-50, max_value=50),
)
def test_no_item_comes_back_within_the_spacing_even_across_passes(
    size: int, seed: str, start: int
) -> None:
    items = [f"idea {n}" for n in range(size)]
    passes = range(start, start + 8)
    run = [item_at(items, seed, i) for i in range(passes[0] * size, (passes[-1] + 1) * size)]
    for at in range(len(run) - SPACING + 1):
        window = run[at : at + SPACING]
        assert len(set(window)) == SPACING, (at, window)
    for n in range(len(passes)):
        assert sorted(run[n * size : (n + 1) * size]) == sorted(items)  # each item once a pass
