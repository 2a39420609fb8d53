"""Tokens signed with the right key and salt whose payload is odd (not JSON, not the shape
Tend writes, ids the ritual file could not hold, numbers no column holds) are bad links like
any other: 400 at the confirm and unsubscribe links, 404 at the calendar feed, on SQLite and
on PostgreSQL, and nothing in the log."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from itsdangerous import URLSafeTimedSerializer
from ledger_setup import add_household
from sqlalchemy import Engine, insert, select

from notifiers.links import Links
from scheduler.ledger import Ledger
from scheduler.ledger.rows import CompletionRow, OccurrenceRow, PartnerRow
from tend.web import create_app

NOW = datetime(2026, 12, 5, 21, tzinfo=UTC)
SECRET = "odd-token-test-secret-key"
LINKS = Links("https://tend.example.com", SECRET)
SALTS = {"confirm": "tend.confirm", "unsubscribe": "tend.unsubscribe", "calendar": "tend.calendar"}


class _Raw:
    """An itsdangerous serializer that signs its argument as it is (text or bytes), so the
    payload is whatever the test wants, JSON or not."""

    @staticmethod
    def dumps(value: Any) -> Any:
        return value

    @staticmethod
    def loads(value: Any) -> Any:
        return value


def signed(kind: str, payload: Any) -> str:
    """A token of `kind` signed with Tend's key and salt, carrying `payload` (JSON-encoded,
    unless it is a :class:`RawPayload`)."""
    if isinstance(payload, RawPayload):
        raw = URLSafeTimedSerializer(SECRET, salt=SALTS[kind], serializer=_Raw)
        token: str | bytes = raw.dumps(payload.value)
        # A serializer that does not turn {} into text makes a bytes token.
        return token.decode() if isinstance(token, bytes) else token
    return URLSafeTimedSerializer(SECRET, salt=SALTS[kind]).dumps(payload)


class RawPayload:
    def __init__(self, value: str | bytes) -> None:
        self.value = value

    def __repr__(self) -> str:
        return f"raw({self.value[:20]!r})"


def compressed_garbage(kind: str) -> str:
    """A signed payload that says it is zlib-compressed and is not."""
    serializer = URLSafeTimedSerializer(SECRET, salt=SALTS[kind])
    return serializer.make_signer(SALTS[kind]).sign(b".bm90IHpsaWI").decode()


# Odd in any kind of token: not JSON at all, or JSON that is not a list of the right things.
ANY_KIND: list[Any] = [
    RawPayload("not json {"),
    RawPayload(b"\xff\xfe\x00 not utf-8"),
    RawPayload(""),
    {"household": "alex-sam"},
    [],
    None,
    True,
    "alex-sam",
    10**30,
    ["x" * 10_000],
    [["alex-sam"]],
]
SHAPED: dict[str, list[Any]] = {
    "confirm": [
        ["alex-sam", 10**30, "sam"],
        ["alex-sam", 2**63, "sam"],
        ["alex-sam", -(2**70), "sam"],
        ["alex-sam", 0, "sam"],
        ["alex-sam", -1, "sam"],
        ["alex-sam", True, "sam"],
        ["alex-sam", 1.0, "sam"],
        ["alex-sam", "1", "sam"],
        ["alex-sam", None, "sam"],
        ["alex\x00sam", 1, "sam"],
        ["alex-sam", 1, "sam\x00"],
        ["x" * 10_000, 1, "sam"],
        ["alex-sam", 1, "s" * 65],
        ["alex-sam\n", 1, "sam"],
        ["Alex-Sam", 1, "sam"],
        ["-alex", 1, "sam"],
        ["alex-sam", 1],
        ["alex-sam", 1, "sam", "extra"],
        [True, 1, False],
    ],
    "unsubscribe": [
        ["alex-sam", "sam", "email", "extra"],
        ["alex-sam", "sam"],
        ["alex\x00sam", "sam", "email"],
        ["alex-sam", "sam\x00", "email"],
        ["alex-sam", "sam", "email\x00"],
        ["x" * 10_000, "sam", "email"],
        ["alex-sam", "x" * 10_000, "email"],
        ["alex-sam", "sam\n", "email"],
        ["alex-sam", "Sam", "email"],
        ["alex-sam", "sam", True],
        ["alex-sam", 10**30, "email"],
        [False, "sam", "email"],
    ],
    "calendar": [
        ["alex\x00sam"],
        ["x" * 10_000],
        ["a" * 65],
        ["alex-sam\n"],
        ["Alex-Sam"],
        ["_alex"],
        [True],
        [10**30],
        ["alex-sam", "alex-sam"],
    ],
}


def cases(kind: str) -> list[Any]:
    return [pytest.param(p, id=f"{kind}-{i}") for i, p in enumerate(ANY_KIND + SHAPED[kind])]


@pytest.fixture
def engine(engine: Engine) -> Engine:
    """The shared ledger (SQLite, then PostgreSQL) holding alex-sam, its partners and one
    open occurrence."""
    fill(engine)
    return engine


def fill(engine: Engine) -> None:
    add_household(
        engine, "alex-sam", {k: {"email": f"{k}@example.com"} for k in ("alex", "sam")}, NOW
    )
    slot = datetime(2026, 12, 5, 19)
    with engine.begin() as connection:
        connection.execute(
            insert(OccurrenceRow).values(
                household_id="alex-sam",
                ritual_id="date-night",
                slot=slot,
                recipient="",
                kind="date_night",
                at=slot.replace(tzinfo=UTC),
                status="open",
                created_at=NOW,
                updated_at=NOW,
            )
        )


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    # A 500 must come back as an answer, to be asserted on, not raised into the test.
    app = create_app(Ledger(engine), clock=lambda: NOW, links=LINKS)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def untouched(engine: Engine) -> bool:
    with engine.connect() as connection:
        completions = connection.execute(select(CompletionRow.id)).all()
        opted_out = connection.execute(
            select(PartnerRow.key).where(PartnerRow.email_opted_out_at.is_not(None))
        ).all()
        statuses = connection.execute(select(OccurrenceRow.status)).scalars().all()
    return completions == [] and opted_out == [] and statuses == ["open"]


def quiet(caplog: pytest.LogCaptureFixture) -> bool:
    """Nothing in the log worth a look: no traceback, no error."""
    return not any(r.exc_info or r.levelno >= logging.ERROR for r in caplog.records) and (
        "Traceback" not in caplog.text
    )


@pytest.mark.parametrize("payload", cases("confirm"))
def test_an_odd_confirm_token_is_a_link_not_valid(
    client: TestClient, engine: Engine, caplog: pytest.LogCaptureFixture, payload: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    for method in ("GET", "POST"):
        answer = client.request(method, f"/confirm/{signed('confirm', payload)}")
        assert answer.status_code == 400, (method, answer.text)
        assert "Link not valid" in answer.text
    assert untouched(engine)
    assert quiet(caplog), caplog.text


@pytest.mark.parametrize("payload", cases("unsubscribe"))
def test_an_odd_unsubscribe_token_is_a_link_not_valid(
    client: TestClient, engine: Engine, caplog: pytest.LogCaptureFixture, payload: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    for method in ("GET", "POST"):
        answer = client.request(method, f"/unsubscribe/{signed('unsubscribe', payload)}")
        assert answer.status_code == 400, (method, answer.text)
        assert "Link not valid" in answer.text
    assert untouched(engine)
    assert quiet(caplog), caplog.text


@pytest.mark.parametrize("payload", cases("calendar"))
def test_an_odd_calendar_token_is_no_such_calendar(
    client: TestClient, engine: Engine, caplog: pytest.LogCaptureFixture, payload: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    answer = client.get(f"/calendar/{signed('calendar', payload)}.ics")
    assert answer.status_code == 404, answer.text
    assert answer.text == "no such calendar"
    assert quiet(caplog), caplog.text


@pytest.mark.parametrize("kind", ["confirm", "unsubscribe", "calendar"])
def test_a_compressed_payload_that_does_not_decompress_is_a_bad_link(
    client: TestClient, caplog: pytest.LogCaptureFixture, kind: str
) -> None:
    token = compressed_garbage(kind)
    url = f"/calendar/{token}.ics" if kind == "calendar" else f"/{kind}/{token}"
    answer = client.get(url)
    assert answer.status_code == (404 if kind == "calendar" else 400)
    assert quiet(caplog), caplog.text


def test_the_largest_occurrence_id_a_token_may_name_is_just_not_found(
    client: TestClient, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    # 2**63 - 1 passes the shape check and fits both databases' columns: the ledger says no.
    url = LINKS.confirm_url("alex-sam", 2**63 - 1, "sam").removeprefix(LINKS.public_url)
    for method in ("GET", "POST"):
        answer = client.request(method, url)
        assert answer.status_code == 400
        assert "Link not valid" in answer.text
    assert untouched(engine)
    assert quiet(caplog), caplog.text
