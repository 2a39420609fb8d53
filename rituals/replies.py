"""The reply grammar: what a partner's text asks for. Pure; tested from a table.

Case does not matter, nor whitespace or punctuation around the message; full-width letters
and emoji variation selectors are folded first (NFKC), so full-width ``DONE!!`` and ``👍🏽`` read as
``done`` and ``👍``.

======================================  =================================================
``DONE``, ``YES``, ``Y``, ``DID IT``,   confirm; ``DONE 2`` picks the 2nd open occurrence
✅, 👍, ❤️ (and "Liked/Loved “…”")
``SKIP [n] [reason]``                   skip (a freeze keeps the streak, if one is left)
``SNOOZE [30m|2h|tomorrow|sat]``        send the nudge again later (default 1 hour)
``STREAK``, ``STATUS``                  the household's streaks
``HELP``, ``INFO``                      the commands, in one SMS
``STOP``, ``STOPALL``, ``UNSUBSCRIBE``,  no more texts (the whole message must be the word,
``CANCEL``, ``END``, ``QUIT``             as Twilio's own opt-out keywords)
``START``, ``UNSTOP``                   texts again
``PAUSE [2w]``, ``RESUME``              vacation for the household (default 1 week)
``TELL <text>``                         pass an appreciation on to the other partner (the
                                        text as written, at most 320 characters)
``4``, ``4/5``, ``PULSE 4``,            rate a pulse check-in 1-5 (counts as DONE); a note
``4 - tired but good``                  after a dash or colon is allowed
``PULSE``                               the partner's own recent ratings
anything else                           "didn't catch that" and the help text
======================================  =================================================
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from rituals.clock import TimeWindow, resolve

__all__ = [
    "HELP",
    "MAX_PAUSE",
    "MAX_SNOOZE",
    "MAX_TELL",
    "RATING_RANGE",
    "Command",
    "Reply",
    "Snooze",
    "parse",
    "snooze_until",
]

Command = Literal[
    "confirm",
    "skip",
    "snooze",
    "streak",
    "help",
    "stop",
    "start",
    "pause",
    "resume",
    "tell",
    "rate",
    "pulse",
    "unknown",
]

# One SMS: GSM-7 and at most 160 characters (a test holds it to that).
HELP = (
    "Tend: DONE, SKIP, SNOOZE 2h, 1-5 rates a check-in, PULSE your trend, "
    "TELL <words> thanks your partner, STREAK, PAUSE 2w, RESUME, STOP ends texts."
)

DEFAULT_SNOOZE = timedelta(hours=1)
MIN_SNOOZE = timedelta(minutes=5)
MAX_SNOOZE = timedelta(days=7)
DEFAULT_PAUSE = timedelta(weeks=1)
MAX_PAUSE = timedelta(days=90)
MAX_TELL = 320  # characters of a TELL's text, as written


@dataclass(frozen=True, slots=True)
class Snooze:
    """When to hear again: after a while, tomorrow, or on a weekday (0 = Monday)."""

    delay: timedelta | None = None
    tomorrow: bool = False
    weekday: int | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    command: Command
    pick: int | None = None  # DONE 2, SKIP 2: the 2nd of the open occurrences listed
    reason: str | None = None  # SKIP's reason, as written
    snooze: Snooze | None = None
    pause: timedelta | None = None
    # A known command with an argument it cannot use: what to say instead of doing it.
    problem: str | None = None
    # YES is also one of Twilio's opt-in keywords: a partner who had opted out is back in.
    opts_in: bool = False
    # TELL's text, as written (trimmed): what the other partner gets.
    text: str | None = None
    # A pulse rating, 1-5: the partner's own.
    rating: int | None = None

    def __repr__(self) -> str:  # a TELL's text and a rating are the partner's: never shown
        shown: dict[str, object] = {
            name: getattr(self, name) for name in self.__slots__ if getattr(self, name) is not None
        }
        if self.text is not None:
            shown["text"] = _Hidden(f"<{len(self.text)} characters>")
        if self.rating is not None:
            shown["rating"] = _Hidden("<hidden>")
        return "Reply(" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"


@dataclass(frozen=True, slots=True)
class _Hidden:
    shown: str

    def __repr__(self) -> str:
        return self.shown


_CONFIRM_WORDS = {
    "done",
    "yes",
    "y",
    "yep",
    "yup",
    "yeah",
    "yay",
    "did it",
    "we did it",
    "done it",
    "finished",
    "complete",
    "completed",
}
# Confirm words that confirm only alone (or with a pick): "Complete waste of time".
_WHOLE_ONLY = {"complete", "completed", "finished", "yay"}
# After a confirm word, any of these makes the message something else.
_DOUBT = {
    *("no", "nope", "nah", "not", "yet", "never", "later", "tomorrow"),
    *("didn't", "didnt", "don't", "dont", "can't", "cant", "won't", "wont"),
    *("haven't", "havent", "hasn't", "hasnt", "couldn't", "couldnt", "wasn't", "wasnt"),
    *("skip", "skipped", "skipping", "snooze", "stop", "cancel", "cancelled", "pause"),
}
_CONFIRM_EMOJI = frozenset("✅✔☑👍❤♥💕💖💗💓💞💘🧡💛💚💙💜🤍🤎🖤🥰😍🎉🙌👌💯")
_OPT_OUT = {"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "optout", "revoke"}
_OPT_IN = {"start", "unstop"}
_SKIP = {"skip", "pass"}
_SNOOZE = {"snooze", "later", "remind me later"}
_STREAK = {"streak", "streaks", "status", "stats", "score"}
_HELP = {"help", "info", "commands", "menu", "?"}
_PAUSE = {"pause", "vacation", "holiday"}
_RESUME = {"resume", "unpause", "back"}

_WEEKDAYS = {
    **dict.fromkeys(("mon", "monday"), 0),
    **dict.fromkeys(("tue", "tues", "tuesday"), 1),
    **dict.fromkeys(("wed", "weds", "wednesday"), 2),
    **dict.fromkeys(("thu", "thur", "thurs", "thursday"), 3),
    **dict.fromkeys(("fri", "friday"), 4),
    **dict.fromkeys(("sat", "saturday"), 5),
    **dict.fromkeys(("sun", "sunday"), 6),
}
_TOMORROW = {"tomorrow", "tmrw", "tmr", "tomorow", "tommorow", "tommorrow"}
_UNITS = {
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), timedelta(minutes=1)),
    **dict.fromkeys(("h", "hr", "hrs", "hour", "hours"), timedelta(hours=1)),
    **dict.fromkeys(("d", "day", "days"), timedelta(days=1)),
    **dict.fromkeys(("w", "wk", "wks", "week", "weeks"), timedelta(weeks=1)),
}
_AMOUNT = re.compile(r"(\d{1,4}|an|a)\s*([a-z]+)")
_PICK = re.compile(r"^#?(\d{1,2})(?:\s+(.*))?$")
# iMessage reactions arrive as text: Liked “Date night on Fri…”
_TAPBACK = re.compile(r"^(?:liked|loved|emphasized|reacted (?:👍|❤) to)\s+[\u201c\u2018\"']")

# Emoji presentation selectors and skin tones: 👍🏽 is 👍, ❤️ is ❤.
_EMOJI_NOISE = dict.fromkeys([0xFE0E, 0xFE0F, *range(0x1F3FB, 0x1F400)])


def normalize(text: str) -> str:
    """Case, width and whitespace folded; punctuation around the message dropped."""
    text = unicodedata.normalize("NFKC", text).translate(_EMOJI_NOISE)
    text = " ".join(text.split()).casefold()
    return _trim(text)


def _trim(text: str) -> str:
    edge = ("P", "Z", "C")
    start, end = 0, len(text)
    while start < end and (
        unicodedata.category(text[start])[0] in edge or text[start] in "+=<>|~^`"
    ):
        start += 1
    while end > start and (
        unicodedata.category(text[end - 1])[0] in edge or text[end - 1] in "+=<>|~^`"
    ):
        end -= 1
    return text[start:end]


# After TELL, before its text: "TELL thanks", "Tell: you were great", "tell - love you".
_TELL_GAP = " \t\r\n:,.-\u2013\u2014"
TELL_EMPTY = "TELL needs your words after it, e.g. TELL Thank you for dinner. Nothing was sent."


def tell_too_long(length: int) -> str:
    return (
        f"That TELL is {length} characters; it can be at most {MAX_TELL}. "
        "Nothing was sent: please send a shorter one."
    )


RATING_RANGE = "A rating is a whole number from 1 to 5, e.g. reply 4. Nothing was recorded."
_PULSE = "pulse"
# A rating: "4", "4/5", "4 out of 5", then perhaps a note after a dash, colon or comma.
_RATING = re.compile(r"^(\d{1,3})(?:\s*/\s*(\d{1,3})|\s+out\s+of\s+(\d{1,3}))?(.*)$")
_NOTE = re.compile(r"^\s*[-\u2013\u2014:,;!(]|^\.(?:\s|$)")


def _rated(words: str) -> Reply | None:
    """A rating (``4``, ``4/5``, ``PULSE 4``, ``4 - tired but good``), ``PULSE`` alone, or
    a rating out of range (answered, never recorded); None for anything else, so a number
    inside other words ("2 more days", "1 OR 1=1") keeps its meaning."""
    pulse = words == _PULSE or (words.startswith(_PULSE) and not words[len(_PULSE)].isalnum())
    if pulse:
        words = _trim(words[len(_PULSE) :])
        if not words:
            return Reply("pulse")
    match = _RATING.match(words)
    if match is None:
        return Reply("rate", problem=RATING_RANGE) if pulse else None
    value, scale, spelled, tail = match.groups()
    if tail and re.match(r"^[.,]\d", tail):  # 3.5
        return Reply("rate", problem=RATING_RANGE)
    if tail and not pulse and not _NOTE.match(tail):
        return None  # "2h", "2 more days": not a rating
    if tail and pulse and not (tail[0].isspace() or _NOTE.match(tail)):
        return Reply("rate", problem=RATING_RANGE)
    scale = scale or spelled
    number = int(value)
    if (scale is not None and int(scale) != 5) or not 1 <= number <= 5:
        return Reply("rate", problem=RATING_RANGE)
    return Reply("rate", rating=number)


def parse(text: str) -> Reply:
    """What `text` asks for; never raises."""
    told = _told(text)
    if told is not None:
        return _tell(told)
    if _TAPBACK.match(" ".join(text.split()).casefold()):
        return Reply("confirm")
    raw = " ".join(text.split())
    words = normalize(text)
    if not words:
        return Reply("help") if "?" in raw else Reply("unknown")
    # Twilio's keywords count only as the whole message; so do ours.
    if words in _OPT_OUT or words in ("stop all", "opt out"):
        return Reply("stop")
    if words in _OPT_IN:
        return Reply("start")
    if words in _HELP:
        return Reply("help")
    if words in _STREAK:
        return Reply("streak")
    if words in _RESUME:
        return Reply("resume")
    rated = _rated(words)
    if rated is not None:
        return rated
    if all(c in _CONFIRM_EMOJI or c.isspace() for c in words):
        return Reply("confirm")
    for phrase in sorted(_CONFIRM_WORDS, key=len, reverse=True):
        rest = _after(words, phrase)
        if rest is None:
            continue
        short = len(phrase) == 1 or phrase in _WHOLE_ONLY
        if rest and not _PICK.match(rest) and (short or _doubtful(words[len(phrase) :])):
            break  # "Done? Not yet", "yeah no", "Yes, skip this one": not a DONE
        return _confirm(rest, opts_in=words == "yes")
    head, _, rest = words.partition(" ")
    head = _trim(head)
    rest = _trim(rest)
    if head in _SKIP:
        return _skip(rest, _original_rest(raw))
    if head in _SNOOZE or words.startswith("remind me later"):
        if words.startswith("remind me later"):
            rest = _trim(words[len("remind me later") :])
        return _snoozed(rest)
    if head in _PAUSE:
        return _paused(rest)
    if head and head[0] in _CONFIRM_EMOJI and all(c in _CONFIRM_EMOJI for c in head):
        return Reply("confirm")
    return Reply("unknown")


def _told(text: str) -> str | None:
    """The text after a leading TELL (any case, full width too), as written; None when the
    message does not start with the word TELL."""
    start = len(text) - len(text.lstrip())
    head, rest = text[start : start + 4], text[start + 4 :]
    if unicodedata.normalize("NFKC", head).casefold() != "tell":
        return None
    if rest and not (rest[0] in _TELL_GAP or rest[0].isspace()):
        return None  # "Telling you: done", "tells"
    return rest.lstrip(_TELL_GAP).strip()


def _tell(text: str) -> Reply:
    if not text:
        return Reply("tell", problem=TELL_EMPTY)
    if len(text) > MAX_TELL:
        return Reply("tell", problem=tell_too_long(len(text)))
    return Reply("tell", text=text)


def _doubtful(tail: str) -> bool:
    """What follows a confirm word asks or denies rather than confirms."""
    return tail.lstrip().startswith("?") or any(
        word in _DOUBT for word in re.findall(r"[a-z']+", tail.replace("\u2019", "'"))
    )


def _after(words: str, phrase: str) -> str | None:
    """The rest of `words` when it starts with the whole words of `phrase`, else None."""
    if words == phrase:
        return ""
    if words.startswith(phrase) and not words[len(phrase)].isalnum():
        return _trim(words[len(phrase) :])
    if words.startswith(phrase) and words[len(phrase) :].isdigit():  # DONE2
        return words[len(phrase) :]
    return None


def _confirm(rest: str, *, opts_in: bool) -> Reply:
    match = _PICK.match(rest)
    if match:
        return Reply("confirm", pick=int(match.group(1)), opts_in=opts_in)
    # "Done, it was lovely ❤️": the rest is a note, kept with the raw text.
    return Reply("confirm", opts_in=opts_in)


def _original_rest(raw: str) -> str:
    """The reason as the partner wrote it (case kept), after the first word."""
    _, _, rest = raw.partition(" ")
    return rest.strip()


def _skip(rest: str, original: str) -> Reply:
    match = _PICK.match(rest)
    pick = None
    if match:
        pick = int(match.group(1))
        rest = match.group(2) or ""
        _, _, original = original.partition(" ")
    reason = original.strip(" \t-:,.") if rest else ""
    return Reply("skip", pick=pick, reason=reason[:200] or None)


def _duration(text: str) -> timedelta | None:
    """``30m``, ``2 hours``, ``1h30m``, ``an hour``, ``2w``: None when not that."""
    found = list(_AMOUNT.finditer(text))
    if not found or "".join(m.group(0) for m in found).replace(" ", "") != text.replace(" ", ""):
        return None
    total = timedelta()
    for match in found:
        amount, unit = match.groups()
        if unit not in _UNITS:
            return None
        total += _UNITS[unit] * (1 if amount in ("a", "an") else int(amount))
        if total > MAX_PAUSE:  # far past any limit (and never past timedelta's)
            return total
    return total


def _snoozed(rest: str) -> Reply:
    problem = "SNOOZE takes a time like 30m, 2h, tomorrow or sat, up to 7 days."
    if not rest:
        return Reply("snooze", snooze=Snooze(delay=DEFAULT_SNOOZE))
    rest = rest.removeprefix("for ").removeprefix("until ").removeprefix("till ")
    rest = rest.removeprefix("on ").strip()
    if rest in _TOMORROW:
        return Reply("snooze", snooze=Snooze(tomorrow=True))
    if rest in _WEEKDAYS:
        return Reply("snooze", snooze=Snooze(weekday=_WEEKDAYS[rest]))
    delay = _duration(rest)
    if delay is None or not MIN_SNOOZE <= delay <= MAX_SNOOZE:
        return Reply("snooze", problem=problem)
    return Reply("snooze", snooze=Snooze(delay=delay))


def _paused(rest: str) -> Reply:
    if not rest:
        return Reply("pause", pause=DEFAULT_PAUSE)
    rest = rest.removeprefix("for ").strip()
    length = _duration(rest)
    if length is None or not timedelta(hours=1) <= length <= MAX_PAUSE:
        return Reply("pause", problem="PAUSE takes a length like 2w or 10d, up to 90 days.")
    return Reply("pause", pause=length)


def snooze_until(
    snooze: Snooze,
    now: datetime,
    zone: ZoneInfo,
    *,
    at_time: time,
    quiet: TimeWindow | None,
) -> datetime:
    """When a snoozed nudge goes out (UTC): after the delay, or tomorrow / on the weekday at
    `at_time` (the partner's local time of the message snoozed); never inside quiet hours."""
    local_today = now.astimezone(zone).date()
    if snooze.delay is not None:
        due = now + snooze.delay
    else:
        if snooze.tomorrow:
            day = local_today + timedelta(days=1)
        else:
            assert snooze.weekday is not None
            day = next_weekday(local_today, snooze.weekday)
        due = resolve(datetime.combine(day, at_time), zone)
    return _after_quiet(due, quiet, zone)


def _after_quiet(due: datetime, quiet: TimeWindow | None, zone: ZoneInfo) -> datetime:
    # The planner's rule (rituals.planning.after_quiet_hours), imported late: planning
    # imports the decks and templates, which a parser does not need.
    from rituals.planning import after_quiet_hours

    return after_quiet_hours(due.astimezone(UTC), quiet, zone)


def next_weekday(day: date, weekday: int) -> date:
    """The first `weekday` strictly after `day`."""
    return day + timedelta(days=(weekday - day.weekday()) % 7 or 7)


# ---------------------------------------------------------------------------- answers

_NOUNS = {
    "date_night": ("date night", "date nights"),
    "check_in": ("check-in", "check-ins"),
    "appreciation": ("appreciation", "appreciations"),
}


def day_text(moment: datetime) -> str:
    """``Fri 4 Dec``: a local date as answers write it."""
    return f"{moment:%a} {moment.day} {moment:%b}"


def in_a_row(kind: str, weekly: bool, current: int) -> str:
    """``That's 5 date nights in a row!``: the streak, as an answer ends."""
    singular, plural = ("week", "weeks") if weekly else _NOUNS.get(kind, ("", ""))
    if current <= 0:
        return "The streak starts again with the next one."
    if current == 1:
        return (
            f"That's 1 {singular}: your streak has begun."
            if singular
            else ("That's 1 in a row: your streak has begun.")
        )
    return f"That's {current} {plural} in a row!" if plural else f"That's {current} in a row!"
