"""The ``tend`` command line. The clock and the environment are read here, and passed down."""

from __future__ import annotations

import json
import logging
import signal
import socket
import sys
import threading
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from icalendar import Calendar, Event
from pydantic import ValidationError
from rich import box
from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text
from sqlalchemy import Engine
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

from config.loader import LoadedFile, RitualFileError, load_ritual_file, parse_ritual_file
from config.model import Household as HouseholdModel
from config.model import Partner as PartnerModel
from config.model import RitualFile, mask_address
from config.settings import Settings, without_password
from notifiers.base import Message, NotifierError, Recipient, mask_addresses
from notifiers.links import Links
from notifiers.registry import NotifierSet, UnknownNotifier
from notifiers.twilio_webhooks import TwilioWebhooks
from rituals.planning import Delivery, Occurrence, Plan
from rituals.schedule import FIRST_YEAR, LAST_YEAR
from rituals.templates import TemplateProblem
from scheduler.calendar import event_length, new_calendar
from scheduler.dispatcher import RetryPolicy
from scheduler.ledger.engine import make_engine
from scheduler.ledger.schema import SchemaBehind, current_revision, ensure_schema, upgrade
from scheduler.optouts import clear_opt_out, opted_out_at, record_opt_out
from scheduler.planner import SyncedFile, last_good_file
from scheduler.replies import handle_reply
from scheduler.service import AlreadyRunning, Worker, WorkerOptions
from scheduler.status import ledger_status
from scheduler.streaks import SeriesStreak, household_streaks
from tend.web import HEARTBEAT_STALE_SECONDS, create_app

__all__ = ["app", "main"]

app = typer.Typer(
    name="tend",
    help="Tend: rituals of connection for couples, on time, by SMS or email.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="The ritual file itself.", no_args_is_help=True)
app.add_typer(config_app, name="config")
db_app = typer.Typer(help="The ledger database.", no_args_is_help=True)
app.add_typer(db_app, name="db")

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Ritual file. Default: $TEND_CONFIG, else ./tend.toml.",
        show_default=False,
    ),
]


PartnerOption = Annotated[
    str,
    typer.Option(
        "--to",
        help="The partner: its id, or HOUSEHOLD/PARTNER when ids repeat.",
        show_default=False,
    ),
]


class PlanFormat(StrEnum):
    table = "table"
    json = "json"
    ics = "ics"


def _now() -> datetime:
    """The one place the CLI reads the clock."""
    return datetime.now(UTC)


def _settings() -> Settings:
    """The environment (and ``.env``), once; a bad variable is one clear line, exit 2."""
    try:
        return Settings()
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            name = str(error["loc"][0]) if error["loc"] else "environment"
            typer.echo(f"environment: {name.upper()}: {error['msg']}", err=True)
        raise typer.Exit(2) from None


def _load(
    config: Path | None,
    *,
    errors_to_stdout: bool,
    settings: Settings | None = None,
    fallback: Engine | None = None,
) -> tuple[Settings, LoadedFile]:
    """Settings and the ritual file; its errors, then exit 2.

    With `fallback` (a long-running process), a broken file falls back to the last good one
    that ledger kept, so a restart during a bad edit does not stop sending.
    """
    settings = settings or _settings()
    path = config or settings.config_path
    try:
        loaded = load_ritual_file(path, today=_now())
    except RitualFileError as exc:
        for line in exc.lines():
            typer.echo(line, err=not errors_to_stdout)
        kept = _last_good(fallback) if fallback is not None else None
        if kept is None:
            raise typer.Exit(2) from None
        text, synced_at = kept
        typer.echo(
            f"tend: starting on the last good ritual file, synced {synced_at:%Y-%m-%d %H:%M} "
            f"UTC; fix {path} and it is picked up within seconds",
            err=True,
        )
        loaded = parse_ritual_file(text, name=str(path), today=synced_at)  # as accepted then
    for line in loaded.warning_lines():
        typer.echo(line, err=True)
    return settings, loaded


def _last_good(engine: Engine) -> tuple[str, datetime] | None:
    try:
        return last_good_file(engine)
    except DBAPIError:  # no ledger yet, or none reachable: nothing to fall back on
        return None


@app.command()
def check(config: ConfigOption = None) -> None:
    """Validate the ritual file: exit 0 with a summary, or 2 with FILE:LINE: path: message."""
    _settings, loaded = _load(config, errors_to_stdout=True)
    file = loaded.file
    plan = Plan(file)
    now = _now()
    partners = sum(len(h.partners) for h in file.households)
    typer.echo(
        f"{loaded.path}: OK: {_count(len(file.households), 'household')}, "
        f"{_count(partners, 'partner')}, {_count(len(file.rituals), 'ritual')}"
    )
    for ritual in file.rituals:
        typer.echo(f"  {ritual.id} ({ritual.kind}, {ritual.schedule.source})")
        for household in file.households:
            if ritual.households is not None and household.id not in ritual.households:
                continue
            upcoming = plan.next_occurrence(household.id, ritual, now)
            when = (
                _local_text(upcoming.at, plan, household.id) if upcoming else "none within a year"
            )
            typer.echo(f"    next for {household.id}: {when}")


@app.command("plan")
def plan_command(
    config: ConfigOption = None,
    from_: Annotated[
        str | None,
        typer.Option(
            "--from", help="First local day, YYYY-MM-DD. Default: today.", show_default=False
        ),
    ] = None,
    days: Annotated[int, typer.Option("--days", min=1, max=366, help="Number of days.")] = 14,
    household: Annotated[
        list[str] | None, typer.Option("--household", help="Only this household (repeatable).")
    ] = None,
    format_: Annotated[
        PlanFormat, typer.Option("--format", help="Output format.")
    ] = PlanFormat.table,
) -> None:
    """Preview occurrences and their messages without sending anything."""
    _settings, loaded = _load(config, errors_to_stdout=False)
    plan = Plan(loaded.file)
    known = [h.id for h in loaded.file.households]
    for wanted in household or []:
        if wanted not in known:
            typer.echo(f"unknown household {wanted!r} (known: {', '.join(known)})", err=True)
            raise typer.Exit(2)
    now = _now()
    deliveries: list[Delivery] = []
    for h in loaded.file.households:
        if household and h.id not in household:
            continue
        if from_ is None:
            first = now.astimezone(plan.zone_of(h.id)).date()
        else:
            first = _first_day(from_, days)
        try:
            deliveries += plan.deliveries_between(first, days, [h.id])
        except TemplateProblem as exc:
            typer.echo(f"{loaded.path}: a message cannot be written: {exc}", err=True)
            raise typer.Exit(2) from None
    deliveries.sort(
        key=lambda d: (d.due_at, d.occurrence.household, d.occurrence.ritual, d.partner)
    )
    if format_ is PlanFormat.json:
        typer.echo(
            json.dumps([_delivery_json(d) for d in deliveries], indent=2, ensure_ascii=False)
        )
    elif format_ is PlanFormat.ics:
        sys.stdout.write(_calendar(loaded.file, plan, deliveries, now).to_ical().decode())
    else:
        _table(deliveries, loaded.file)


@config_app.command("schema")
def config_schema(config: ConfigOption = None) -> None:
    """Print the JSON Schema of the ritual file (for editor completion)."""
    schema = RitualFile.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    typer.echo(json.dumps(schema, indent=2))


def _first_day(text: str, days: int) -> date:
    try:
        first = date.fromisoformat(text)
    except ValueError as exc:
        typer.echo(f"--from {text!r}: {exc} (write a date like 2027-11-05)", err=True)
        raise typer.Exit(2) from None
    if first.year < FIRST_YEAR or (first + timedelta(days=days)).year > LAST_YEAR:
        typer.echo(f"--from {text!r}: Tend plans the years {FIRST_YEAR} to {LAST_YEAR}", err=True)
        raise typer.Exit(2)
    return first


def _delivery_json(delivery: Delivery) -> dict[str, Any]:
    occurrence = delivery.occurrence
    return {
        "household": occurrence.household,
        "ritual": occurrence.ritual,
        "kind": occurrence.kind,
        "occurrence": occurrence.key,
        "occurrence_local": occurrence.slot.isoformat(timespec="minutes"),
        "recipient": delivery.partner,
        "channel": delivery.channel,
        "role": delivery.role,
        "due_local": delivery.due_local.isoformat(),
        "due_utc": delivery.due_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "planner": list(occurrence.planners),
        "item": occurrence.item,
        "text": delivery.text,
    }


def _calendar(
    file: RitualFile, plan: Plan, deliveries: Sequence[Delivery], now: datetime
) -> Calendar:
    calendar = new_calendar("Tend rituals")
    seen: dict[str, Occurrence] = {}
    for delivery in deliveries:
        seen.setdefault(delivery.occurrence.key, delivery.occurrence)
    rituals = {r.id: r for r in file.rituals}
    for occurrence in sorted(seen.values(), key=lambda o: (o.at, o.key)):
        ritual = rituals[occurrence.ritual]
        names = {
            p.id: p.name
            for h in file.households
            for p in h.partners
            if h.id == occurrence.household
        }
        summary = ritual.display_name.capitalize()
        if occurrence.planners:
            summary += f" ({' and '.join(names[p] for p in occurrence.planners)} plans)"
        if occurrence.recipient:
            summary += f" for {names[occurrence.recipient]}"
        event = Event()
        event.add("uid", f"{occurrence.key}@tend")
        event.add("dtstamp", now)
        event.add("dtstart", occurrence.at)
        event.add("dtend", occurrence.at + event_length(occurrence.kind))
        event.add("summary", summary)
        if occurrence.item:
            event.add("description", occurrence.item)
        event.add("categories", [occurrence.kind])
        calendar.add_component(event)
    return calendar


def _table(deliveries: Sequence[Delivery], file: RitualFile) -> None:
    console = Console()
    if not deliveries:
        console.print("Nothing planned in that range.")
        return
    names = {(h.id, p.id): p.name for h in file.households for p in h.partners}
    several = len({d.occurrence.household for d in deliveries}) > 1
    if console.width < 120:
        _narrow(console, deliveries, names, several)
        return
    table = Table(
        title="Planned deliveries (recipient's local time)", box=box.SIMPLE_HEAD, pad_edge=False
    )
    table.add_column("day", no_wrap=True)
    table.add_column("time", no_wrap=True)
    if several:
        table.add_column("household")
    for column in ("ritual", "role", "to", "channel"):
        table.add_column(column)
    table.add_column("message", overflow="fold", ratio=1)
    last_day = None
    for delivery in deliveries:
        local = delivery.due_local
        day = f"{local:%a} {local:%d %b}"
        if last_day is not None and day != last_day:
            table.add_section()
        household = [delivery.occurrence.household] if several else []
        table.add_row(
            day if day != last_day else "",
            f"{local:%H:%M} {local:%Z}",
            *household,
            delivery.occurrence.ritual,
            delivery.role,
            names[(delivery.occurrence.household, delivery.partner)],
            delivery.channel,
            delivery.text,
        )
        last_day = day
    console.print(table)


def _narrow(
    console: Console,
    deliveries: Sequence[Delivery],
    names: dict[tuple[str, str], str],
    several: bool,
) -> None:
    """The plan for an 80-column terminal: a heading per day, the message under each row."""
    last_day = None
    for delivery in deliveries:
        local = delivery.due_local
        day = f"{local:%A %d %B %Y}"
        if day != last_day:
            console.print(f"\n[bold]{day}[/bold]")
            last_day = day
        occurrence = delivery.occurrence
        where = f"{occurrence.household} " if several else ""
        to = names[(occurrence.household, delivery.partner)]
        console.print(
            f"  [cyan]{local:%H:%M %Z}[/cyan]  {where}{occurrence.ritual} ({delivery.role}) "
            f"to {to} by {delivery.channel}",
            highlight=False,
        )
        console.print(Padding(Text(delivery.text), (0, 0, 0, 6)))


def _local_text(instant: datetime, plan: Plan, household: str) -> str:
    local = instant.astimezone(plan.zone_of(household))
    return f"{local:%a} {local:%Y-%m-%d} {local:%H:%M} {local:%Z}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def main() -> None:
    app()


# ---------------------------------------------------------------------- the service

PortOption = Annotated[
    int | None,
    typer.Option("--port", help="Web port. Default: $PORT, else 8000.", show_default=False),
]
HostOption = Annotated[str, typer.Option("--host", help="Address to listen on.")]


def _logging() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # "skipped: maximum number of running instances reached": a re-plan that outlasts the
    # 5 s file check, harmless; errors from jobs still show.
    logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)


def _engine(settings: Settings) -> Engine:
    try:
        return make_engine(settings.database_url)
    except (ValueError, ArgumentError, NoSuchModuleError) as exc:
        typer.echo(f"environment: DATABASE_URL: {exc}", err=True)
        raise typer.Exit(2) from None
    except ImportError as exc:  # a URL for a database whose driver Tend does not ship
        typer.echo(
            f"environment: DATABASE_URL: {exc.name or exc} is not installed; Tend supports "
            "sqlite:///FILE and postgresql:// (or postgres://) URLs",
            err=True,
        )
        raise typer.Exit(2) from None


def _service_file(config: Path | None) -> tuple[Settings, LoadedFile, Engine]:
    """Settings, the ritual file (or the ledger's last good one) and the ledger's engine."""
    settings = _settings()
    engine = _engine(settings)
    # With no SQLite file yet there is no last good file to fall back on, and looking for one
    # would leave an empty database behind.
    fallback = None if _no_sqlite_file(engine) else engine
    _, loaded = _load(config, errors_to_stdout=False, settings=settings, fallback=fallback)
    return settings, loaded, engine


def _unreachable(settings: Settings, exc: DBAPIError) -> NoReturn:
    """One line for a database that cannot be reached, never a traceback."""
    typer.echo(f"tend: cannot reach the database {_safe_url(settings)}: {exc.orig}", err=True)
    raise typer.Exit(2) from None


def _worker(settings: Settings, loaded: LoadedFile, engine: Engine) -> Worker:
    channels = {c for h in loaded.file.households for p in h.partners for c in p.channels}
    try:
        notifiers = NotifierSet(settings, overrides=settings.notifiers)
        notifiers.check(sorted(channels | {"console"}))
    except UnknownNotifier as exc:
        typer.echo(f"tend: cannot use a notifier (TEND_NOTIFIERS, or a plugin): {exc}", err=True)
        raise typer.Exit(2) from None
    except ValueError as exc:
        typer.echo(f"tend: {exc}", err=True)
        raise typer.Exit(2) from None
    logging.getLogger("tend").info(
        "channels: %s", notifiers.describe(sorted(channels | {"console"}))
    )
    return Worker(
        engine,
        Path(loaded.path),
        notifiers,
        clock=_now,
        options=WorkerOptions(
            horizon_days=settings.horizon_days,
            senders=settings.senders,
            retry=RetryPolicy(max_attempts=settings.max_attempts),
            claim_timeout=timedelta(seconds=settings.claim_timeout_seconds),
        ),
    )


def _start(worker: Worker) -> None:
    try:
        worker.start()
    except (SchemaBehind, AlreadyRunning) as exc:
        typer.echo(f"tend: {exc}", err=True)
        raise typer.Exit(2) from None
    except DBAPIError as exc:
        typer.echo(f"tend: cannot reach the database: {exc.orig}", err=True)
        raise typer.Exit(2) from None


def _on_signals() -> threading.Event:
    """SIGTERM and SIGINT set the returned event (uvicorn re-raises them to these handlers)."""
    stop = threading.Event()

    def handle(signum: int, _frame: object) -> None:
        logging.getLogger("tend").info("%s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    return stop


@app.command()
def worker(config: ConfigOption = None) -> None:
    """Plan and send: the scheduler process (Procfile `worker`)."""
    settings, loaded, engine = _service_file(config)
    _logging()
    process = _worker(settings, loaded, engine)
    if settings.metrics_port is not None:  # `tend web` has the ledger's; these are this process's
        from prometheus_client import start_http_server

        from scheduler.metrics import REGISTRY

        try:
            start_http_server(settings.metrics_port, registry=REGISTRY)
        except OSError as exc:
            port = settings.metrics_port
            typer.echo(f"tend: cannot serve metrics on port {port}: {exc.strerror}", err=True)
            raise typer.Exit(2) from None
    stop = _on_signals()
    _start(process)
    typer.echo(f"tend worker running on {_safe_url(settings)}; Ctrl-C stops it", err=True)
    try:
        # A timed wait, again and again: the kernel may hand SIGTERM to any thread, and then
        # the main thread, blocked in an untimed lock wait, would never run the handler.
        while not stop.wait(0.5):
            pass
    finally:
        process.stop()


@app.command()
def web(config: ConfigOption = None, port: PortOption = None, host: HostOption = "0.0.0.0") -> None:
    """Serve the HTTP endpoints (Procfile `web`)."""
    settings = _settings()
    _logging()
    engine = _engine(settings)
    try:
        ensure_schema(engine)  # SQLite: migrated here too; PostgreSQL: refused when behind
    except SchemaBehind as exc:
        typer.echo(f"tend: {exc}", err=True)
        raise typer.Exit(2) from None
    except DBAPIError as exc:
        _unreachable(settings, exc)
    listening = _listen(host, _port(port, settings))
    _serve(engine, listening, settings, _file_if_any(config or settings.config_path))


def _file_if_any(path: Path) -> RitualFile | None:
    """The ritual file on disk for `tend web`, which judges replies by the file the worker
    synced and needs this one only until a worker has run; a broken file is not fatal."""
    try:
        return load_ritual_file(path, today=_now()).file
    except RitualFileError as exc:
        logging.getLogger("tend").warning(
            "%s: not used (%d problem(s)); replies wait for a worker to sync a good file",
            path,
            len(exc.problems),
        )
        return None


def _port(port: int | None, settings: Settings) -> int:
    return settings.port if port is None else port


def _listen(host: str, port: int) -> socket.socket:
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
        typer.echo(f"tend: cannot listen on {host}:{port}: {exc.strerror}", err=True)
        raise typer.Exit(2) from None
    listening.listen(2048)
    listening.set_inheritable(True)
    return listening


def _serve(
    engine: Engine, listening: socket.socket, settings: Settings, file: RitualFile | None
) -> None:
    import uvicorn

    from tend.timeouts import with_request_timeout

    web_app = create_app(
        engine,
        links=Links.from_settings(settings),
        twilio=TwilioWebhooks.from_settings(settings),
        rituals=SyncedFile(engine, fallback=file),
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


@app.command()
def run(
    config: ConfigOption = None, port: PortOption = None, host: HostOption = "127.0.0.1"
) -> None:
    """Everything in one process: the worker and the web endpoints (SQLite by default)."""
    settings, loaded, engine = _service_file(config)
    _logging()
    process = _worker(settings, loaded, engine)
    port = _port(port, settings)
    listening = _listen(host, port)
    stop = _on_signals()
    try:
        _start(process)
        if stop.is_set():  # a signal came while starting
            return
        shown = listening.getsockname()[1]
        typer.echo(
            f"tend running on {_safe_url(settings)}: http://{host}:{shown}/healthz; "
            "Ctrl-C stops it",
            err=True,
        )
        _serve(engine, listening, settings, loaded.file)  # returns after SIGINT or SIGTERM
    finally:
        listening.close()
        stop.set()
        process.stop()


class TestChannel(StrEnum):
    sms = "sms"
    email = "email"
    console = "console"


@app.command("send-test")
def send_test(
    to: PartnerOption,
    channel: Annotated[
        TestChannel | None,
        typer.Option("--channel", help="Default: the partner's first channel.", show_default=False),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Send one real test message to a partner; print the provider id or the classified error.

    It goes through the same notifier the worker uses (console without credentials) and is
    not recorded as a delivery; a partner who opted out of the channel is not messaged, and
    an opt-out the provider reports is recorded."""
    settings, loaded = _load(config, errors_to_stdout=False)
    household, partner = _find_partner(loaded.file, to)
    chosen = channel.value if channel is not None else partner.channels[0]
    address = {"sms": partner.phone, "email": partner.email}.get(chosen, partner.name)
    if not address:
        typer.echo(f"tend: {household.id}/{partner.id} has no address for {chosen}", err=True)
        raise typer.Exit(2)
    _logging()
    where = f"{household.id}/{partner.id} by {chosen} ({mask_address(address) or address})"
    ledger = _ledger_if_any(settings)
    if ledger is not None:
        with ledger.connect() as connection:
            since = opted_out_at(connection, household.id, partner.id, chosen)
        if since is not None:
            typer.echo(
                f"failed (opted out): {where}: opted out on {since:%Y-%m-%d %H:%M} UTC "
                "(recorded in the ledger); not sent"
            )
            raise typer.Exit(1)
    try:
        notifiers = NotifierSet(settings, overrides=settings.notifiers)
        notifier = notifiers.get(chosen)
    except (UnknownNotifier, ValueError) as exc:
        typer.echo(f"tend: cannot use the {chosen} notifier: {exc}", err=True)
        raise typer.Exit(2) from None
    message = Message(
        recipient=Recipient(
            household=household.id,
            partner=partner.id,
            name=partner.name,
            phone=partner.phone,
            email=partner.email,
        ),
        channel=chosen,
        body=f"Tend test for {partner.name}: {chosen} works. Nothing to do.",
        subject="Tend: a test message",
        key=f"send-test/{household.id}/{partner.id}/{chosen}/{_now():%Y%m%dT%H%M%S.%f}",
    )
    try:
        result = notifier.send(message)
    except NotifierError as error:
        kind = "opted out" if error.opt_out else "permanent" if error.permanent else "transient"
        detail = f"; retry after {error.retry_after:g} s" if error.retry_after else ""
        if error.opt_out and ledger is not None:
            with ledger.begin() as connection:
                if record_opt_out(connection, household.id, partner.id, chosen, _now()):
                    detail += "; recorded in the ledger"
        typer.echo(f"failed ({kind}): {where}: {mask_addresses(str(error))}{detail}")
        raise typer.Exit(1) from None
    finally:
        notifiers.close()
    extra = f", {result.segments} segment(s)" if result.segments else ""
    if notifier.channel == "console" and chosen != "console":
        provider = "Twilio" if chosen == "sms" else "SMTP"
        extra += f"; printed here: no {provider} settings, so {chosen} goes to the console"
    typer.echo(f"sent: {where}: {result.provider_id} ({result.status}{extra})")


class OptChannel(StrEnum):
    sms = "sms"
    email = "email"


@app.command("opt-in")
def opt_in(
    to: PartnerOption,
    channel: Annotated[OptChannel, typer.Option("--channel", show_default=False)],
    config: ConfigOption = None,
) -> None:
    """Opt a partner back in to a channel they opted out of (STOP, an unsubscribe link).

    Only when they asked for it. A new number or address in the ritual file starts without
    the old one's opt-out anyway."""
    settings, loaded = _load(config, errors_to_stdout=False)
    household, partner = _find_partner(loaded.file, to)
    ledger = _ledger_if_any(settings)
    if ledger is None:
        typer.echo(f"tend: no ledger at {_safe_url(settings)}: nothing to change", err=True)
        raise typer.Exit(2)
    with ledger.begin() as connection:
        changed = clear_opt_out(connection, household.id, partner.id, channel.value)
    name = f"{household.id}/{partner.id}"
    if changed:
        typer.echo(f"{name} gets {channel.value} messages again")
    else:
        typer.echo(f"{name} had not opted out of {channel.value}: nothing changed")


def _no_sqlite_file(engine: Engine) -> bool:
    """An SQLite ledger whose file is not there yet (connecting would create it)."""
    database = engine.url.database
    return engine.dialect.name == "sqlite" and not (database and Path(database).exists())


def _ledger_if_any(settings: Settings) -> Engine | None:
    """The ledger's engine when there is one to read (never creates an SQLite file)."""
    engine = _engine(settings)
    if _no_sqlite_file(engine):
        return None
    try:
        with engine.connect() as connection:
            opted_out_at(connection, "", "", "sms")  # reachable, and has the partner table
    except DBAPIError:
        typer.echo(
            f"tend: note: cannot read the ledger at {_safe_url(settings)}; "
            "opt-outs are not checked",
            err=True,
        )
        return None
    return engine


def _find_partner(file: RitualFile, to: str) -> tuple[HouseholdModel, PartnerModel]:
    wanted_household, _, wanted = to.rpartition("/")
    found = [
        (h, p)
        for h in file.households
        for p in h.partners
        if p.id == wanted and wanted_household in ("", h.id)
    ]
    if len(found) == 1:
        return found[0]
    if not found:
        known = ", ".join(f"{h.id}/{p.id}" for h in file.households for p in h.partners)
        typer.echo(f"tend: no partner {to!r}; the partners are {known}", err=True)
    else:
        options = ", ".join(f"{h.id}/{p.id}" for h, p in found)
        typer.echo(f"tend: {to!r} is in several households; say which: {options}", err=True)
    raise typer.Exit(2)


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None) -> None:
    """Run the ledger's migrations up to the newest (Procfile `release`)."""
    settings = _settings()
    _logging()
    logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)
    engine = _engine(settings)
    try:
        before = current_revision(engine)
        logging.getLogger("alembic.runtime.migration").setLevel(logging.INFO)
        upgrade(engine)
        logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)
        after = current_revision(engine)
    except DBAPIError as exc:
        _unreachable(settings, exc)
    typer.echo(
        f"database at revision {after}"
        + (f" (was {before})" if before != after else " (no change)")
    )


@app.command()
def status(
    config: ConfigOption = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Next deliveries to list.")] = 10,
) -> None:
    """Next due deliveries, the workers' heartbeats, counts by status."""
    settings = _settings()
    engine = _engine(settings)
    database = engine.url.database
    if _no_sqlite_file(engine):
        typer.echo(
            f"tend: no ledger at {database} yet: start `tend run` (or `tend db upgrade`)",
            err=True,
        )
        raise typer.Exit(2)
    try:
        report = ledger_status(engine, _now(), limit=limit)
    except DBAPIError as exc:
        _unreachable(settings, exc)
    except SchemaBehind as exc:
        typer.echo(f"tend: {exc}", err=True)
        raise typer.Exit(2) from None
    # Piped (a script, a log), Rich would cut the table to 80 columns.
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(f"[bold]Ledger[/bold] {_safe_url(settings)}", highlight=False)
    if not report.workers:
        console.print("Workers: none has run yet. Start one with `tend worker` or `tend run`.")
    for beat in report.workers:
        age = (report.now - beat.beat_at).total_seconds()
        stale = not beat.stopped_at and age > HEARTBEAT_STALE_SECONDS
        if beat.stopped_at:
            state = f"stopped {_ago(report.now - beat.stopped_at)} ago"
        else:
            state = f"last heartbeat {_ago(report.now - beat.beat_at)} ago"
        if stale:
            state += " (stale: not running?)"
        role = " planner" if beat.leader and not beat.stopped_at and not stale else ""
        console.print(f"Worker {beat.worker_id}{role}: {state}", highlight=False)
    counts = ", ".join(f"{n} {s}" for s, n in sorted(report.counts.items())) or "none"
    console.print(f"Deliveries: {counts}", highlight=False)
    if report.next_due:
        table = Table(title="Next due", box=box.SIMPLE_HEAD, pad_edge=False)
        for column in ("due (UTC)", "household", "ritual", "to", "role", "channel", "status"):
            table.add_column(column, no_wrap=True)
        for row in report.next_due:
            table.add_row(
                f"{row.next_attempt_at:%Y-%m-%d %H:%M}",
                row.household_id,
                row.ritual_id,
                row.partner_key,
                row.role,
                row.channel,
                row.status,
            )
        console.print(table)
    else:
        console.print("Nothing pending.")


class StreakFormat(StrEnum):
    table = "table"
    json = "json"


def _ledger_for(settings: Settings) -> Engine:
    """The ledger's engine, migrated (SQLite) or checked (PostgreSQL); exit 2 when there is
    none yet or it cannot be reached."""
    engine = _engine(settings)
    if _no_sqlite_file(engine):
        typer.echo(
            f"tend: no ledger at {engine.url.database} yet: start `tend run` "
            "(or `tend worker`) first",
            err=True,
        )
        raise typer.Exit(2)
    try:
        ensure_schema(engine)
    except SchemaBehind as exc:
        typer.echo(f"tend: {exc}", err=True)
        raise typer.Exit(2) from None
    except DBAPIError as exc:
        _unreachable(settings, exc)
    return engine


@app.command()
def streaks(
    household: Annotated[
        str | None,
        typer.Option("--household", help="Only this household.", show_default=False),
    ] = None,
    format_: Annotated[
        StreakFormat, typer.Option("--format", help="table or json.")
    ] = StreakFormat.table,
    config: ConfigOption = None,
) -> None:
    """Current and longest streaks, per household and ritual (per partner for `to = "each"`)."""
    settings, loaded = _load(config, errors_to_stdout=False)
    file = loaded.file
    known = [h.id for h in file.households]
    if household is not None and household not in known:
        typer.echo(f"tend: unknown household {household!r} (known: {', '.join(known)})", err=True)
        raise typer.Exit(2)
    engine = _ledger_for(settings)
    now = _now()
    found: list[SeriesStreak] = []
    try:
        with engine.begin() as connection:
            for h in file.households:
                if household is None or h.id == household:
                    found += household_streaks(connection, file, h.id, now)
    except DBAPIError as exc:
        _unreachable(settings, exc)
    if format_ is StreakFormat.json:
        typer.echo(json.dumps([_streak_json(s) for s in found], indent=2, ensure_ascii=False))
        return
    console = Console(width=None if sys.stdout.isatty() else 160)
    if not found:
        console.print("No streaks yet: the ledger has no occurrences for these households.")
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("household", "ritual", "for", "current", "longest", "12-week rate", "strength"):
        table.add_column(column, no_wrap=True)
    for s in found:
        unit = " weeks" if s.streak.unit == "weeks" else ""
        rate = "-" if s.streak.rate is None else f"{s.streak.rate:.0%}"
        table.add_row(
            s.household,
            s.ritual.id,
            s.recipient or "both",
            f"{s.streak.current}{unit}",
            f"{s.streak.longest}{unit}",
            rate,
            f"{s.streak.score:.0%}",
        )
    console.print(table)


def _streak_json(s: SeriesStreak) -> dict[str, object]:
    return {
        "household": s.household,
        "ritual": s.ritual.id,
        "recipient": s.recipient,
        "current": s.streak.current,
        "longest": s.streak.longest,
        "unit": s.streak.unit,
        "kept": s.streak.kept,
        "rate_12_weeks": None if s.streak.rate is None else round(s.streak.rate, 4),
        "score": round(s.streak.score, 4),
        "freezes_left": s.streak.freezes_left,
    }


@app.command()
def reply(
    text: Annotated[str, typer.Argument(help="The reply, e.g. DONE, 'SNOOZE 2h', STREAK.")],
    sender: Annotated[
        str,
        typer.Option("--from", help="The partner's phone number (E.164).", show_default=False),
    ],
    config: ConfigOption = None,
) -> None:
    """Apply a reply exactly as the SMS webhook would (without the signature); print the
    answer it would text back."""
    settings, loaded = _load(config, errors_to_stdout=False)
    engine = _ledger_for(settings)
    _logging()
    try:
        answer = handle_reply(
            engine,
            loaded.file,
            sender=sender,
            body=text,
            provider_id=f"cli-{uuid.uuid4().hex}",
            now=_now(),
            source="cli",
        )
    except DBAPIError as exc:
        _unreachable(settings, exc)
    if answer.text:
        typer.echo(answer.text)
    elif answer.command == "stop":
        typer.echo("(no answer: Twilio answers STOP itself)")
    else:
        typer.echo(f"(no answer: {answer.command})")


@app.command("calendar-url")
def calendar_url(
    household: Annotated[
        str, typer.Option("--household", help="The household's id.", show_default=False)
    ],
    config: ConfigOption = None,
) -> None:
    """Print the household's private iCalendar feed URL (subscribe to it in a calendar app).

    Whoever has the URL can read the household's rituals. A new TEND_SECRET_KEY voids it."""
    settings = _settings()
    links = Links.from_settings(settings)
    if links is None:
        missing = [
            name
            for name, value in (
                ("TEND_PUBLIC_URL", settings.public_url),
                ("TEND_SECRET_KEY", settings.secret_key),
            )
            if value is None
        ]
        typer.echo(
            f"tend: calendar-url needs {' and '.join(missing)} set: the feed's URL is signed "
            "with the secret key, under the public base URL of `tend web`",
            err=True,
        )
        raise typer.Exit(2)
    _settings_again, loaded = _load(config, errors_to_stdout=False, settings=settings)
    known = [h.id for h in loaded.file.households]
    if household not in known:
        typer.echo(f"tend: unknown household {household!r} (known: {', '.join(known)})", err=True)
        raise typer.Exit(2)
    typer.echo(links.calendar_url(household))


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


def _safe_url(settings: Settings) -> str:
    return without_password(settings.database_url)
