"""The web process on a ritual directory, as ``tend web`` builds it (a
:class:`SyncedSource` on the ledger alone): replies and the couple's page judged by the
households the worker synced, read from the ledger for each request, so an edit is live
as soon as the worker has synced it; a household whose file is gone is a stranger. On
SQLite and PostgreSQL, with signed requests.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fake_notifiers import FakeClock
from signed_sms import PUBLIC, TOKEN, answer_text
from sqlalchemy import Engine

from notifiers.links import Links
from notifiers.twilio_webhooks import TwilioWebhooks
from scheduler.directory import DirectorySource
from scheduler.ledger import Ledger
from scheduler.planner.directory import DirectoryPlanner
from scheduler.source import SyncedSource
from tend.web import create_app

LINKS = Links(PUBLIC, "directory-test-secret-key-0123456789")
PLANNED = datetime(2026, 1, 12, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 1, 12, 19, 30, tzinfo=UTC)  # the 19:00 check-in went out

RITUALS = """\
timezone = "UTC"

[[rituals]]
id = "check-in"
title = "Evening check-in"
kind = "check_in"
schedule = "daily at 19:00"
"""


def household(phone_a: str, phone_b: str, name: str = "Alex") -> str:
    return f"""\
[[partners]]
id = "alex"
name = "{name}"
phone = "{phone_a}"
channels = ["sms"]

[[partners]]
id = "sam"
name = "Sam"
phone = "{phone_b}"
channels = ["sms"]
"""


ALEX = "+15551230001"
KIM = "+15551230003"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "rituals"
    (root / "households").mkdir(parents=True)
    (root / "rituals.toml").write_text(RITUALS)
    (root / "households" / "alex-sam.toml").write_text(household(ALEX, "+15551230002"))
    (root / "households" / "kim-lee.toml").write_text(household(KIM, "+15551230004", "Kim"))
    return root


@pytest.fixture
def planner(engine: Engine, folder: Path) -> DirectoryPlanner:
    source = DirectorySource(folder, ledger=Ledger(engine), clock=lambda: PLANNED)
    source.start()
    made = DirectoryPlanner(Ledger(engine), source, days=2)
    made.plan(PLANNED)
    with engine.begin() as connection:  # what was due by now went out
        from sqlalchemy import update

        from scheduler.ledger.rows import DeliveryRow

        connection.execute(
            update(DeliveryRow)
            .where(DeliveryRow.due_at <= NOW)
            .values(status="sent", sent_at=DeliveryRow.due_at)
        )
    return made


@pytest.fixture
def client(engine: Engine, planner: DirectoryPlanner) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    app = create_app(
        Ledger(engine),
        clock=FakeClock(NOW),
        links=LINKS,
        twilio=TwilioWebhooks(TOKEN, PUBLIC),
        rituals=SyncedSource(Ledger(engine), ttl=timedelta(0), clock=lambda: NOW),
    )
    with TestClient(app) as test_client:
        yield test_client


_sids = iter(range(10**6))


def text(client: Any, sender: str, body: str) -> str:
    sid = f"SM{next(_sids):032d}"
    form = {"MessageSid": sid, "SmsSid": sid, "From": sender, "To": "+15550001111", "Body": body}
    return answer_text(client, form)


def test_a_reply_is_judged_by_its_own_household_from_the_ledger(client: Any) -> None:
    answer = text(client, ALEX, "DONE")
    assert "Evening check-in" in answer and "That's 1 " in answer, answer
    again = text(client, KIM, "DONE")
    assert "Evening check-in" in again and "That's 1 " in again, again
    stranger = text(client, "+15559990000", "DONE")
    assert "Evening check-in" not in stranger and "streak" not in stranger, stranger


def test_an_edit_is_live_for_the_web_once_the_worker_synced_it_and_a_file_removed_is_gone(
    client: Any, planner: DirectoryPlanner, folder: Path
) -> None:
    token = LINKS.page_token("alex-sam", "alex", 0)
    page = client.get(f"/h/{token}")
    assert page.status_code == 200 and "Alex" in page.text
    (folder / "households" / "alex-sam.toml").write_text(
        household(ALEX, "+15551230002", name="Alexandra")
    )
    planner.plan(NOW)
    page = client.get(f"/h/{token}")
    assert page.status_code == 200 and "Alexandra" in page.text

    (folder / "households" / "kim-lee.toml").unlink()
    stranger = text(client, "+15559990000", "DONE")
    planner.plan(NOW + timedelta(minutes=1))
    assert text(client, KIM, "DONE") == stranger, "no household has that number now"
    kim_page = client.get(f"/h/{LINKS.page_token('kim-lee', 'alex', 0)}")
    assert kim_page.status_code == 404
