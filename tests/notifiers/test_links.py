"""Signed links: confirm (expires after 7 days) and unsubscribe (does not)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from notifiers.links import BadLink, Links

SECRET = "s3cret-for-tests-only"


def token_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


def test_a_confirm_link_reads_back_what_it_was_made_from() -> None:
    links = Links("https://tend.example.com/", SECRET)
    url = links.confirm_url("alex-sam", 42, "sam")
    assert url.startswith("https://tend.example.com/confirm/")
    found = links.read_confirm(token_of(url))
    assert (found.household, found.occurrence, found.partner) == ("alex-sam", 42, "sam")


def test_a_confirm_link_expires_after_seven_days() -> None:
    links = Links("https://tend.example.com", SECRET)
    start = datetime(2026, 11, 1, 12, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        token = token_of(links.confirm_url("h", 1, "p"))
    with time_machine.travel(start + timedelta(days=6, hours=23), tick=False):
        assert links.read_confirm(token).occurrence == 1
    with (
        time_machine.travel(start + timedelta(days=7, seconds=2), tick=False),
        pytest.raises(BadLink) as caught,
    ):
        links.read_confirm(token)
    assert caught.value.expired


def test_an_unsubscribe_link_keeps_working() -> None:
    links = Links("https://tend.example.com", SECRET)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        token = token_of(links.unsubscribe_url("h", "p"))
    with time_machine.travel(start + timedelta(days=400), tick=False):
        found = links.read_unsubscribe(token)
    assert (found.household, found.partner, found.channel) == ("h", "p", "email")


@pytest.mark.parametrize(
    "damage",
    [
        # a signature character changed (a middle one: the last one's low bits do not count)
        lambda t: t[:-10] + ("A" if t[-10] != "A" else "B") + t[-9:],
        lambda t: "x" + t,  # payload changed
        lambda t: t.split(".")[0],  # signature cut off
        lambda t: "",
        lambda t: "not-a-token",
        lambda t: "..",
        lambda t: "é" * 10,
    ],
)
def test_forged_or_damaged_tokens_are_refused(damage: object) -> None:
    links = Links("https://tend.example.com", SECRET)
    token = token_of(links.confirm_url("h", 1, "p"))
    assert callable(damage)
    with pytest.raises(BadLink) as caught:
        links.read_confirm(damage(token))
    assert not caught.value.expired


def test_a_token_of_one_kind_or_another_key_is_refused() -> None:
    links = Links("https://tend.example.com", SECRET)
    unsubscribe = token_of(links.unsubscribe_url("h", "p"))
    confirm = token_of(links.confirm_url("h", 1, "p"))
    with pytest.raises(BadLink):
        links.read_confirm(unsubscribe)
    with pytest.raises(BadLink):
        links.read_unsubscribe(confirm)
    other = Links("https://tend.example.com", "another-secret")
    with pytest.raises(BadLink):
        other.read_confirm(confirm)


def test_a_signed_payload_of_the_wrong_shape_is_refused() -> None:
    # Signed with the right key and salt but not made by Links: still not a confirm link.
    from itsdangerous import URLSafeTimedSerializer

    odd = URLSafeTimedSerializer(SECRET, salt="tend.confirm").dumps(["h", "1", "p"])
    with pytest.raises(BadLink):
        Links("https://x.example", SECRET).read_confirm(odd)


def test_no_secret_no_links() -> None:
    with pytest.raises(ValueError, match="secret"):
        Links("https://x.example", "")


class _Text:
    """Signs a text payload as it is: not JSON."""

    @staticmethod
    def dumps(value: str) -> str:
        return value

    @staticmethod
    def loads(value: str) -> str:
        return value


@pytest.mark.parametrize(
    "payload",
    [
        ["h", 10**30, "p"],  # more than a BIGINT holds
        ["h", 2**63, "p"],
        ["h", 0, "p"],
        ["h", True, "p"],  # JSON's true is a Python int too
        ["h\x00", 1, "p"],
        ["h\n", 1, "p"],  # a regex's $ would let the newline through
        ["H", 1, "p"],
        ["h", 1, "p" * 65],
        {"household": "h"},
        None,
    ],
)
def test_a_rightly_signed_payload_unlike_any_id_is_refused(payload: object) -> None:
    from itsdangerous import URLSafeTimedSerializer

    odd = URLSafeTimedSerializer(SECRET, salt="tend.confirm").dumps(payload)
    with pytest.raises(BadLink) as caught:
        Links("https://x.example", SECRET).read_confirm(odd)
    assert not caught.value.expired


def test_a_rightly_signed_payload_that_is_not_json_is_refused() -> None:
    from itsdangerous import URLSafeTimedSerializer

    links = Links("https://x.example", SECRET)
    for salt, read in (
        ("tend.confirm", links.read_confirm),
        ("tend.unsubscribe", links.read_unsubscribe),
        ("tend.calendar", links.read_calendar),
    ):
        odd = URLSafeTimedSerializer(SECRET, salt=salt, serializer=_Text).dumps("not json {")
        with pytest.raises(BadLink):
            read(odd)


def test_the_largest_ids_a_link_may_hold_read_back() -> None:
    links = Links("https://x.example", SECRET)
    longest = "a" * 63 + "_"
    found = links.read_confirm(token_of(links.confirm_url(longest, 2**63 - 1, "0-p")))
    assert (found.household, found.occurrence, found.partner) == (longest, 2**63 - 1, "0-p")
