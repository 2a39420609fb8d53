"""Signed links: confirm an occurrence, unsubscribe from e-mail, a household's calendar.

Tokens are signed with ``TEND_SECRET_KEY`` by itsdangerous (HMAC-SHA1 over a compact JSON
payload and a timestamp), each kind under its own salt so a token of one kind is never
accepted as another. A confirm token expires after :data:`CONFIRM_MAX_AGE`; an unsubscribe
token does not (RFC 8058 expects the List-Unsubscribe URL to keep working), but names only
one partner and one channel. A calendar token does not expire either: a calendar app keeps
polling the URL it was given for years. It names one household (the feed of what both
partners share) or one household and one of its partners (that feed and the partner's own
nudges); the partner is inside the signed payload, so one partner's URL cannot be edited
into the other's. It only lets planned occurrences be read; changing ``TEND_SECRET_KEY``
revokes every calendar URL at once.

A page token (the couple's page, ``/h/{token}``) does not expire either; it names one
household (the household's page) or one household and one partner (that partner's page,
with their buttons), and the page's generation: ``tend page-url --rotate`` raises the
generation in the ledger, and every token of an older one stops working.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from itsdangerous import BadData, SignatureExpired, URLSafeTimedSerializer

from config.model import ID_MAX_LENGTH, ID_PATTERN

if TYPE_CHECKING:
    from config.settings import Settings

__all__ = [
    "CONFIRM_MAX_AGE",
    "BadLink",
    "CalendarLink",
    "ConfirmLink",
    "Links",
    "PageLink",
    "UnsubscribeLink",
]

CONFIRM_MAX_AGE = timedelta(days=7)

# A payload signed with the right key is still read strictly: only what Links writes is a
# link. Ids are the ritual file's ids (anything else names nothing and could reach the
# database as text it refuses, a NUL say), an occurrence a positive number a BIGINT holds
# (a larger one overflows SQLite's driver and PostgreSQL's column alike).
_ID = re.compile(ID_PATTERN)
_OCCURRENCE_LIMIT = 2**63
_GENERATION_LIMIT = 2**31  # the column is an INTEGER
_Field = Literal["id", "occurrence", "generation"]


class BadLink(ValueError):
    """A token that is forged, damaged, of another kind, or expired (``expired`` says)."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


@dataclass(frozen=True, slots=True)
class ConfirmLink:
    household: str
    occurrence: int
    partner: str


@dataclass(frozen=True, slots=True)
class CalendarLink:
    """Whose feed a calendar token is: the household's shared one (``partner`` None), or
    one partner's."""

    household: str
    partner: str | None = None


@dataclass(frozen=True, slots=True)
class PageLink:
    """Whose page a page token is: the household's (``partner`` None) or one partner's,
    and the page's generation it was made in."""

    household: str
    partner: str | None
    generation: int


@dataclass(frozen=True, slots=True)
class UnsubscribeLink:
    household: str
    partner: str
    channel: str


class Links:
    """Makes and reads the signed URLs under ``TEND_PUBLIC_URL``."""

    def __init__(self, public_url: str, secret: str) -> None:
        if not secret:
            raise ValueError("a secret key is needed to sign links")
        self.public_url = public_url.rstrip("/")
        self._confirm = URLSafeTimedSerializer(secret, salt="tend.confirm")
        self._unsubscribe = URLSafeTimedSerializer(secret, salt="tend.unsubscribe")
        self._calendar = URLSafeTimedSerializer(secret, salt="tend.calendar")
        self._page = URLSafeTimedSerializer(secret, salt="tend.page")
        self._form_key = hashlib.sha256(b"tend.page.form\0" + secret.encode()).digest()

    @classmethod
    def from_settings(cls, settings: Settings) -> Links | None:
        """The links of this deployment, or None without both a public URL and a key."""
        if settings.public_url is None or settings.secret_key is None:
            return None
        return cls(str(settings.public_url), settings.secret_key.get_secret_value())

    def confirm_url(self, household: str, occurrence: int, partner: str) -> str:
        token = self._confirm.dumps([household, occurrence, partner])
        return f"{self.public_url}/confirm/{token}"

    def unsubscribe_url(self, household: str, partner: str, channel: str = "email") -> str:
        token = self._unsubscribe.dumps([household, partner, channel])
        return f"{self.public_url}/unsubscribe/{token}"

    def calendar_url(self, household: str, partner: str | None = None) -> str:
        """The household's private iCalendar feed (``GET /calendar/{token}.ics``): what
        both share, or with `partner` that and the partner's own."""
        token = self._calendar.dumps([household] if partner is None else [household, partner])
        return f"{self.public_url}/calendar/{token}.ics"

    def page_token(self, household: str, partner: str | None, generation: int) -> str:
        """The token of a couple's page: the household's, or `partner`'s."""
        ids: list[str | int] = [household] if partner is None else [household, partner]
        return self._page.dumps([*ids, generation])

    def page_url(self, household: str, partner: str | None, generation: int) -> str:
        """The couple's private page (``GET /h/{token}``)."""
        return f"{self.public_url}/h/{self.page_token(household, partner, generation)}"

    def read_page(self, token: str) -> PageLink:
        """Whose page a page token is; BadLink if forged, damaged or of another kind."""
        found = self._load(
            self._page, token, None, ("id", "generation"), ("id", "id", "generation")
        )
        if len(found) == 2:
            return PageLink(found[0], None, found[1])
        return PageLink(found[0], found[1], found[2])

    def form_token(self, page_token: str, occurrence: int, action: str) -> str:
        """What a page's button carries: an HMAC of the page's token, the occurrence and
        the action, which a form posted from anywhere else cannot know."""
        message = f"{page_token}\0{occurrence}\0{action}".encode()
        return hmac.new(self._form_key, message, hashlib.sha256).hexdigest()

    def check_form(self, page_token: str, occurrence: int, action: str, given: str) -> bool:
        """Whether `given` is the form token of that button (in constant time)."""
        expected = self.form_token(page_token, occurrence, action).encode()
        return hmac.compare_digest(expected, given.encode("utf-8", "replace"))

    def read_confirm(self, token: str, *, max_age: timedelta = CONFIRM_MAX_AGE) -> ConfirmLink:
        household, occurrence, partner = self._load(
            self._confirm, token, max_age, ("id", "occurrence", "id")
        )
        return ConfirmLink(household, occurrence, partner)

    def read_unsubscribe(self, token: str) -> UnsubscribeLink:
        household, partner, channel = self._load(self._unsubscribe, token, None, ("id",) * 3)
        return UnsubscribeLink(household, partner, channel)

    def read_calendar(self, token: str) -> CalendarLink:
        """Whose feed a calendar token (without the ``.ics``) is; BadLink if forged."""
        ids = self._load(self._calendar, token, None, ("id",), ("id", "id"))
        return CalendarLink(*ids)

    @staticmethod
    def _load(
        serializer: URLSafeTimedSerializer,
        token: str,
        max_age: timedelta | None,
        *shapes: tuple[_Field, ...],
    ) -> list[Any]:
        """The payload of `token`, if it is signed and has one of `shapes`."""
        try:
            seconds = None if max_age is None else int(max_age.total_seconds())
            payload = serializer.loads(token, max_age=seconds)
        except SignatureExpired as exc:
            raise BadLink("this link has expired", expired=True) from exc
        except (BadData, UnicodeError, ValueError) as exc:
            # BadData, not only BadSignature: a rightly signed payload that is not JSON (or
            # not zlib when it says so) is a BadPayload, and as bad a link as a forged one.
            raise BadLink("this link is not valid") from exc
        if not isinstance(payload, list) or not any(
            len(payload) == len(shape)
            and all(_fits(v, f) for v, f in zip(payload, shape, strict=True))
            for shape in shapes
        ):
            raise BadLink("this link is not valid")
        return payload


def _fits(value: object, field: _Field) -> bool:
    if field == "generation":
        return type(value) is int and 0 <= value < _GENERATION_LIMIT
    if field == "occurrence":
        # type() and not isinstance(): JSON's true is a bool, and a bool is an int.
        return type(value) is int and 0 < value < _OCCURRENCE_LIMIT
    return type(value) is str and len(value) <= ID_MAX_LENGTH and _ID.fullmatch(value) is not None
