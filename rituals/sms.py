"""SMS length: GSM-7 or UCS-2, and how many segments a body costs."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MAX_LENGTH", "Segments", "count_segments", "is_gsm7", "to_gsm7"]

MAX_LENGTH = 1600  # characters in one message: Twilio refuses longer bodies (error 21617)

# GSM 03.38 basic character set and its extension table (each extension char costs two).
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = frozenset("^{}\\[~]|€\f")
_GSM_ALL = _GSM_BASIC | _GSM_EXTENDED


# Typography that forces UCS-2 (70 characters a segment instead of 160) but has a GSM-7
# equivalent a reader would not miss. Twilio's "smart encoding" does the same, but only for
# messaging services that switch it on; doing it here also makes segment counts right.
_GSM_EQUIVALENTS = str.maketrans(
    {
        **dict.fromkeys("\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007", " "),
        **dict.fromkeys("\u2008\u2009\u200a\u202f\u205f\u3000\t", " "),
        **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u02bc\u2039\u203a", "'"),
        **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u00ab\u00bb", '"'),
        **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"),
        **dict.fromkeys("\u200b\u200c\u200d\u2060\ufeff\u00ad", ""),
        "\u2026": "...",
        "\u2022": "*",
        "\u00b7": "*",
    }
)


def is_gsm7(body: str) -> bool:
    return _GSM_ALL.issuperset(body)


def to_gsm7(body: str) -> str:
    """`body` with typographic characters replaced by GSM-7 equivalents, when that makes the
    whole body GSM-7; otherwise `body` unchanged (an emoji keeps it UCS-2 anyway, and then
    the typography costs nothing more)."""
    if is_gsm7(body):
        return body
    plain = body.translate(_GSM_EQUIVALENTS)
    return plain if is_gsm7(plain) else body


@dataclass(frozen=True, slots=True)
class Segments:
    encoding: str  # "GSM-7" or "UCS-2"
    units: int  # septets for GSM-7, UTF-16 code units for UCS-2
    count: int


def count_segments(body: str) -> Segments:
    """Segments one SMS body needs: 160/153 septets in GSM-7, else 70/67 UTF-16 units."""
    if is_gsm7(body):
        units = len(body) + sum(body.count(c) for c in _GSM_EXTENDED)
        single, multi, encoding = 160, 153, "GSM-7"
    else:
        units = len(body.encode("utf-16-le")) // 2
        single, multi, encoding = 70, 67, "UCS-2"
    if units <= single:
        return Segments(encoding, units, 1 if units else 0)
    return Segments(encoding, units, -(-units // multi))
