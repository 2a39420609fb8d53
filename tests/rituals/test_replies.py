"""The reply grammar from a table, and when a snoozed nudge comes back (zones with DST)."""

from __future__ import annotations

import typing
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rituals.clock import TimeWindow, resolve
from rituals.replies import (
    HELP,
    MAX_PAUSE,
    MAX_TELL,
    RATING_RANGE,
    TELL_EMPTY,
    Command,
    Reply,
    Snooze,
    day_text,
    in_a_row,
    parse,
    snooze_until,
    tell_too_long,
)
from rituals.sms import count_segments, is_gsm7

NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
SNOOZE_PROBLEM = "SNOOZE takes a time like 30m, 2h, tomorrow or sat, up to 7 days."
PAUSE_PROBLEM = "PAUSE takes a length like 2w or 10d, up to 90 days."


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def case(text: str, expected: Reply, id: str) -> object:
    return pytest.param(text, expected, id=id)


CONFIRM = Reply("confirm")
STOP = Reply("stop")
UNKNOWN = Reply("unknown")


def snoozed(
    delay: timedelta | None = None, *, tomorrow: bool = False, weekday: int | None = None
) -> Reply:
    return Reply("snooze", snooze=Snooze(delay=delay, tomorrow=tomorrow, weekday=weekday))


def told(text: str) -> Reply:
    return Reply("tell", text=text)


def rated(rating: int) -> Reply:
    return Reply("rate", rating=rating)


OUT_OF_RANGE = Reply("rate", problem=RATING_RANGE)


# ----------------------------------------------------------------------------- the grammar

GRAMMAR = [
    # Confirmations: words, emoji, repeats, case and punctuation around them.
    case("DONE", CONFIRM, "done"),
    case("done", CONFIRM, "done-lowercase"),
    case("Done!!", CONFIRM, "done-with-exclamations"),
    case("  done.  ", CONFIRM, "done-with-whitespace-and-a-full-stop"),
    case("\tDoNe\n", CONFIRM, "done-mixed-case-tab-and-newline"),
    case("(done)", CONFIRM, "done-in-brackets"),
    case("\uff24\uff2f\uff2e\uff25\uff01\uff01", CONFIRM, "done-full-width"),
    case("Y", CONFIRM, "y"),
    case("y.", CONFIRM, "y-with-full-stop"),
    case("DID IT", CONFIRM, "did-it"),
    case("did it!", CONFIRM, "did-it-lowercase"),
    case("We did it!", CONFIRM, "we-did-it"),
    case("✅", CONFIRM, "check-mark"),
    case("✅✅✅", CONFIRM, "check-marks-repeated"),
    case("👍", CONFIRM, "thumbs-up"),
    case("👍🏽", CONFIRM, "thumbs-up-medium-skin-tone"),
    case("👍🏿👍🏻", CONFIRM, "thumbs-up-two-skin-tones"),
    case("❤️", CONFIRM, "red-heart-with-variation-selector"),
    case("❤", CONFIRM, "red-heart-bare"),
    case("❤️❤️", CONFIRM, "red-hearts-repeated"),
    case("❤️ 👍", CONFIRM, "heart-and-thumb-with-space"),
    case("👍 great one", CONFIRM, "thumbs-up-then-a-note"),
    # Picks: which of the open occurrences listed.
    case("DONE 2", Reply("confirm", pick=2), "done-pick-2"),
    case("done #2", Reply("confirm", pick=2), "done-hash-pick"),
    case("done2", Reply("confirm", pick=2), "done-pick-joined"),
    case("Done 12", Reply("confirm", pick=12), "done-pick-12"),
    case("y 2", Reply("confirm", pick=2), "y-pick"),
    case("Done, it was lovely", CONFIRM, "done-with-a-note-has-no-pick"),
    case("done 123", CONFIRM, "three-digits-is-a-note-not-a-pick"),
    case("y not", UNKNOWN, "y-not-is-not-a-confirmation"),
    case("yesterday", UNKNOWN, "a-word-that-starts-with-yes"),
    # A confirm word followed by doubt is not a confirmation.
    case("Done? No, not yet", UNKNOWN, "done-question-then-not-yet"),
    case("Did it? not yet", UNKNOWN, "did-it-question-then-not-yet"),
    case("yeah no", UNKNOWN, "yeah-no"),
    case("Yes, skip this one", UNKNOWN, "yes-then-skip"),
    case("yes but we skipped", UNKNOWN, "yes-but-skipped"),
    case("Complete waste", UNKNOWN, "complete-in-a-sentence-is-not-a-confirmation"),
    case("Yes please stop texting", UNKNOWN, "yes-then-stop"),
    case("Done. Didn\u2019t love it though", UNKNOWN, "done-then-a-curly-apostrophe-didnt"),
    # ... and one followed by a happy note still is.
    case("Yes!! so fun", CONFIRM, "yes-then-a-happy-note"),
    case("Completed", CONFIRM, "completed-alone"),
    case("did it!! 🥰", CONFIRM, "did-it-with-an-emoji"),
    # iMessage tapbacks arrive as text.
    case("Liked “Date night on Fri…”", CONFIRM, "tapback-liked-curly-quotes"),
    case("Loved \u2018Date night on Fri\u2019", CONFIRM, "tapback-loved-single-quotes"),
    case('Emphasized "Check-in tonight"', CONFIRM, "tapback-emphasized-straight-quotes"),
    case("Disliked “Date night on Fri…”", UNKNOWN, "tapback-disliked-is-not-a-confirmation"),
    case("Laughed at “Date night on Fri…”", UNKNOWN, "tapback-laughed-is-not-a-confirmation"),
    # YES is also Twilio's opt-in keyword, but only as the whole message.
    case("YES", Reply("confirm", opts_in=True), "yes-opts-in"),
    case("  yes! ", Reply("confirm", opts_in=True), "yes-with-punctuation-opts-in"),
    case("yes 2", Reply("confirm", pick=2), "yes-with-a-pick-does-not-opt-in"),
    case("yes we did", CONFIRM, "yes-with-words-does-not-opt-in"),
    # SKIP: the reason is kept as written.
    case("SKIP", Reply("skip"), "skip"),
    case("skip.", Reply("skip"), "skip-with-full-stop"),
    case("SKIP 2", Reply("skip", pick=2), "skip-pick"),
    case("skip #3", Reply("skip", pick=3), "skip-hash-pick"),
    case("skip Working Late", Reply("skip", reason="Working Late"), "skip-reason-keeps-case"),
    case("Skip: Sick at Home", Reply("skip", reason="Sick at Home"), "skip-colon-reason"),
    case("SKIP 2 Kid is ILL", Reply("skip", pick=2, reason="Kid is ILL"), "skip-pick-and-reason"),
    case("skip 2 - Away", Reply("skip", pick=2, reason="Away"), "skip-pick-dash-reason"),
    case("pass, Tired", Reply("skip", reason="Tired"), "pass-is-skip"),
    # SNOOZE: a delay, tomorrow or a weekday; a problem for what it cannot use.
    case("SNOOZE", snoozed(delay=timedelta(hours=1)), "snooze-default-one-hour"),
    case("snooze 30m", snoozed(delay=timedelta(minutes=30)), "snooze-30m"),
    case("snooze 2 hours", snoozed(delay=timedelta(hours=2)), "snooze-2-hours"),
    case("Snooze 1h30m", snoozed(delay=timedelta(minutes=90)), "snooze-1h30m"),
    case("snooze 1h 30m", snoozed(delay=timedelta(minutes=90)), "snooze-1h-space-30m"),
    case("snooze for an hour", snoozed(delay=timedelta(hours=1)), "snooze-for-an-hour"),
    case("snooze 5m", snoozed(delay=timedelta(minutes=5)), "snooze-shortest"),
    case("snooze 7d", snoozed(delay=timedelta(days=7)), "snooze-longest"),
    case("snooze tomorrow", snoozed(tomorrow=True), "snooze-tomorrow"),
    case("SNOOZE TMRW", snoozed(tomorrow=True), "snooze-tmrw"),
    case("snooze sat", snoozed(weekday=5), "snooze-sat"),
    case("snooze saturday", snoozed(weekday=5), "snooze-saturday"),
    case("snooze until Monday", snoozed(weekday=0), "snooze-until-monday"),
    case("snooze on sun", snoozed(weekday=6), "snooze-on-sun"),
    case("remind me later", snoozed(delay=timedelta(hours=1)), "remind-me-later"),
    case("later 2h", snoozed(delay=timedelta(hours=2)), "later-2h"),
    case("snooze 2", Reply("snooze", problem=SNOOZE_PROBLEM), "snooze-number-without-unit"),
    case("snooze 10d", Reply("snooze", problem=SNOOZE_PROBLEM), "snooze-too-long"),
    case("snooze 1m", Reply("snooze", problem=SNOOZE_PROBLEM), "snooze-too-short"),
    case("snooze 2 fortnights", Reply("snooze", problem=SNOOZE_PROBLEM), "snooze-unknown-unit"),
    case("snooze whenever", Reply("snooze", problem=SNOOZE_PROBLEM), "snooze-unreadable"),
    # Streaks and help.
    case("STREAK", Reply("streak"), "streak"),
    case("status?", Reply("streak"), "status"),
    case("Streaks", Reply("streak"), "streaks"),
    case("HELP", Reply("help"), "help"),
    case("info", Reply("help"), "info"),
    case("?", Reply("help"), "question-mark"),
    case(" ??? ", Reply("help"), "question-marks"),
    # Twilio's opt-out keywords, only as the whole message.
    case("STOP", STOP, "stop"),
    case("stop.", STOP, "stop-with-full-stop"),
    case("Stop!", STOP, "stop-with-exclamation"),
    case("STOPALL", STOP, "stopall"),
    case("stop all", STOP, "stop-all-two-words"),
    case("UNSUBSCRIBE", STOP, "unsubscribe"),
    case("Cancel", STOP, "cancel"),
    case("END", STOP, "end"),
    case("quit", STOP, "quit"),
    case("\uff33\uff34\uff2f\uff30", STOP, "stop-full-width"),
    case("cancel date night tonight", UNKNOWN, "cancel-in-a-sentence-is-not-stop"),
    case("stop it please", UNKNOWN, "stop-in-a-sentence-is-not-stop"),
    case("the end", UNKNOWN, "end-in-a-sentence-is-not-stop"),
    case("START", Reply("start"), "start"),
    case("unstop", Reply("start"), "unstop"),
    # PAUSE and RESUME.
    case("PAUSE", Reply("pause", pause=timedelta(weeks=1)), "pause-default-one-week"),
    case("pause 2w", Reply("pause", pause=timedelta(weeks=2)), "pause-2w"),
    case("pause 2 weeks", Reply("pause", pause=timedelta(weeks=2)), "pause-2-weeks"),
    case("Pause for 10d", Reply("pause", pause=timedelta(days=10)), "pause-for-10d"),
    case("pause 90d", Reply("pause", pause=MAX_PAUSE), "pause-longest"),
    case("pause 91d", Reply("pause", problem=PAUSE_PROBLEM), "pause-too-long"),
    case("pause 20w", Reply("pause", problem=PAUSE_PROBLEM), "pause-20-weeks-too-long"),
    case("pause 10m", Reply("pause", problem=PAUSE_PROBLEM), "pause-too-short"),
    case("pause a while", Reply("pause", problem=PAUSE_PROBLEM), "pause-unreadable"),
    case("RESUME", Reply("resume"), "resume"),
    case("back!", Reply("resume"), "back"),
    # TELL: the text kept as written (case, inner spaces, emoji, newlines), trimmed.
    case("TELL Thank you for dinner", told("Thank you for dinner"), "tell"),
    case("tell you were wonderful today", told("you were wonderful today"), "tell-lowercase"),
    case("Tell:  You rock ❤️ ", told("You rock ❤️"), "tell-colon-trimmed"),
    case("  TELL - thanks!!", told("thanks!!"), "tell-dash-kept-exclamations"),
    case("TELL\nthank you\nfor everything", told("thank you\nfor everything"), "tell-lines"),
    case("\uff34\uff25\uff2c\uff2c hi", told("hi"), "tell-full-width"),
    case("TELL done", told("done"), "tell-of-a-command-word-is-a-tell"),
    case("TELL STOP", told("STOP"), "tell-stop-is-a-tell-not-an-opt-out"),
    case("TELL " + "x" * MAX_TELL, told("x" * MAX_TELL), "tell-at-the-limit"),
    case("TELL", Reply("tell", problem=TELL_EMPTY), "tell-alone"),
    case("tell :  ", Reply("tell", problem=TELL_EMPTY), "tell-with-only-punctuation"),
    case(
        "TELL " + "x" * (MAX_TELL + 1),
        Reply("tell", problem=tell_too_long(MAX_TELL + 1)),
        "tell-one-over-the-limit",
    ),
    case("telling you: done", UNKNOWN, "telling-is-not-tell"),
    # The pulse: a rating 1-5 of a check-in, PULSE for the partner's own trend.
    case("4", rated(4), "rating-bare-digit"),
    case("1", rated(1), "rating-lowest"),
    case("5!", rated(5), "rating-highest-with-exclamation"),
    case("4/5", rated(4), "rating-out-of-five"),
    case("4 / 5", rated(4), "rating-out-of-five-spaced"),
    case("3 out of 5", rated(3), "rating-out-of-five-in-words"),
    case("PULSE 4", rated(4), "rating-after-pulse"),
    case("pulse: 2", rated(2), "rating-after-pulse-colon"),
    case("Pulse 4 tired but good", rated(4), "rating-after-pulse-with-a-note"),
    case("4 - tired but good", rated(4), "rating-with-a-dash-note"),
    case("4: long week", rated(4), "rating-with-a-colon-note"),
    case("2, rough one", rated(2), "rating-with-a-comma-note"),
    case("\uff14", rated(4), "rating-full-width-digit"),
    case("0", OUT_OF_RANGE, "rating-zero-is-out-of-range"),
    case("6", OUT_OF_RANGE, "rating-six-is-out-of-range"),
    case("10", OUT_OF_RANGE, "rating-ten-is-out-of-range"),
    case("PULSE 9", OUT_OF_RANGE, "rating-nine-after-pulse"),
    case("8/10", OUT_OF_RANGE, "rating-out-of-ten"),
    case("3.5", OUT_OF_RANGE, "rating-not-whole"),
    case("PULSE great", OUT_OF_RANGE, "pulse-with-words-not-a-number"),
    case("PULSE", Reply("pulse"), "pulse-alone-is-the-trend"),
    case("pulse?", Reply("pulse"), "pulse-asked"),
    case("pulsed", UNKNOWN, "pulsed-is-not-pulse"),
    case("2h", UNKNOWN, "a-duration-is-not-a-rating"),
    case("2 more days", UNKNOWN, "a-number-in-words-is-not-a-rating"),
    case("4 tired", UNKNOWN, "a-number-then-a-word-is-not-a-rating"),
    case("DONE 2", Reply("confirm", pick=2), "done-pick-keeps-its-meaning"),
    case("SKIP 2", Reply("skip", pick=2), "skip-pick-keeps-its-meaning"),
    case("SNOOZE 2h", snoozed(timedelta(hours=2)), "snooze-keeps-its-meaning"),
    case("tells", UNKNOWN, "tells-is-not-tell"),
    case("Did you tell her?", UNKNOWN, "tell-not-first-is-not-tell"),
    # Anything else.
    case("hello", UNKNOWN, "hello"),
    case("", UNKNOWN, "empty"),
    case("   \t\n ", UNKNOWN, "whitespace"),
    case("😀", UNKNOWN, "an-emoji-that-is-not-a-confirmation"),
    case("'; DROP TABLE replies; --", UNKNOWN, "sql-looking"),
    case("1 OR 1=1", UNKNOWN, "sql-looking-condition"),
    case("what time is it", UNKNOWN, "a-question"),
]


@pytest.mark.parametrize(("text", "expected"), GRAMMAR)
def test_it_reads_each_reply_in_the_grammar(text: str, expected: Reply) -> None:
    assert parse(text) == expected


def test_a_pause_far_too_long_to_count_is_a_problem_not_an_error() -> None:
    assert parse("pause " + "9999w" * 15000) == Reply("pause", problem=PAUSE_PROBLEM)


def test_a_tells_text_is_not_in_its_repr() -> None:
    reply = parse("TELL my secret words")
    assert reply.text == "my secret words"
    assert "secret" not in repr(reply)
    assert repr(reply) == "Reply(command='tell', opts_in=False, text=<15 characters>)"


def test_a_rating_is_not_in_its_repr() -> None:
    reply = parse("PULSE 4 - worried about us")
    assert reply.rating == 4
    assert "4" not in repr(reply)
    assert "worried" not in repr(reply)
    assert repr(reply) == "Reply(command='rate', opts_in=False, rating=<hidden>)"


def test_the_too_long_answer_says_how_long_and_the_limit() -> None:
    assert tell_too_long(400) == (
        "That TELL is 400 characters; it can be at most 320. "
        "Nothing was sent: please send a shorter one."
    )


def test_the_help_text_is_one_gsm7_sms() -> None:
    assert is_gsm7(HELP)
    assert count_segments(HELP).count == 1


def test_the_help_text_names_every_command_it_teaches() -> None:
    for word in ("DONE", "SKIP", "SNOOZE", "STREAK", "PAUSE", "RESUME", "STOP"):
        assert word in HELP
        assert parse(word).command != "unknown"
    assert "TELL <words>" in HELP
    assert parse("TELL thank you").command == "tell"
    assert "1-5" in HELP and "PULSE" in HELP
    assert parse("4").command == "rate"
    assert parse("PULSE").command == "pulse"


COMMANDS = set(typing.get_args(Command))


@settings(max_examples=200, deadline=None)
@given(text=st.text())
def test_parse_never_raises_and_always_answers_a_known_command(text: str) -> None:
    reply = parse(text)
    assert reply.command in COMMANDS


@settings(max_examples=100, deadline=None)
@given(
    word=st.sampled_from(["done", "skip", "stop", "help", "streak", "resume", "pause"]),
    before=st.sampled_from(["", " ", "  ", "\t", "\n", "*", "("]),
    after=st.sampled_from(["", " ", "!", "!!", ".", "...", "?!", " :)", ")"]),
    upper=st.lists(st.booleans(), min_size=6, max_size=6),
)
def test_case_whitespace_and_punctuation_around_a_command_do_not_matter(
    word: str, before: str, after: str, upper: list[bool]
) -> None:
    cased = "".join(c.upper() if up else c for c, up in zip(word, upper, strict=False))
    assert parse(before + cased + after) == parse(word)


# ----------------------------------------------------------------------------- snooze_until

QUIET = TimeWindow.parse("22:00-08:00")


@pytest.mark.parametrize(
    ("snooze", "now", "zone", "at_time", "quiet", "expected_local"),
    [
        pytest.param(
            Snooze(delay=timedelta(hours=1)),
            utc("2027-06-01T16:00"),
            NEW_YORK,
            time(19, 0),
            QUIET,
            "2027-06-01T13:00-04:00",
            id="a-delay-from-now",
        ),
        pytest.param(
            Snooze(delay=timedelta(minutes=30)),
            utc("2027-06-01T16:10"),
            BERLIN,
            time(19, 0),
            None,
            "2027-06-01T18:40+02:00",
            id="a-delay-in-berlin",
        ),
        pytest.param(
            Snooze(tomorrow=True),
            utc("2027-06-01T16:00"),
            NEW_YORK,
            time(19, 0),
            QUIET,
            "2027-06-02T19:00-04:00",
            id="tomorrow-at-the-given-local-time",
        ),
        pytest.param(
            Snooze(tomorrow=True),
            utc("2027-06-01T03:30"),  # 23:30 on 31 May in New York
            NEW_YORK,
            time(19, 0),
            None,
            "2027-06-01T19:00-04:00",
            id="tomorrow-is-the-partners-tomorrow-not-utcs",
        ),
        pytest.param(
            Snooze(weekday=5),
            utc("2027-06-02T16:00"),  # a Wednesday
            BERLIN,
            time(10, 0),
            None,
            "2027-06-05T10:00+02:00",
            id="saturday-from-a-wednesday",
        ),
        pytest.param(
            Snooze(weekday=5),
            utc("2027-06-05T08:00"),  # a Saturday morning in Berlin
            BERLIN,
            time(19, 0),
            None,
            "2027-06-12T19:00+02:00",
            id="saturday-on-a-saturday-is-next-saturday",
        ),
        pytest.param(
            Snooze(weekday=6),
            utc("2027-06-05T16:00"),  # a Saturday
            NEW_YORK,
            time(19, 0),
            None,
            "2027-06-06T19:00-04:00",
            id="sunday-from-a-saturday-is-the-next-day",
        ),
        pytest.param(
            Snooze(delay=timedelta(hours=2)),
            utc("2027-06-02T01:00"),  # 21:00 in New York: 23:00 is quiet
            NEW_YORK,
            time(19, 0),
            QUIET,
            "2027-06-02T08:00-04:00",
            id="a-delay-into-quiet-hours-waits-for-their-end",
        ),
        pytest.param(
            Snooze(tomorrow=True),
            utc("2027-06-01T16:00"),
            BERLIN,
            time(6, 30),
            QUIET,
            "2027-06-02T08:00+02:00",
            id="tomorrow-inside-quiet-hours-waits-for-their-end",
        ),
        pytest.param(
            Snooze(delay=timedelta(hours=3)),
            utc("2027-06-01T16:00"),
            BERLIN,
            time(19, 0),
            TimeWindow.parse("13:00-15:00"),
            "2027-06-01T21:00+02:00",
            id="outside-a-daytime-quiet-window-nothing-moves",
        ),
        pytest.param(
            Snooze(tomorrow=True),
            utc("2027-03-13T16:00"),  # New York springs forward 2027-03-14 02:00 -> 03:00
            NEW_YORK,
            time(2, 30),
            None,
            "2027-03-14T03:30-04:00",
            id="tomorrow-in-a-spring-forward-gap-new-york",
        ),
        pytest.param(
            Snooze(tomorrow=True),
            utc("2027-03-27T16:00"),  # Berlin springs forward 2027-03-28 02:00 -> 03:00
            BERLIN,
            time(2, 30),
            None,
            "2027-03-28T03:30+02:00",
            id="tomorrow-in-a-spring-forward-gap-berlin",
        ),
        pytest.param(
            Snooze(tomorrow=True),
            utc("2027-11-06T16:00"),  # New York falls back 2027-11-07: 01:30 happens twice
            NEW_YORK,
            time(1, 30),
            None,
            "2027-11-07T01:30-04:00",
            id="tomorrow-in-a-fall-back-hour-is-the-first-one",
        ),
        pytest.param(
            Snooze(delay=timedelta(hours=1)),
            utc("2027-03-14T06:30"),  # 01:30 EST; an hour later the clock reads 03:30
            NEW_YORK,
            time(19, 0),
            None,
            "2027-03-14T03:30-04:00",
            id="a-delay-is-elapsed-time-across-spring-forward",
        ),
        pytest.param(
            Snooze(tomorrow=True),
            utc("2027-03-13T16:00"),
            NEW_YORK,
            time(7, 0),
            TimeWindow.parse("22:00-07:30"),
            "2027-03-14T07:30-04:00",
            id="quiet-hours-end-on-the-spring-forward-day",
        ),
        pytest.param(
            Snooze(delay=timedelta(hours=1)),
            utc("2027-11-07T05:15"),  # 01:15 EDT; an hour later it is 01:15 again, in EST
            NEW_YORK,
            time(19, 0),
            TimeWindow.parse("00:00-01:45"),
            "2027-11-07T01:45-05:00",
            id="quiet-hours-in-the-repeated-fall-back-hour-end-at-the-second-reading",
        ),
    ],
)
def test_a_snoozed_nudge_comes_back_when_promised(
    snooze: Snooze,
    now: datetime,
    zone: ZoneInfo,
    at_time: time,
    quiet: TimeWindow | None,
    expected_local: str,
) -> None:
    due = snooze_until(snooze, now, zone, at_time=at_time, quiet=quiet)
    assert due.tzinfo is not None
    assert due.utcoffset() == timedelta(0)
    assert due == datetime.fromisoformat(expected_local)
    assert due.astimezone(zone).isoformat(timespec="minutes") == expected_local


ZONES = [
    "America/New_York",
    "America/Los_Angeles",
    "America/Santiago",
    "America/Sao_Paulo",
    "Europe/Berlin",
    "Europe/London",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "Asia/Tokyo",
    "Pacific/Chatham",
    "Africa/Casablanca",
    "UTC",
]


def test_the_zones_of_the_property_are_real_iana_zones() -> None:
    import zoneinfo

    assert set(ZONES) <= zoneinfo.available_timezones()


@st.composite
def windows(draw: st.DrawFn) -> TimeWindow:
    start = draw(st.integers(0, 24 * 60 - 1))
    length = draw(st.integers(1, 23 * 60))
    end = (start + length) % (24 * 60)
    return TimeWindow(time(start // 60, start % 60), time(end // 60, end % 60))


@settings(max_examples=200, deadline=None)
@given(
    zone=st.sampled_from(ZONES).map(ZoneInfo),
    now=st.datetimes(
        min_value=datetime(2024, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
    ),
    delay=st.timedeltas(min_value=timedelta(minutes=5), max_value=timedelta(days=7)),
    quiet=windows(),
)
def test_a_delayed_nudge_is_never_early_and_never_inside_quiet_hours(
    zone: ZoneInfo, now: datetime, delay: timedelta, quiet: TimeWindow
) -> None:
    due = snooze_until(Snooze(delay=delay), now, zone, at_time=time(19, 0), quiet=quiet)
    assert due >= now + delay
    assert not quiet.contains(due.astimezone(zone).time())
    # Moved no further than one quiet span (plus an hour a DST change may add).
    assert due - (now + delay) <= timedelta(minutes=quiet.minutes, hours=1)


@settings(max_examples=200, deadline=None)
@given(
    zone=st.sampled_from(ZONES).map(ZoneInfo),
    now=st.datetimes(
        min_value=datetime(2024, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
    ),
    snooze=st.one_of(
        st.just(Snooze(tomorrow=True)), st.integers(0, 6).map(lambda d: Snooze(weekday=d))
    ),
    at_time=st.times(),
    quiet=st.one_of(st.none(), windows()),
)
def test_a_nudge_for_a_later_day_lands_on_that_day_outside_quiet_hours(
    zone: ZoneInfo, now: datetime, snooze: Snooze, at_time: time, quiet: TimeWindow | None
) -> None:
    due = snooze_until(snooze, now, zone, at_time=at_time, quiet=quiet)
    today = now.astimezone(zone).date()
    assert due > now
    if quiet is not None:
        assert not quiet.contains(due.astimezone(zone).time())
    else:
        day = due.astimezone(zone).date()
        if snooze.tomorrow:
            assert day == today + timedelta(days=1)
        else:
            assert 1 <= (day - today).days <= 7
            assert day.weekday() == snooze.weekday
        assert due == resolve(datetime.combine(day, at_time), zone)


# ----------------------------------------------------------------------------- answers


@pytest.mark.parametrize(
    ("kind", "weekly", "current", "expected"),
    [
        ("date_night", True, 5, "That's 5 weeks in a row!"),
        ("date_night", False, 5, "That's 5 date nights in a row!"),
        ("date_night", False, 1, "That's 1 date night: your streak has begun."),
        ("check_in", False, 3, "That's 3 check-ins in a row!"),
        ("check_in", True, 1, "That's 1 week: your streak has begun."),
        ("appreciation", False, 2, "That's 2 appreciations in a row!"),
        ("something_new", False, 4, "That's 4 in a row!"),
        ("something_new", False, 1, "That's 1 in a row: your streak has begun."),
        ("date_night", True, 0, "The streak starts again with the next one."),
        ("check_in", False, -1, "The streak starts again with the next one."),
    ],
    ids=[
        "weekly-counts-weeks",
        "others-count-the-ritual",
        "one-is-singular",
        "check-ins",
        "one-week",
        "appreciations",
        "an-unknown-kind-counts-in-a-row",
        "one-of-an-unknown-kind",
        "zero-starts-again",
        "negative-starts-again",
    ],
)
def test_an_answer_ends_with_the_streak_in_words(
    kind: str, weekly: bool, current: int, expected: str
) -> None:
    assert in_a_row(kind, weekly, current) == expected


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2027, 12, 3, 19, 0), "Fri 3 Dec"),
        (datetime(2027, 1, 10, 8, 0), "Sun 10 Jan"),
        (datetime(2027, 3, 14, 3, 30, tzinfo=NEW_YORK), "Sun 14 Mar"),
    ],
    ids=["a-friday-in-december", "no-leading-zero", "an-aware-local-time"],
)
def test_a_day_is_written_short(moment: datetime, expected: str) -> None:
    assert day_text(moment) == expected
