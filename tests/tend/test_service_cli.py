"""``tend run``, ``tend status`` and ``tend db upgrade`` as users run them: real processes."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from january_couple import CHECK_IN, at, plan
from loopback import free_port
from ritual_files import couple_file, household_table, partner_table
from sqlalchemy import text

from scheduler.ledger.engine import make_engine
from scheduler.ledger.schema import head_revision, upgrade

ROOT = Path(__file__).resolve().parents[2]

SOON = """\
timezone = "UTC"

[[households]]
id = "us"

  [[households.partners]]
  id = "ann"
  name = "Ann"
  phone = "+15551230001"

[[rituals]]
id = "hello"
kind = "custom"
schedule = "daily at {at}"
message = "Hi {{{{ partner }}}}, time for {{{{ ritual }}}}."
"""


def tend(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tend", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def soon_file(tmp_path: Path) -> Path:
    """A ritual that fell due five minutes ago: inside its grace, so it is sent at once."""
    at = datetime.now(UTC) - timedelta(minutes=5)
    path = tmp_path / "tend.toml"
    path.write_text(SOON.format(at=f"{at:%H:%M}"))
    return path


@pytest.fixture
def running(tmp_path: Path, soon_file: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tend", "run", "--config", str(soon_file), "--port", str(port)],
        cwd=tmp_path,
        env={**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/tend.db"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    yield process, port
    if process.poll() is None:
        process.kill()
        process.communicate()


def wait_healthy(port: int, process: subprocess.Popen[str]) -> httpx.Response:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"tend run exited {process.returncode}: {process.communicate()}")
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
            if response.status_code == 200 and response.json()["scheduler"] == "ok":
                return response
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    pytest.fail("tend run never became healthy")


def test_tend_run_sends_a_due_nudge_to_the_console_and_serves_healthz(
    tmp_path: Path, running: tuple[subprocess.Popen[str], int]
) -> None:
    process, port = running
    health = wait_healthy(port, process).json()
    assert health["database"] == "ok"
    assert 0 <= health["heartbeat_age_seconds"] < 45

    status = tend("status", cwd=tmp_path, env={"DATABASE_URL": f"sqlite:///{tmp_path}/tend.db"})
    assert status.returncode == 0, status.stderr
    assert "planner: last heartbeat" in status.stdout
    assert "1 sent" in status.stdout or "1 sending" in status.stdout

    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=15)
    assert process.returncode == 0, err
    assert "Hi Ann, time for hello." in out
    assert "+1*******001" in out  # the console shows who, masked
    assert "+15551230001" not in out + err


def test_tend_run_stops_on_sigterm_with_exit_0(
    tmp_path: Path, running: tuple[subprocess.Popen[str], int]
) -> None:
    process, port = running
    wait_healthy(port, process)
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    _out, err = process.communicate(timeout=15)
    assert process.returncode == 0, err
    assert time.monotonic() - started < 10
    status = tend("status", cwd=tmp_path, env={"DATABASE_URL": f"sqlite:///{tmp_path}/tend.db"})
    assert ": stopped" in status.stdout


SLOW_START = '''
import os, time
from pathlib import Path
from notifiers.base import Message, Notifier, SendResult

class SlowToAsk(Notifier):
    """Asked about an interrupted send at start, it takes a few seconds to answer."""
    channel = "console"
    can_tell_sent = True

    def _send(self, message: Message) -> SendResult:
        return SendResult(provider_id="x")

    def was_sent(self, message, since):
        Path(os.environ["TEND_TEST_MARK"]).write_text("asking")
        time.sleep(3)
        return None
'''


def test_tend_run_stops_on_a_signal_that_arrives_while_it_starts(tmp_path: Path) -> None:
    """SIGTERM during the start (plan, reconcile) used to be lost by `tend run`, which then
    served HTTP until a second signal or SIGKILL."""
    (tmp_path / "slow_start.py").write_text(SLOW_START)
    config = tmp_path / "tend.toml"
    config.write_text(
        'timezone = "UTC"\n[[households]]\nid = "us"\n'
        'partners = [{ id = "ann", name = "Ann", channels = ["console"] }]\n'
        '[[rituals]]\nid = "hello"\nkind = "custom"\nschedule = "daily at 12:00"\n'
        'message = "Hi {{ partner }}"\n'
    )
    url = f"sqlite:///{tmp_path}/tend.db"
    engine = make_engine(url)
    upgrade(engine)
    with engine.begin() as connection:  # a delivery a crash left in `sending`
        connection.execute(
            text(
                "INSERT INTO household (id, timezone, active, created_at, updated_at) "
                "VALUES ('us', 'UTC', 1, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO partner (household_id, key, name, channels, timezone, active) "
                "VALUES ('us', 'ann', 'Ann', 'console', 'UTC', 1)"
            )
        )
        connection.execute(
            text(
                "INSERT INTO occurrence (household_id, ritual_id, slot, recipient, kind, at, "
                "status, planners, generation, created_at, updated_at) VALUES ('us', 'old', "
                "'2026-01-01 12:00:00', '', 'custom', '2026-01-01 12:00:00', 'open', '', 0, "
                "'2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO delivery (occurrence_id, household_id, partner_key, role, channel,"
                " status, due_at, next_attempt_at, expires_at, attempts, body, generation, "
                "claimed_by, claimed_at, created_at, updated_at) VALUES (1, 'us', 'ann', "
                "'day_of', 'console', 'sending', '2026-01-01 12:00:00', '2026-01-01 12:00:00',"
                " '2026-01-01 14:00:00', 0, 'Hi', 0, 'crashed', '2026-01-01 12:00:00', "
                "'2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            )
        )
    engine.dispose()
    mark = tmp_path / "asking"
    with socket.socket() as probe:  # a free port (`--port 0` means the default, 8000)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = (tmp_path / "run.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "tend", "run", "--config", str(config), "--port", str(port)],
        cwd=tmp_path,
        env={
            **os.environ,
            "DATABASE_URL": url,
            "TEND_NOTIFIERS": "console=slow_start:SlowToAsk",
            "TEND_TEST_MARK": str(mark),
            "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]),
        },
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    try:
        deadline = time.monotonic() + 30
        while not mark.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        assert mark.exists(), (tmp_path / "run.log").read_text()
        process.send_signal(signal.SIGTERM)  # while the worker reconciles at start
        try:
            code = process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            code = None
        assert code == 0, (
            "tend run did not stop within 10 s of SIGTERM:\n"
            + (tmp_path / "run.log").read_text()[-2000:]
        )
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_db_upgrade_migrates_once_and_then_has_nothing_to_do(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/ledger.db"}
    first = tend("db", "upgrade", cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    assert f"database at revision {head_revision()} (was None)" in first.stdout
    again = tend("db", "upgrade", cwd=tmp_path, env=env)
    assert "(no change)" in again.stdout


def test_status_without_a_ledger_says_what_to_run_and_creates_nothing(tmp_path: Path) -> None:
    result = tend("status", cwd=tmp_path, env={"DATABASE_URL": f"sqlite:///{tmp_path}/x.db"})
    assert result.returncode == 2
    assert "tend db upgrade" in result.stderr
    assert not (tmp_path / "x.db").exists()


def test_status_on_an_empty_database_says_what_to_run(tmp_path: Path) -> None:
    (tmp_path / "x.db").touch()
    result = tend("status", cwd=tmp_path, env={"DATABASE_URL": f"sqlite:///{tmp_path}/x.db"})
    assert result.returncode == 2
    assert "tend db upgrade" in result.stderr


def test_status_with_no_worker_yet_says_how_to_start_one(tmp_path: Path) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/x.db"}
    tend("db", "upgrade", cwd=tmp_path, env=env)
    result = tend("status", cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert "none has run yet" in result.stdout
    assert "Nothing pending." in result.stdout


# Kim lives in Berlin (UTC+1 in January), Sam in New York; each household's check-in at noon.
ZONED = couple_file(
    partner_table("alex", phone=True),
    partner_table("sam", phone=True, timezone="America/New_York"),
    households=household_table(
        "kim-lee", partner_table("kim", phone=True), timezone="Europe/Berlin"
    ),
    rituals=CHECK_IN,
)


@pytest.fixture
def zoned_ledger(tmp_path: Path) -> dict[str, str]:
    """A SQLite ledger with the next days of ZONED planned; the environment to reach it."""
    url = f"sqlite:///{tmp_path}/zoned.db"
    engine = make_engine(url)
    try:
        upgrade(engine)
        plan(engine, ZONED, at(9))
    finally:
        engine.dispose()
    return {"DATABASE_URL": url}


def test_status_shows_each_due_time_in_utc_and_on_the_recipients_clock(
    tmp_path: Path, zoned_ledger: dict[str, str]
) -> None:
    result = tend("status", cwd=tmp_path, env=zoned_ledger)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if "check-in" in line]
    kim = next(line for line in rows if " kim " in line)
    sam = next(line for line in rows if " sam " in line)
    alex = next(line for line in rows if " alex " in line)
    assert "2026-01-12 11:00 UTC (12:00 Europe/Berlin)" in kim
    assert "2026-01-12 12:00 UTC (07:00 America/New_York)" in sam
    assert "2026-01-12 12:00 UTC" in alex and "(" not in alex
    assert "Deliveries: 9 pending" in result.stdout


def test_status_for_one_household_shows_only_its_deliveries(
    tmp_path: Path, zoned_ledger: dict[str, str]
) -> None:
    result = tend("status", "--household", "kim-lee", cwd=tmp_path, env=zoned_ledger)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if "check-in" in line]
    assert len(rows) == 3 and all("kim-lee" in line and " kim " in line for line in rows)
    assert "Deliveries (kim-lee): 3 pending" in result.stdout

    unknown = tend("status", "--household", "robin-kai", cwd=tmp_path, env=zoned_ledger)
    assert unknown.returncode == 2
    assert "robin-kai" in unknown.stderr and "alex-sam, kim-lee" in unknown.stderr


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:///:memory:", "in-memory SQLite"),
        ("nonsense://x", "DATABASE_URL"),
    ],
)
def test_worker_refuses_an_unusable_database_url(
    tmp_path: Path, soon_file: Path, url: str, message: str
) -> None:
    result = tend("worker", "--config", str(soon_file), cwd=tmp_path, env={"DATABASE_URL": url})
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_worker_refuses_an_unknown_notifier_plugin(tmp_path: Path, soon_file: Path) -> None:
    result = tend(
        "worker",
        "--config",
        str(soon_file),
        cwd=tmp_path,
        env={
            "DATABASE_URL": f"sqlite:///{tmp_path}/t.db",
            "TEND_NOTIFIERS": "console=nowhere.to.be:Found",
        },
    )
    assert result.returncode == 2
    assert "TEND_NOTIFIERS" in result.stderr
    assert "nowhere.to.be" in result.stderr


def test_a_database_password_never_reaches_the_output(tmp_path: Path) -> None:
    env = {"DATABASE_URL": "postgresql://tend:hunter2@127.0.0.1:1/none"}
    result = tend("status", cwd=tmp_path, env=env, timeout=60)
    assert result.returncode == 2
    assert "hunter2" not in result.stdout + result.stderr


def test_a_worker_restarted_on_a_broken_file_runs_on_the_last_good_one(
    tmp_path: Path, soon_file: Path
) -> None:
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/tend.db"}
    port = free_port()
    first = subprocess.Popen(
        [sys.executable, "-m", "tend", "run", "--config", str(soon_file), "--port", str(port)],
        cwd=tmp_path,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_healthy(port, first)
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=15)
    soon_file.write_text(soon_file.read_text().replace("daily at", "daily at 25:00 or"))

    again = subprocess.Popen(
        [sys.executable, "-m", "tend", "run", "--config", str(soon_file), "--port", str(port)],
        cwd=tmp_path,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_healthy(port, again)
    finally:
        again.send_signal(signal.SIGTERM)
        _out, err = again.communicate(timeout=15)
    assert again.returncode == 0, err
    assert f"{soon_file}:14: rituals.0.schedule" in err  # what is wrong, where
    assert "starting on the last good ritual file" in err


def test_a_worker_with_a_broken_file_and_no_ledger_refuses_with_the_errors(
    tmp_path: Path, soon_file: Path
) -> None:
    soon_file.write_text(soon_file.read_text().replace("daily at", "daily at 25:00 or"))
    result = tend(
        "worker",
        "--config",
        str(soon_file),
        cwd=tmp_path,
        env={"DATABASE_URL": f"sqlite:///{tmp_path}/tend.db"},
    )
    assert result.returncode == 2
    assert "rituals.0.schedule" in result.stderr


def test_tend_run_on_a_busy_port_says_so_before_sending_anything(
    tmp_path: Path, soon_file: Path
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = tend(
            "run",
            "--config",
            str(soon_file),
            "--port",
            str(port),
            cwd=tmp_path,
            env={"DATABASE_URL": f"sqlite:///{tmp_path}/tend.db"},
        )
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Hi Ann" not in result.stdout  # the worker never started
    assert "Traceback" not in result.stderr


def test_db_upgrade_on_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    result = tend(
        "db", "upgrade", cwd=tmp_path, env={"DATABASE_URL": "postgres://tend@127.0.0.1:1/none"}
    )
    assert result.returncode == 2
    assert "cannot reach the database" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_notifier_override_for_an_unknown_channel_is_refused(
    tmp_path: Path, soon_file: Path
) -> None:
    result = tend(
        "worker",
        "--config",
        str(soon_file),
        cwd=tmp_path,
        env={
            "DATABASE_URL": f"sqlite:///{tmp_path}/t.db",
            "TEND_NOTIFIERS": "fax=notifiers.console:ConsoleNotifier",
        },
    )
    assert result.returncode == 2
    assert "'fax' is not a channel" in result.stderr


def test_the_web_socket_gives_connections_tcp_nodelay() -> None:
    """`tend web` binds its own socket (a busy port is one clear line). asyncio turns Nagle's
    algorithm off only on connections whose socket says TCP; on one made with protocol 0,
    every answer (headers, then body) waited 40 ms for the client's delayed ACK."""
    import asyncio
    import socket

    from tend.cli.service import listen as _listen

    async def accepted_nodelay() -> int:
        made: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                sock = transport.get_extra_info("socket")
                made.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        listening = _listen("127.0.0.1", 0)
        server = await asyncio.get_running_loop().create_server(Probe, sock=listening)
        try:
            port = listening.getsockname()[1]
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                return await asyncio.wait_for(made, 5)
            finally:
                writer.close()
        finally:
            server.close()

    assert asyncio.run(accepted_nodelay()) != 0


# Ways a ritual file broke `tend run` from outside (issue: an adversarial trial). Each is an
# edit a person could make; a long-running process must keep going on the last good file.
HOSTILE = {
    "an rrule interval past any date": (
        'schedule = "daily at',
        'schedule = "rrule: FREQ=WEEKLY;INTERVAL=1000000;BYDAY=MO;BYHOUR=9;BYMINUTE=0"\n'
        '# was "daily at',
        "rituals.0.schedule",
    ),
    "an unknown Jinja filter": ("{{ partner }}", "{{ partner | nofilter }}", "rituals.0.message"),
    "a template that loops for hours": (
        "{{ partner }}",
        "{% for i in range(5000) %}{% for j in range(5000) %}{% endfor %}{% endfor %}",
        "rituals.0.message",
    ),
}


def hostile(soon_file: Path, case: str) -> None:
    old, new, _where = HOSTILE[case]
    text = soon_file.read_text()
    assert old in text
    soon_file.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_tend_check_reports_a_hostile_file_at_its_line_and_never_crashes_or_hangs(
    tmp_path: Path, soon_file: Path, case: str
) -> None:
    hostile(soon_file, case)
    result = tend("check", "--config", str(soon_file), cwd=tmp_path, timeout=30)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert re.search(
        rf"^{re.escape(str(soon_file))}:\d+: {HOSTILE[case][2]}: ", result.stdout, re.M
    )


def test_tend_run_on_a_broken_file_with_no_ledger_leaves_no_empty_database_behind(
    tmp_path: Path, soon_file: Path
) -> None:
    hostile(soon_file, "an unknown Jinja filter")
    env = {"DATABASE_URL": f"sqlite:///{tmp_path}/tend.db"}
    result = tend("run", "--config", str(soon_file), "--port", "0", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert "rituals.0.message" in result.stderr
    assert not (tmp_path / "tend.db").exists()


def test_tend_run_restarted_on_a_file_with_an_unknown_filter_runs_on_the_last_good_one(
    tmp_path: Path, soon_file: Path
) -> None:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/tend.db"}
    port = free_port()
    command = [sys.executable, "-m", "tend", "run", "--config", str(soon_file), "--port", str(port)]
    first = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_healthy(port, first)
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=15)
    hostile(soon_file, "an unknown Jinja filter")
    again = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_healthy(port, again)
    finally:
        again.send_signal(signal.SIGTERM)
        _out, err = again.communicate(timeout=15)
    assert again.returncode == 0, err
    assert "No filter named 'nofilter'" in err
    assert "starting on the last good ritual file" in err
    assert "Traceback" not in err


class Lines:
    """A running process's stderr, read as it comes, so a test waits for a line instead of
    sleeping for a guessed time."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert process.stderr is not None
        stream = process.stderr
        self.reader = threading.Thread(target=lambda: self.lines.extend(stream), daemon=True)
        self.reader.start()

    def wait_for(self, text: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            if time.monotonic() > deadline:
                pytest.fail(f"never logged {text!r}: {''.join(self.lines)}")
            time.sleep(0.05)

    def text(self) -> str:
        self.reader.join(timeout=15)
        return "".join(self.lines)


def test_a_running_worker_survives_a_hanging_template_edit_then_takes_the_fix_and_stops(
    tmp_path: Path, running: tuple[subprocess.Popen[str], int], soon_file: Path
) -> None:
    process, port = running
    wait_healthy(port, process)
    log = Lines(process)
    good = soon_file.read_text()
    hostile(soon_file, "a template that loops for hours")
    # The worker checks the file every 5 s: it reports the edit and keeps the last good file.
    log.wait_for("too much work for a message")
    assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    soon_file.write_text(good.replace("time for", "it is time for"))
    log.wait_for("the ritual file is good again")
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=15)
    err = log.text()
    process.communicate()  # closes the pipes
    assert process.returncode == 0, err
    assert f"{soon_file}:15: rituals.0.message: " in err  # FILE:LINE, not a traceback
    assert "Traceback" not in err
