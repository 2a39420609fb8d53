"""The service's commands: ``tend run`` (everything in one process), ``tend worker`` and
``tend web`` (the Procfile's two halves)."""

from __future__ import annotations

import logging
import signal
import socket
import sys
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from config.loader import RitualFileError, load_ritual_file
from config.model import RitualFile
from config.settings import Settings
from scheduler.directory import DirectorySource
from scheduler.source import FileSource, SyncedSource
from tend.cli.common import ConfigOption, Usage, handled, load, now, open_ledger, safe_url
from tend.cli.common import settings as read_settings

if TYPE_CHECKING:  # the worker, the ledger and the web load when a service starts
    from scheduler.ledger import Ledger, SchemaBehind
    from scheduler.worker import Worker

__all__ = ["listen", "logging_setup", "run", "web", "worker"]

PortOption = Annotated[
    int | None,
    typer.Option("--port", help="Web port. Default: $PORT, else 8000.", show_default=False),
]
HostOption = Annotated[str, typer.Option("--host", help="Address to listen on.")]


def logging_setup() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # "skipped: maximum number of running instances reached": a re-plan that outlasts the
    # 5 s file check, harmless; errors from jobs still show.
    logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)


def _service_file(
    config: ConfigOption,
) -> tuple[Settings, FileSource | DirectorySource, Ledger]:
    """Settings, the ritual file (or the ledger's last good one) and the ledger."""
    settings = read_settings()
    ledger = open_ledger(settings)
    path = Path(config or settings.config_path)
    if path.is_dir():
        return settings, _directory(path, ledger), ledger
    # With no SQLite file yet there is no last good file to fall back on, and looking for one
    # would leave an empty database behind.
    fallback = None if ledger.missing_sqlite_file() else ledger
    _, source = load(config, settings_=settings, fallback=fallback)
    return settings, source, ledger


def _directory(path: Path, ledger: Ledger) -> DirectorySource:
    """A ritual directory's rituals.toml, started (or the ledger's last good one); its
    households are read when the worker first plans."""
    source = DirectorySource(path, ledger=ledger, clock=now)
    try:
        shared = source.start()
    except RitualFileError as exc:
        raise Usage(*exc.lines()) from None
    if source.problems:
        for line in source.problems:
            typer.echo(line, err=True)
        assert source.synced_at is not None
        typer.echo(
            f"tend: starting on the last good rituals.toml, synced "
            f"{source.synced_at:%Y-%m-%d %H:%M} UTC; fix it and it is picked up within seconds",
            err=True,
        )
    for line in shared.warning_lines():
        typer.echo(line, err=True)
    return source


def _worker(settings: Settings, source: FileSource | DirectorySource, ledger: Ledger) -> Worker:
    from notifiers.registry import NotifierSet, UnknownNotifier
    from scheduler.dispatch import RetryPolicy
    from scheduler.worker import Worker, WorkerOptions

    file = source.file
    if file is None:  # a ritual directory: any household may use any channel
        channels = {"sms", "email", "console"}
    else:
        channels = {c for h in file.households for p in h.partners for c in p.channels}
    try:
        notifiers = NotifierSet(settings, overrides=settings.notifiers)
        notifiers.check(sorted(channels | {"console"}))
    except UnknownNotifier as exc:
        raise Usage(f"tend: cannot use a notifier (TEND_NOTIFIERS, or a plugin): {exc}") from None
    except ValueError as exc:
        raise Usage(f"tend: {exc}") from None
    logging.getLogger("tend").info(
        "channels: %s", notifiers.describe(sorted(channels | {"console"}))
    )
    return Worker(
        ledger,
        source,
        notifiers,
        clock=now,
        options=WorkerOptions(
            horizon_days=settings.horizon_days,
            senders=settings.senders,
            retry=RetryPolicy(max_attempts=settings.max_attempts),
            claim_timeout=timedelta(seconds=settings.claim_timeout_seconds),
        ),
    )


def _start(process: Worker) -> None:
    from scheduler.worker import AlreadyRunning

    try:
        process.start()
    except AlreadyRunning as exc:
        raise Usage(f"tend: {exc}") from None


def _on_signals() -> threading.Event:
    """SIGTERM and SIGINT set the returned event (uvicorn re-raises them to these handlers)."""
    stop = threading.Event()

    def handle(signum: int, _frame: object) -> None:
        logging.getLogger("tend").info("%s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stop


def _schema_ready(ledger: Ledger, stop: threading.Event, command: str) -> bool:
    """True once the schema is at head; False when a signal came first.

    On PostgreSQL a schema that ``tend db upgrade`` will create or bring up to date is waited
    for, said once: a local Procfile runner (honcho, foreman) starts `web` and `worker`
    beside the upgrade, and stops them all when one exits. SQLite is migrated in place by
    whoever opens it (the worker, under its file lock), as before."""
    if ledger.is_sqlite:
        return True
    from scheduler.ledger.schema import LONGEST_PAUSE_SECONDS

    def waiting(behind: SchemaBehind) -> None:
        logging.getLogger("tend").warning(
            "%s; %s waits for it, looking again at most every %g s",
            str(behind).rstrip("."),
            command,
            LONGEST_PAUSE_SECONDS,
        )

    ready = ledger.wait_for_schema(stop.wait, waiting)
    if ready and stop.is_set():  # the signal came as the schema did
        return False
    return ready


@handled
def worker(config: ConfigOption = None) -> None:
    """Plan and send: the scheduler process (Procfile `worker`)."""
    settings, source, ledger = _service_file(config)
    logging_setup()
    process = _worker(settings, source, ledger)
    if settings.metrics_port is not None:  # `tend web` has the ledger's; these are this process's
        from prometheus_client import start_http_server

        from scheduler.metrics import REGISTRY

        try:
            start_http_server(settings.metrics_port, registry=REGISTRY)
        except OSError as exc:
            port = settings.metrics_port
            raise Usage(f"tend: cannot serve metrics on port {port}: {exc.strerror}") from None
    stop = _on_signals()
    try:
        if not _schema_ready(ledger, stop, "tend worker"):
            return
        _start(process)
        typer.echo(f"tend worker running on {safe_url(settings)}; Ctrl-C stops it", err=True)
        # A timed wait, again and again: the kernel may hand SIGTERM to any thread, and then
        # the main thread, blocked in an untimed lock wait, would never run the handler.
        while not stop.wait(0.5):
            pass
    finally:
        process.stop()


@handled
def web(config: ConfigOption = None, port: PortOption = None, host: HostOption = "0.0.0.0") -> None:
    """Serve the HTTP endpoints (Procfile `web`)."""
    settings = read_settings()
    logging_setup()
    ledger = open_ledger(settings)
    listening = listen(host, _port(port, settings))
    # uvicorn hands the signals it caught on to these handlers when it stops: exit 0.
    stop = _on_signals()
    try:
        if not _schema_ready(ledger, stop, "tend web"):
            return
        ledger.ensure_schema()  # SQLite: migrated here too; PostgreSQL: at head by now
        rituals = SyncedSource(ledger, fallback=_file_if_any(config or settings.config_path))
        _serve(ledger, listening, settings, rituals)
    finally:
        listening.close()


def _file_if_any(path: object) -> RitualFile | None:
    """The ritual file on disk for `tend web`, which judges replies by the file the worker
    synced and needs this one only until a worker has run; a broken file is not fatal."""
    if Path(str(path)).is_dir():
        return None  # a ritual directory: its households are read from the ledger
    try:
        return load_ritual_file(str(path), today=now()).file
    except RitualFileError as exc:
        logging.getLogger("tend").warning(
            "%s: not used (%d problem(s)); replies wait for a worker to sync a good file",
            path,
            len(exc.problems),
        )
        return None


def _port(port: int | None, settings: Settings) -> int:
    return settings.port if port is None else port


def listen(host: str, port: int) -> socket.socket:
    """Bind before anything starts, so a busy port is one clear line, not a late crash."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY only on connections whose
    # socket says TCP, and without it each answer (headers, then body) waited for the
    # client's delayed ACK: 40 ms added to every request, measured in bench/webhook.py.
    listening = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((host, port))
    except OSError as exc:
        listening.close()
        raise Usage(f"tend: cannot listen on {host}:{port}: {exc.strerror}") from None
    listening.listen(2048)
    listening.set_inheritable(True)
    return listening


def _serve(
    ledger: Ledger,
    listening: socket.socket,
    settings: Settings,
    rituals: Callable[[], RitualFile | None],
) -> None:
    import uvicorn

    from notifiers.links import Links
    from notifiers.twilio_webhooks import TwilioWebhooks
    from tend.timeouts import with_request_timeout
    from tend.web import create_app

    web_app = create_app(
        ledger,
        links=Links.from_settings(settings),
        twilio=TwilioWebhooks.from_settings(settings),
        rituals=rituals,
    )
    # uvicorn's own h11 protocol never times out a request still arriving: this one does.
    protocol = with_request_timeout(settings.request_timeout_seconds)
    server = uvicorn.Server(
        uvicorn.Config(web_app, log_level="info", access_log=False, http=protocol)
    )
    try:
        server.run(sockets=[listening])
    finally:
        listening.close()


@handled
def run(
    config: ConfigOption = None, port: PortOption = None, host: HostOption = "127.0.0.1"
) -> None:
    """Everything in one process: the worker and the web endpoints (SQLite by default)."""
    settings, source, ledger = _service_file(config)
    logging_setup()
    process = _worker(settings, source, ledger)
    port = _port(port, settings)
    listening = listen(host, port)
    stop = _on_signals()
    try:
        _start(process)
        if stop.is_set():  # a signal came while starting
            return
        shown = listening.getsockname()[1]
        typer.echo(
            f"tend running on {safe_url(settings)}: http://{host}:{shown}/healthz; Ctrl-C stops it",
            err=True,
        )
        # The worker's own ritual file: parsed once per change for both halves.
        _serve(ledger, listening, settings, source)  # returns after SIGINT or SIGTERM
    finally:
        listening.close()
        stop.set()
        process.stop()
