"""The ritual file's schema: pydantic models, one per table.

Field validators check what one value can tell (a phone number, a zone, a schedule); what
needs the whole file (a deck a ritual names, a partner in ``to``) is checked in
:mod:`config.checks`, so every problem is reported with its own path and line.
"""

from __future__ import annotations

import unicodedata
from datetime import timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import phonenumbers
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    PlainSerializer,
    PlainValidator,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from rituals.clock import TimeWindow, format_duration, get_zone, parse_duration
from rituals.pulse import DEFAULT_SUPPORT_MESSAGE
from rituals.schedule import Schedule, ScheduleError, parse_schedule

__all__ = [
    "ID_MAX_LENGTH",
    "ID_PATTERN",
    "Channel",
    "Deck",
    "Household",
    "Kind",
    "Partner",
    "Ritual",
    "RitualFile",
    "mask_address",
]

Channel = Literal["sms", "email", "console"]
Kind = Literal["date_night", "check_in", "appreciation", "custom"]

# What an id of the file may be; signed links hold such ids and are read by the same rule.
ID_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
ID_MAX_LENGTH = 64

Id = Annotated[
    str,
    StringConstraints(pattern=ID_PATTERN, max_length=ID_MAX_LENGTH),
    Field(description="Lower-case letters, digits, '-' and '_'; unique in its list."),
]


_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")  # text spoofing


def _one_line(text: str) -> str:
    """Names and titles go into e-mail headers and SMS: one line of printable text, and no
    RFC 2047 encoded word ("=?utf-8?q?...?="), which an older Python would decode into header
    lines of its own (CVE-2024-6923)."""
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") or c in _BIDI for c in text):
        raise ValueError("must be one line of printable text (no control characters)")
    if "=?" in text:
        raise ValueError("must not contain '=?' (it reads as an encoded e-mail header word)")
    return text


OneLine = Annotated[str, AfterValidator(_one_line)]


def _zone(name: str) -> str:
    get_zone(name)
    return name


ZoneName = Annotated[
    str, AfterValidator(_zone), Field(description="An IANA time zone, e.g. 'Europe/Berlin'.")
]


def _phone(value: str) -> str:
    value = value.strip()
    if not value.startswith("+"):
        raise ValueError("use international E.164 form with a '+', like '+15551230001'")
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"not a phone number: {exc}") from exc
    if number.extension:
        # E.164 has no extensions, and a text cannot dial one: it would go to the main line.
        raise ValueError(
            f"has an extension ({number.extension}); a text cannot reach an extension: "
            "give the partner's own mobile number"
        )
    # "possible" (right length for its country) rather than "valid": the fictional 555
    # numbers of examples are allowed; Twilio refuses unassigned numbers at send time.
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason == phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY:
        raise ValueError("too short: include the area code")
    if reason != phonenumbers.ValidationResult.IS_POSSIBLE:
        raise ValueError("not a possible phone number for its country code (check the digits)")
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


Phone = Annotated[
    str,
    AfterValidator(_phone),
    Field(description="E.164, like '+15551230001'.", examples=["+15551230001"]),
]


def _duration(value: Any) -> Any:
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, timedelta):
        return value
    # A bare number would be read as seconds: `grace = 30` must not mean half a minute.
    raise ValueError("a duration is a string like '2h', '3d', '45m' or '1h30m'")


Duration = Annotated[
    timedelta,
    BeforeValidator(_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {"type": "string", "pattern": r"^(\d+\s*[wdhm]\s*)+$", "examples": ["2h", "3d"]}
    ),
]


def _window(value: Any) -> TimeWindow:
    if isinstance(value, TimeWindow):
        return value
    if not isinstance(value, str):
        raise ValueError("a span of local time like '22:00-08:00'")
    return TimeWindow.parse(value)


Window = Annotated[
    TimeWindow,
    PlainValidator(_window),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^\d{1,2}:\d{2}-\d{1,2}:\d{2}$"}),
]


def _schedule(value: Any) -> Schedule:
    if isinstance(value, Schedule):
        return value
    if not isinstance(value, str | dict):
        raise ValueError("a schedule is a phrase, 'cron: ...', 'rrule: ...' or a random window")
    try:
        return parse_schedule(value)
    except ScheduleError as exc:
        raise ValueError(str(exc)) from exc
    except Exception as exc:  # a rule no check foresaw must still be a FILE:LINE error
        raise ValueError(f"cannot be read: {type(exc).__name__}: {exc}") from exc


ScheduleField = Annotated[
    Schedule,
    PlainValidator(_schedule),
    PlainSerializer(lambda s: s.source, return_type=str),
    WithJsonSchema(
        {
            "oneOf": [
                {
                    "type": "string",
                    "description": "A phrase, 'cron: <5 fields>' or 'rrule: <RRULE>'.",
                    "examples": [
                        "daily at 19:00",
                        "weekly on sun at 19:30",
                        "every 2 weeks on fri at 19:00",
                        "monthly on the first sat at 10:00",
                        "monthly on day 1 at 09:00",
                        "cron: 30 19 * * sun",
                        "rrule: FREQ=WEEKLY;INTERVAL=2;BYDAY=FR;BYHOUR=19;BYMINUTE=0",
                    ],
                },
                {
                    "type": "object",
                    "description": "Random moments: N times per day, week or month.",
                    "properties": {
                        "times": {"type": "integer", "minimum": 1},
                        "per": {"enum": ["day", "week", "month"], "default": "week"},
                        "between": {"type": "string", "pattern": r"^\d{1,2}:\d{2}-\d{1,2}:\d{2}$"},
                        "days": {
                            "type": "array",
                            "items": {
                                "type": "string",
                                "examples": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                            },
                        },
                    },
                    "required": ["times", "between"],
                    "additionalProperties": False,
                },
            ]
        }
    ),
]


def _deck(value: Any) -> str | list[str]:
    """A deck's name, or a list of them (topics the ritual rotates), each once."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise ValueError("a deck's name, or a list of deck names like ['finances', 'feelings']")
    if not value:
        raise ValueError("an empty list: name at least one deck, or leave 'deck' out")
    seen: set[str] = set()
    for k, name in enumerate(value):
        if not isinstance(name, str):
            raise ValueError(f"item {k} is not a deck's name: write each name in quotes")
        if name in seen:
            raise ValueError(f"{name!r} is in the list twice: name each deck once")
        seen.add(name)
    return list(value)


DeckField = Annotated[
    str | list[str],
    PlainValidator(_deck),
    WithJsonSchema(
        {
            "oneOf": [
                {"type": "string", "description": "A deck's name.", "examples": ["date-ideas"]},
                {
                    "type": "array",
                    "description": "Decks rotated occurrence by occurrence (week by week for "
                    "a weekly ritual), each used up before its items repeat.",
                    "items": {"type": "string"},
                    "minItems": 1,
                    "uniqueItems": True,
                    "examples": [["finances", "family-life", "relationship-goals"]],
                },
            ]
        }
    ),
]


def mask_address(value: str | None) -> str | None:
    """``+15551230001`` -> ``+1*******001``; ``alex@example.com`` -> ``a***@example.com``."""
    if value is None:
        return None
    if "@" in value:
        local, _, domain = value.partition("@")
        return f"{local[:1]}***@{domain}"
    if len(value) <= 5:
        return "*" * len(value)
    return value[:2] + "*" * (len(value) - 5) + value[-3:]


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Partner(_Table):
    id: Id
    name: Annotated[OneLine, StringConstraints(min_length=1, max_length=40, strip_whitespace=True)]
    phone: Phone | None = None
    email: EmailStr | None = None
    channels: list[Channel] = Field(
        default=[],
        description="In order of preference. Default: sms with a phone, else email, else console.",
    )
    quiet_hours: Window | None = Field(None, description="No messages then, e.g. '22:00-08:00'.")
    timezone: ZoneName | None = None

    @field_validator("channels")
    @classmethod
    def _usable_channels(cls, channels: list[Channel], info: ValidationInfo) -> list[Channel]:
        # A field validator, not a model one, so the error's path (and line) is `channels`.
        # A phone or email that failed its own validation is missing from `info.data`; it is
        # reported there, not again here.
        if len(set(channels)) != len(channels):
            raise ValueError("each channel once, in order of preference")
        for channel, address in (("sms", "phone"), ("email", "email")):
            if channel in channels and address in info.data and not info.data[address]:
                raise ValueError(f"has {channel!r} but the partner has no {address}")
        return channels

    @model_validator(mode="after")
    def _default_channel(self) -> Partner:
        if not self.channels:
            default: Channel = "sms" if self.phone else "email" if self.email else "console"
            object.__setattr__(self, "channels", [default])
        return self

    def __repr_args__(self) -> Any:
        for key, value in super().__repr_args__():
            yield key, mask_address(value) if key in ("phone", "email") else value


class Household(_Table):
    id: Id
    timezone: ZoneName | None = Field(None, description="Overrides the file's default zone.")
    partners: list[Partner] = Field(min_length=1)
    share_pulse: bool = Field(
        False,
        strict=True,
        description="Once both partners have rated a pulse check-in, each gets one line "
        "with both ratings. Off: a rating is only ever its partner's.",
    )
    streak_link: bool | None = Field(
        None,
        strict=True,
        description="The STREAK answer ends with the partner's page link (needs "
        "TEND_PUBLIC_URL). Default: the file's streak_link.",
    )

    def zones(self, default: str | None) -> tuple[ZoneInfo, dict[str, ZoneInfo]]:
        """The household's zone (its own, else `default`, else UTC) and each partner's.

        ``ValueError`` when `default` is not a zone (the file check reports it where written).
        """
        zone = get_zone(self.timezone or default or "UTC")
        return zone, {p.id: get_zone(p.timezone) if p.timezone else zone for p in self.partners}


DATE_NIGHT_PLAN_AHEAD = timedelta(days=3)


class Ritual(_Table):
    id: Id
    kind: Kind
    title: Annotated[OneLine, StringConstraints(max_length=80)] | None = Field(
        None, description="How messages name it; default from the id."
    )
    schedule: ScheduleField
    to: str = Field("both", description="both | each | <partner id>")
    planner: str | None = Field(
        None, description="Who plans: alternate | both | <partner id>. Date nights: alternate."
    )
    plan_ahead: Duration | None = Field(
        None, description="Nudge the planner this long before. Date nights: 3d."
    )
    deck: DeckField | None = Field(
        None,
        description="Deck of ideas, or a list of decks (topics) rotated occurrence by "
        "occurrence; default from the kind.",
    )
    message: str | None = Field(None, description="Jinja2 template of the message.")
    plan_ahead_message: str | None = None
    reminder_message: str | None = None
    remind_after: Duration | None = Field(None, description="One follow-up if unconfirmed.")
    grace: Duration = Field(
        timedelta(hours=2),
        description="Send at most this late.",
        json_schema_extra={"default": "2h"},
    )
    streak: Literal["either", "both"] = Field(
        "either", description="Kept when either partner confirms, or only when both do."
    )
    freezes_per_month: int = Field(
        1,
        ge=0,
        le=31,
        strict=True,  # `true` is not 1 freeze
        description="Skips a month that keep the streak (SKIP uses one).",
    )
    reply_window: Duration = Field(
        timedelta(days=3),
        description="How long after a message a reply (DONE, SKIP) still applies to it; "
        "an occurrence nobody confirmed in it is missed.",
        json_schema_extra={"default": "3d"},
    )
    households: list[str] | None = Field(None, description="Only these households.")
    pulse: bool | None = Field(
        None,
        strict=True,
        description="A check-in asks for a 1-5 rating ('Reply 1-5: how connected did you "
        "feel this week?'); a rating counts as DONE. Only for kind = 'check_in'; off unless "
        "set.",
    )
    support_message: Annotated[
        str, StringConstraints(min_length=1, max_length=320, strip_whitespace=True)
    ] = Field(
        DEFAULT_SUPPORT_MESSAGE,
        description="Sent once, with a pulse check-in, when a slip in the ratings has "
        "lasted 4 check-ins; not again within 8 weeks.",
    )

    @field_validator("pulse")
    @classmethod
    def _pulse_on_a_check_in(cls, pulse: bool | None, info: ValidationInfo) -> bool | None:
        # A field validator, so the error's path (and line) is `pulse`.
        kind = info.data.get("kind")
        if pulse and kind is not None and kind != "check_in":
            raise ValueError(
                f"a pulse is asked only by a check-in (kind = 'check_in'), not {kind!r}"
            )
        return pulse

    @property
    def asks_pulse(self) -> bool:
        """Whether its messages ask for a 1-5 rating (``pulse = true``; off unless set)."""
        return bool(self.pulse) and self.kind == "check_in"

    @model_validator(mode="after")
    def _date_night_defaults(self) -> Ritual:
        # A date night has a planner, and the planner hears about it in time to plan.
        if self.kind == "date_night" and self.to != "each":
            if self.planner is None:
                object.__setattr__(self, "planner", "alternate")
            if self.plan_ahead is None:
                object.__setattr__(self, "plan_ahead", DATE_NIGHT_PLAN_AHEAD)
        return self

    @property
    def display_name(self) -> str:
        return self.title or self.id.replace("-", " ").replace("_", " ")

    @property
    def decks(self) -> tuple[str, ...]:
        """The decks the ritual names, in its order (none: the kind's default, if any)."""
        if self.deck is None:
            return ()
        return (self.deck,) if isinstance(self.deck, str) else tuple(self.deck)


class Deck(_Table):
    description: str | None = None
    items: list[Annotated[str, StringConstraints(min_length=1, strip_whitespace=True)]] = Field(
        min_length=1
    )


class RitualFile(_Table):
    """The whole ritual file (tend.toml)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={"title": "Tend ritual file"},
    )

    timezone: ZoneName | None = Field(None, description="Default zone for households.")
    streak_link: bool = Field(
        False,
        strict=True,
        description="The STREAK answer ends with the partner's page link, when "
        "TEND_PUBLIC_URL is set. Off by default: in a text message a link costs a segment.",
    )
    households: list[Household] = Field(min_length=1)
    rituals: list[Ritual] = []
    decks: dict[str, Deck] = {}
