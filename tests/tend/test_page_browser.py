"""The couple's page in a real browser: headless Chromium (the Debian package ``chromium``)
opens the page served by a real ``tend web`` on a seeded SQLite ledger, checks the rendered
heatmap, presses DONE and sees the streak go up on the reloaded page, and saves screenshots
at 1280 and 375 pixels wide under the test's tmp dir.

Without Chromium (or the ``playwright`` package) the test is skipped with the reason; with
``TEND_REQUIRE_BROWSER=1`` (``.ci/run`` sets it) it fails instead, as PostgreSQL's do.

The ``tend web`` process reads the real clock, so the history is seeded relative to now:
Alex and Sam (UTC) have a daily check-in at 12:00, planned from five days ago. Five days
ago both confirmed, four days ago Alex alone, three days ago Sam skipped (a freeze); the
check-ins since are still open (the reply window is three days).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path

import pytest
from june_couple import Replies, plan, send_due
from loopback import free_port
from ritual_files import couple_file, partner_table

from notifiers.links import Links
from scheduler.ledger.engine import make_engine
from scheduler.ledger.schema import upgrade

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SECRET = "browser-test-secret-key-0123456789"
ALEX = "+15551230001"
SAM = "+15551230002"

TEXT = couple_file(
    partner_table("alex", phone=True, channels=["sms"]),
    partner_table("sam", phone=True, channels=["sms"]),
    rituals="""
[[rituals]]
id = "check-in"
kind = "check_in"
schedule = "daily at 12:00"
""",
)


def _browser_or_skip() -> None:
    problem = None
    if not CHROMIUM.exists():
        problem = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the playwright package is not installed (pip install -e '.[dev]')"
    if problem is None:
        return
    if os.environ.get("TEND_REQUIRE_BROWSER") == "1":
        pytest.fail(f"TEND_REQUIRE_BROWSER=1 but {problem}")
    pytest.skip(f"browser tests need headless Chromium: {problem}; .ci/run installs it")


def _seed(database: Path, config: Path, now: datetime) -> dict[str, int]:
    """The ledger as the module's docstring tells it; the expected count of each state."""
    config.write_text(TEXT, encoding="utf-8")
    engine = make_engine(f"sqlite:///{database}")
    upgrade(engine)
    today = now.date()
    start = datetime.combine(today - timedelta(days=5), clock_time(), UTC)
    file = plan(engine, TEXT, start, days=7)
    reply = Replies(engine, file)
    for days_ago, texts in ((5, [ALEX, SAM]), (4, [ALEX]), (3, [])):
        moment = datetime.combine(today - timedelta(days=days_ago), clock_time(12, 30), UTC)
        send_due(engine, moment)
        for sender in texts:
            reply(sender, "DONE", moment)
        if days_ago == 3:
            reply(SAM, "SKIP", moment)
    send_due(engine, now)
    engine.dispose()
    due_today = now >= datetime.combine(today, clock_time(12), UTC)
    return {"both": 1, "one": 1, "freeze": 1, "open": 2 + due_today}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, dict[str, int]]]:
    """A real `tend web` on the seeded ledger; Alex's page URL and the expected states."""
    _browser_or_skip()
    database, config = tmp_path / "tend.db", tmp_path / "tend.toml"
    expected = _seed(database, config, datetime.now(UTC))
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "tend", "web", "--host", "127.0.0.1", "--port", str(port)],
        cwd=tmp_path,
        env={
            **os.environ,
            "DATABASE_URL": f"sqlite:///{database}",
            "TEND_CONFIG": str(config),
            "TEND_PUBLIC_URL": public,
            "TEND_SECRET_KEY": SECRET,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = Links(public, SECRET).page_url("alex-sam", "alex", 0)
    try:
        _wait_for(process, port)
        yield url, expected
    finally:
        process.terminate()
        _out, err = process.communicate(timeout=15)
    assert "Traceback" not in err, err
    token = url.split("/h/")[1]  # the very token the browser asked for
    assert token not in err and token not in _out  # never logged


def _wait_for(process: subprocess.Popen[str], port: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            pytest.fail(f"tend web exited {process.returncode}: {process.communicate()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                pytest.fail("tend web never listened")
            time.sleep(0.05)


def test_the_page_in_chromium_shows_the_history_and_done_raises_the_streak(
    served: tuple[str, dict[str, int]], tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    url, expected = served
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            requests: list[str] = []
            page.on("request", lambda request: requests.append(request.url))
            page.goto(url)
            cells = page.locator('g[data-ritual="check-in"] rect[data-state]')
            found: dict[str, int] = {}
            for state in cells.evaluate_all("rects => rects.map(r => r.dataset.state)"):
                found[state] = found.get(state, 0) + 1
            assert found == expected
            assert page.locator("h1").inner_text() == "Tend: Alex and Sam"
            assert page.locator("script").count() == 0
            page.screenshot(path=str(tmp_path / "page-1280.png"), full_page=True)

            before = _streak(page.locator("#streaks td.current").first.inner_text())
            page.locator("button.done").first.click()
            page.wait_for_load_state()
            after = _streak(page.locator("#streaks td.current").first.inner_text())
            assert after > before
            assert page.url == url  # back on the page (303)

            page.set_viewport_size({"width": 375, "height": 800})
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 375  # a single column: nothing wider than the phone
            page.screenshot(path=str(tmp_path / "page-375.png"), full_page=True)
            assert all(r.startswith(url.split("/h/")[0]) for r in requests)  # nothing else
        finally:
            browser.close()
    assert (tmp_path / "page-1280.png").stat().st_size > 0
    assert (tmp_path / "page-375.png").stat().st_size > 0
    print(f"screenshots: {tmp_path / 'page-1280.png'} {tmp_path / 'page-375.png'}")


def _streak(text: str) -> int:
    found = re.match(r"(\d+)", text)
    assert found is not None, text
    return int(found.group(1))
