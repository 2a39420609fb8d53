"""Topics: the five conversation decks, and a ritual that rotates a list of decks, each deck
drawn in its own order, used up before any of its items repeats."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, date, datetime
from textwrap import dedent

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.loader import parse_ritual_file
from rituals.decks import SPACING, builtin_decks, item_at, topic_at, topic_title
from rituals.planning import Plan
from rituals.sms import is_gsm7

TOPICS = ["finances", "family-life", "relationship-goals", "feelings", "together"]
TODAY = datetime(2027, 1, 1, tzinfo=UTC)


# -- the decks ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TOPICS)
def test_each_topic_deck_ships_at_least_twenty_different_items(name: str) -> None:
    items = builtin_decks()[name]
    assert len(items) >= 20
    assert len(set(items)) == len(items)


@pytest.mark.parametrize("name", TOPICS)
def test_topic_items_are_plain_gsm7_text_of_one_short_line_with_no_numbers(name: str) -> None:
    for item in builtin_decks()[name]:
        assert is_gsm7(item), item  # one curly quote or dash would make the SMS UCS-2
        assert item == item.strip() and "\n" not in item, item
        assert len(item) <= 90, item  # room for the message around it in one or two segments
        assert not re.search(r"\d", item), item  # no phone numbers, no prices


def test_the_conversation_decks_ask_and_the_together_deck_suggests() -> None:
    decks = builtin_decks()
    for name in ("finances", "family-life", "relationship-goals", "feelings"):
        assert all(item.endswith("?") for item in decks[name]), name
    assert not any(item.endswith("?") for item in decks["together"])


@pytest.mark.parametrize(
    ("deck", "title"),
    [
        ("finances", "Finances"),
        ("family-life", "Family life"),
        ("relationship-goals", "Relationship goals"),
        ("reunion_prompts", "Reunion prompts"),
        ("date-ideas", "Date ideas"),
    ],
)
def test_a_topic_is_the_decks_name_as_words(deck: str, title: str) -> None:
    assert topic_title(deck) == title


# -- rotation -------------------------------------------------------------------------------------


def decks_of(*sizes: int) -> list[tuple[str, list[str]]]:
    return [
        (f"deck{k}", [f"deck{k} item {n}" for n in range(size)]) for k, size in enumerate(sizes)
    ]


def test_topics_take_turns_in_the_order_of_the_list() -> None:
    decks = decks_of(5, 5, 5)
    names = [topic_at(decks, "h|r|", n)[0] for n in range(9)]
    assert names == ["deck0", "deck1", "deck2"] * 3


def test_each_item_comes_from_its_own_topic() -> None:
    decks = decks_of(4, 7)
    for n in range(-20, 60):
        deck, item = topic_at(decks, "h|r|", n)
        assert item.startswith(f"{deck} ")


@pytest.mark.parametrize("index", [-7, 0, 1, 29, 30, 31, 500])
def test_a_list_of_one_deck_draws_as_the_deck_alone(index: int) -> None:
    [(name, items)] = decks_of(30)
    assert topic_at([(name, items)], "alex-sam|check-in|", index) == (
        name,
        item_at(items, "alex-sam|check-in|", index),
    )


def test_two_decks_of_one_size_are_not_shuffled_alike() -> None:
    decks = decks_of(20, 20)
    first = [topic_at(decks, "h|r|", n)[1].split()[-1] for n in range(0, 40, 2)]
    second = [topic_at(decks, "h|r|", n)[1].split()[-1] for n in range(1, 40, 2)]
    assert first != second


@settings(max_examples=150, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=25), min_size=1, max_size=5),
    seed=st.text(min_size=1, max_size=20),
    first_pass=st.integers(min_value=-20, max_value=20),
)
def test_no_topic_repeats_an_item_before_it_is_used_up_nor_within_the_spacing(
    sizes: list[int], seed: str, first_pass: int
) -> None:
    decks = decks_of(*sizes)
    count = len(decks)
    for k, (name, items) in enumerate(decks):
        size = len(items)
        # The deck's own draws j = pass * size ..., at the ritual's occurrences j * count + k.
        turns = range(first_pass * size, (first_pass + 5) * size)
        drawn = [topic_at(decks, seed, j * count + k) for j in turns]
        assert {deck for deck, _ in drawn} == {name}
        draws = [item for _, item in drawn]
        for p in range(5):
            assert sorted(draws[p * size : (p + 1) * size]) == sorted(items), (name, p)
        # No item back within the spacing, across the end of a pass too (smaller decks keep
        # what they can: three items two apart, two alternate).
        spacing = min(SPACING, (size + 2) // 2)
        for at in range(len(draws) - spacing + 1):
            window = draws[at : at + spacing]
            assert len(set(window)) == spacing, (name, at, window)


# -- in a plan ------------------------------------------------------------------------------------

COUPLE = """
timezone = "America/New_York"

[[households]]
id = "alex-sam"

  [[households.partners]]
  id = "alex"
  name = "Alex"
  phone = "+15551230001"

  [[households.partners]]
  id = "sam"
  name = "Sam"
  phone = "+15551230002"
"""

MONEY_AND_PLANS = """
[[rituals]]
id = "money-and-plans"
kind = "check_in"
schedule = "weekly on sun at 18:00"
deck = ["finances", "family-life", "relationship-goals"]
message = "This week: {{ topic }}. {{ item }} Reply DONE when you've talked."
"""


def plan_of(text: str) -> Plan:
    return Plan(parse_ritual_file(dedent(text), name="tend.toml", today=TODAY).file)


def test_a_weekly_ritual_rotates_its_topics_week_by_week_and_says_which() -> None:
    plan = plan_of(COUPLE + MONEY_AND_PLANS)
    [ritual] = plan.file.rituals
    found = plan.occurrences("alex-sam", ritual, date(2027, 1, 1), date(2027, 3, 1))
    decks = [o.deck for o in found]
    assert len(decks) == 9  # the Sundays of January and February
    turns = ["finances", "family-life", "relationship-goals"]
    start = turns.index(decks[0])
    assert decks == [turns[(start + n) % 3] for n in range(9)]
    for occurrence in found:
        assert occurrence.item in builtin_decks()[occurrence.deck or ""]
    deliveries = plan.deliveries(found[1])
    topic = topic_title(found[1].deck or "")
    assert {d.text for d in deliveries} == {
        f"This week: {topic}. {found[1].item} Reply DONE when you've talked."
    }


def test_a_check_in_with_a_list_draws_from_the_list_not_from_its_kinds_default() -> None:
    plan = plan_of(COUPLE + MONEY_AND_PLANS)
    [ritual] = plan.file.rituals
    found = plan.occurrences("alex-sam", ritual, date(2027, 1, 1), date(2028, 1, 1))
    assert {o.deck for o in found} == {"finances", "family-life", "relationship-goals"}
    questions = set(builtin_decks()["check-in-questions"])
    assert not any(o.item in questions for o in found)


def test_years_of_a_topic_list_use_each_deck_up_before_repeating_it() -> None:
    plan = plan_of(COUPLE + MONEY_AND_PLANS)
    [ritual] = plan.file.rituals
    found = plan.occurrences("alex-sam", ritual, date(2027, 1, 1), date(2031, 1, 1))
    for name in ("finances", "family-life", "relationship-goals"):
        items = builtin_decks()[name]
        # The deck's passes, by its own draw number (the occurrence's index // 3).
        passes: dict[int, list[str]] = {}
        for o in found:
            if o.deck == name:
                passes.setdefault(o.index // 3 // len(items), []).append(o.item or "")
        full = [drawn for drawn in passes.values() if len(drawn) == len(items)]
        assert len(full) >= 2, name
        for drawn in full:
            assert sorted(drawn) == sorted(items), name


def test_each_partner_of_a_to_each_ritual_has_their_own_turns_and_draws() -> None:
    ritual = MONEY_AND_PLANS.replace('kind = "check_in"', 'kind = "custom"\nto = "each"')
    plan = plan_of(COUPLE + ritual)
    [money] = plan.file.rituals
    found = plan.occurrences("alex-sam", money, date(2027, 1, 1), date(2027, 7, 1))
    alex = [(o.deck, o.item) for o in found if o.recipient == "alex"]
    sam = [(o.deck, o.item) for o in found if o.recipient == "sam"]
    assert [d for d, _ in alex] == [d for d, _ in sam]  # the same week, the same topic
    assert [i for _, i in alex] != [i for _, i in sam]  # each their own order


def test_an_occurrence_of_a_single_deck_records_that_deck_and_topic() -> None:
    plan = plan_of(
        COUPLE
        + """
[[rituals]]
id = "together"
kind = "custom"
schedule = "weekly on sat at 10:00"
deck = "together"
message = "{{ topic }}: {{ item }}"
"""
    )
    [ritual] = plan.file.rituals
    [first, *_] = plan.occurrences("alex-sam", ritual, date(2027, 1, 1), date(2027, 2, 1))
    assert first.deck == "together"
    assert plan.deliveries(first)[0].text == f"Together: {first.item}"


def test_a_ritual_with_no_deck_has_no_item_and_no_deck() -> None:
    plan = plan_of(
        COUPLE
        + """
[[rituals]]
id = "walk"
kind = "custom"
schedule = "weekly on sat at 10:00"
message = "Walk time"
"""
    )
    [ritual] = plan.file.rituals
    [first, *_] = plan.occurrences("alex-sam", ritual, date(2027, 1, 1), date(2027, 2, 1))
    assert (first.item, first.deck) == (None, None)


# -- files with one deck name: exactly as before ------------------------------------------------

SINGLE_DECKS = """
[[households]]
id = "kim-lee"

  [[households.partners]]
  id = "kim"
  name = "Kim"
  phone = "+15551230003"

[[rituals]]
id = "date-night"
kind = "date_night"
schedule = "every 2 weeks on fri at 19:00"

[[rituals]]
id = "check-in"
kind = "check_in"
schedule = "weekly on sun at 19:30"
deck = "check-in-questions"

[[rituals]]
id = "appreciation"
kind = "appreciation"
schedule = { times = 3, per = "week", between = "10:00-20:00" }
to = "each"

[[rituals]]
id = "reunion"
kind = "custom"
schedule = "daily at 18:15"
deck = "reunion-prompts"
message = "Ask: {{ item }}"

[decks.reunion-prompts]
items = ["One", "Two", "Three", "Four", "Five", "Six", "Seven"]
"""


def test_a_file_naming_one_deck_per_ritual_draws_the_same_items_as_before_topics() -> None:
    # Recorded with the release before deck lists (main at 75004dd), same file, same dates.
    plan = plan_of(COUPLE + SINGLE_DECKS)
    rituals = {r.id: r for r in plan.file.rituals}
    first = {
        name: [
            o.item
            for o in plan.occurrences("alex-sam", ritual, date(2027, 1, 1), date(2027, 3, 1))[:5]
        ]
        for name, ritual in rituals.items()
    }
    assert first == {
        "date-night": [
            "Sit down together and map out shared money goals over dessert",
            "Cook breakfast for dinner in your pajamas",
            "Have an indoor picnic on the floor with candles",
            "Try a beginner class together, like pottery, salsa or climbing",
            "Look through old photos and retell the story of how you met",
        ],
        "check-in": [
            "What is stressing you out right now, and how can I help?",
            "Is there a chore or task that feels unfairly split right now?",
            "When did you feel most distant from me this week?",
            "Did I miss a bid for attention from you this week?",
            "What went well for us this week?",
        ],
        "appreciation": [
            "Leave your partner a short handwritten note somewhere they will find it.",
            "Tell your partner what feels like home about being with them.",
            "Tell your partner a reason you would choose them all over again.",
            "Thank your partner for a kindness they showed you early in your relationship.",
            "Tell your partner one thing about them you are still curious to learn.",
        ],
        "reunion": ["Five", "Six", "One", "Two", "Four"],
    }
    # A year of both households' occurrences, and eight weeks of messages, as they were.
    items = hashlib.sha256()
    for household in plan.file.households:
        for ritual in plan.file.rituals:
            for o in plan.occurrences(household.id, ritual, date(2027, 1, 1), date(2028, 1, 1)):
                items.update(f"{o.key}|{o.item}\n".encode())
    texts = hashlib.sha256()
    for d in plan.deliveries_between(date(2027, 1, 1), 56):
        texts.update(f"{d.occurrence.key}|{d.partner}|{d.role}|{d.text}\n".encode())
    assert items.hexdigest() == "2c721a959a8c07372765a57f252ab8b646affc5763fbd2c983d55734f4d1497e"
    assert texts.hexdigest() == "d9e83e241ef2681e1e33ab4a81b2e32e82c6cf3003c8d3506e2dd0b27d9c959f"


def test_a_list_of_one_deck_plans_as_that_deck_named_alone() -> None:
    alone = plan_of(COUPLE + SINGLE_DECKS)
    listed = plan_of(
        COUPLE
        + SINGLE_DECKS.replace('deck = "check-in-questions"', 'deck = ["check-in-questions"]')
    )
    for plan in (alone, listed):
        assert [r.id for r in plan.file.rituals][1] == "check-in"
    before = alone.occurrences(
        "alex-sam", alone.file.rituals[1], date(2027, 1, 1), date(2028, 1, 1)
    )
    after = listed.occurrences(
        "alex-sam", listed.file.rituals[1], date(2027, 1, 1), date(2028, 1, 1)
    )
    assert [(o.key, o.item, o.deck) for o in before] == [(o.key, o.item, o.deck) for o in after]
