"""The ``tend`` command line. The clock and the environment are read here, and passed down."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from icalendar import Calendar, Event
from pydantic import ValidationError
from rich import box
from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text
from sqlalchemy import Engine
from sqlalchemy.exc import ArgumentError, OperationalError

from config.loader import LoadedFile, RitualFileError, load_ritual_file
from config.model import RitualFile
from config.settings import Settings, without_password
from notifiers.registry import NotifierSet, UnknownNotifier
from rituals.planning import Delivery, Occurrence, Plan
from rituals.schedule import FIRST_YEAR, LAST_YEAR
from rituals.templates import TemplateProblem
from scheduler.db import make_engine
from scheduler.dispatcher import RetryPolicy
from scheduler.migrate import SchemaBehind, current_revision, upgrade
from scheduler.service import AlreadyRunning, Worker, WorkerOptions
from scheduler.status import ledger_status
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


def _load(config: Path | None, *, errors_to_stdout: bool) -> tuple[Settings, LoadedFile]:
    settings = _settings()
    path = config or settings.config_path
    try:
        loaded = load_ritual_file(path, today=_now())
    except RitualFileError as exc:
        for line in exc.lines():
            typer.echo(line, err=not errors_to_stdout)
        raise typer.Exit(2) from None
    for line in loaded.warning_lines():
        typer.echo(line, err=True)
    return settings, loaded


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
def config_schema() -> None:
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


_EVENT_LENGTH = {
    "date_night": timedelta(hours=2),
    "check_in": timedelta(minutes=30),
}


def _calendar(
    file: RitualFile, plan: Plan, deliveries: Sequence[Delivery], now: datetime
) -> Calendar:
    calendar = Calendar()
    calendar.add("prodid", "-//Tend//Tend rituals//EN")
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", "Tend rituals")
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
        event.add(
            "dtend", occurrence.at + _EVENT_LENGTH.get(occurrence.kind, timedelta(minutes=15))
        )
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


def _engine(settings: Settings) -> Engine:
    try:
        return make_engine(settings.database_url)
    except (ValueError, ArgumentError) as exc:
        typer.echo(f"environment: DATABASE_URL: {exc}", err=True)
        raise typer.Exit(2) from None


def _worker(settings: Settings, loaded: LoadedFile, engine: Engine) -> Worker:
    channels = {c for h in loaded.file.households for p in h.partners for c in p.channels}
    try:
        notifiers = NotifierSet(settings, overrides=settings.notifiers)
        notifiers.check(sorted(channels | {"console"}))
    except UnknownNotifier as exc:
        typer.echo(f"environment: TEND_NOTIFIERS: {exc}", err=True)
        raise typer.Exit(2) from None
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
    except OperationalError as exc:
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
    settings, loaded = _load(config, errors_to_stdout=False)
    _logging()
    engine = _engine(settings)
    process = _worker(settings, loaded, engine)
    stop = _on_signals()
    _start(process)
    typer.echo(f"tend worker running on {_safe_url(settings)}; Ctrl-C stops it", err=True)
    try:
        stop.wait()
    finally:
        process.stop()


@app.command()
def web(config: ConfigOption = None, port: PortOption = None, host: HostOption = "0.0.0.0") -> None:
    """Serve the HTTP endpoints (Procfile `web`)."""
    settings = _settings()
    _logging()
    engine = _engine(settings)
    _serve(engine, host, port or settings.port)


def _serve(engine: Engine, host: str, port: int) -> None:
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(create_app(engine), host=host, port=port, log_level="info", access_log=False)
    )
    server.run()


@app.command()
def run(
    config: ConfigOption = None, port: PortOption = None, host: HostOption = "127.0.0.1"
) -> None:
    """Everything in one process: the worker and the web endpoints (SQLite by default)."""
    settings, loaded = _load(config, errors_to_stdout=False)
    _logging()
    engine = _engine(settings)
    process = _worker(settings, loaded, engine)
    stop = _on_signals()
    _start(process)
    typer.echo(
        f"tend running on {_safe_url(settings)}: http://{host}:{port or settings.port}/healthz; "
        "Ctrl-C stops it",
        err=True,
    )
    try:
        _serve(engine, host, port or settings.port)
        # uvicorn returns after a signal (or when it cannot bind); either way we stop.
    finally:
        stop.set()
        process.stop()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Run the ledger's migrations up to the newest (Procfile `release`)."""
    settings = _settings()
    _logging()
    engine = _engine(settings)
    before = current_revision(engine)
    upgrade(engine)
    after = current_revision(engine)
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
    if engine.dialect.name == "sqlite" and database and not Path(database).exists():
        typer.echo(
            f"tend: no ledger at {database} yet: start `tend run` (or `tend db upgrade`)",
            err=True,
        )
        raise typer.Exit(2)
    try:
        report = ledger_status(engine, _now(), limit=limit)
    except OperationalError as exc:
        typer.echo(f"tend: cannot read the ledger: {exc.orig}", err=True)
        raise typer.Exit(2) from None
    except SchemaBehind as exc:
        typer.echo(f"tend: {exc}", err=True)
        raise typer.Exit(2) from None
    console = Console()
    console.print(f"[bold]Ledger[/bold] {_safe_url(settings)}", highlight=False)
    if not report.workers:
        console.print("Workers: none has run yet. Start one with `tend worker` or `tend run`.")
    for beat in report.workers:
        age = (report.now - beat.beat_at).total_seconds()
        state = "stopped" if beat.stopped_at else f"last heartbeat {age:.0f} s ago"
        if not beat.stopped_at and age > HEARTBEAT_STALE_SECONDS:
            state += " (stale: not running?)"
        role = " planner" if beat.leader and not beat.stopped_at else ""
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


def _safe_url(settings: Settings) -> str:
    return without_password(settings.database_url)
