"""One-click unsubscribe (RFC 8058): GET shows a button, POST unsubscribes; bad links record
nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from ledger_setup import add_household
from sqlalchemy import Engine, select

from notifiers.links import Links
from scheduler.ledger import Ledger
from scheduler.ledger.rows import PartnerRow
from tend.web import create_app

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)
LINKS = Links("https://tend.example.com", "unsubscribe-test-secret")


@pytest.fixture
def engine(ledger: Engine) -> Engine:
    add_household(ledger, "h", {k: {"email": f"{k}@example.com"} for k in ("alex", "sam")}, NOW)
    return ledger


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(Ledger(engine), clock=lambda: NOW, links=LINKS)) as client:
        yield client


def opted_out(engine: Engine) -> dict[str, datetime | None]:
    with engine.connect() as connection:
        rows = connection.execute(select(PartnerRow.key, PartnerRow.email_opted_out_at))
        return dict(rows.tuples().all())


def path_of(url: str) -> str:
    return url.removeprefix(LINKS.public_url)


def test_get_shows_a_button_and_unsubscribes_nobody(client: TestClient, engine: Engine) -> None:
    answer = client.get(path_of(LINKS.unsubscribe_url("h", "sam")))
    assert answer.status_code == 200
    assert '<form method="post">' in answer.text
    assert opted_out(engine) == {"alex": None, "sam": None}


def test_one_click_post_unsubscribes_that_partner_only(client: TestClient, engine: Engine) -> None:
    url = path_of(LINKS.unsubscribe_url("h", "sam"))
    answer = client.post(url, data={"List-Unsubscribe": "One-Click"})
    assert answer.status_code == 200
    assert "no more e-mails" in answer.text
    assert opted_out(engine) == {"alex": None, "sam": NOW}
    # Again (mail providers retry): still fine, the first time kept.
    later = TestClient(create_app(Ledger(engine), clock=lambda: NOW.replace(hour=13), links=LINKS))
    assert later.post(url).status_code == 200
    assert opted_out(engine)["sam"] == NOW


@pytest.mark.parametrize(
    "token",
    [
        "nonsense",
        LINKS.unsubscribe_url("h", "sam").rsplit("/", 1)[1][:-2] + "xx",  # forged signature
        LINKS.confirm_url("h", 1, "sam").rsplit("/", 1)[1],  # a token of another kind
        Links("https://x", "other-secret").unsubscribe_url("h", "sam").rsplit("/", 1)[1],
        LINKS.unsubscribe_url("h", "sam", "sms").rsplit("/", 1)[1],  # not an e-mail link
        LINKS.unsubscribe_url("h", "nobody").rsplit("/", 1)[1],  # no such partner
    ],
    # Named, not shown: a token carries the second it was signed, and pytest -n needs the
    # same ids in every worker.
    ids=["nonsense", "forged", "other-kind", "other-key", "not-email", "no-partner"],
)
def test_a_bad_link_shows_an_error_and_records_nothing(
    client: TestClient, engine: Engine, token: str
) -> None:
    answer = client.post(f"/unsubscribe/{token}")
    assert answer.status_code == 400
    assert "not valid" in answer.text
    assert opted_out(engine) == {"alex": None, "sam": None}


def test_without_a_secret_key_the_route_says_so(engine: Engine) -> None:
    client = TestClient(create_app(Ledger(engine), clock=lambda: NOW, links=None))
    answer = client.post(path_of(LINKS.unsubscribe_url("h", "sam")))
    assert answer.status_code == 404
    assert opted_out(engine) == {"alex": None, "sam": None}
