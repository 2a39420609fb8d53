"""Commands about the ritual file itself: ``tend check``, ``tend plan``, ``tend config
schema`` and ``tend config split``. They read the file and the clock (split writes the
directory it is given); nothing is sent, and the ledger is not opened."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from config.directory import is_ritual_directory
from config.model import RitualFile
from rituals.planning import Delivery, Plan
from rituals.schedule import FIRST_YEAR, LAST_YEAR
from rituals.templates import TemplateProblem
from tend.cli.common import ConfigOption, Usage, handled, load_file, now

if TYPE_CHECKING:  # Rich draws the plan's table; `tend check` needs none of it
    from rich.console import Console

__all__ = ["check", "config_app", "plan_command"]

config_app = typer.Typer(help="The ritual file itself.", no_args_is_help=True)


class PlanFormat(StrEnum):
    table = "table"
    json = "json"
    ics = "ics"


@handled
def check(config: ConfigOption = None) -> None:
    """Validate the ritual file, or every file of a ritual directory: exit 0 with a summary,
    or 2 with FILE:LINE: path: message for every problem of every file."""
    _settings, loaded = load_file(config, errors_to_stdout=True)
    file = loaded.file
    plan = Plan(file)
    moment = now()
    partners = sum(len(h.partners) for h in file.households)
    # A directory's files: rituals.toml and one per household (any broken one is reported).
    files = (
        f" in {_count(len(file.households) + 1, 'file')}"
        if is_ritual_directory(loaded.path)
        else ""
    )
    typer.echo(
        f"{loaded.path}: OK: {_count(len(file.households), 'household')}{files}, "
        f"{_count(partners, 'partner')}, {_count(len(file.rituals), 'ritual')}"
    )
    for ritual in file.rituals:
        typer.echo(f"  {ritual.id} ({ritual.kind}, {ritual.schedule.source})")
        for household in file.households:
            if ritual.households is not None and household.id not in ritual.households:
                continue
            upcoming = plan.next_occurrence(household.id, ritual, moment)
            when = (
                _local_text(upcoming.at, plan, household.id) if upcoming else "none within a year"
            )
            typer.echo(f"    next for {household.id}: {when}")


@handled
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
    """Preview occurrences and their messages without sending anything.

    With --household, a ritual directory is read only as far as those households need."""
    _settings, loaded = load_file(config, household=household or None)
    file = loaded.file
    known = [h.id for h in file.households]
    for wanted in household or []:
        if wanted not in known:
            raise Usage(f"unknown household {wanted!r} (known: {', '.join(known)})")
    moment = now()
    deliveries = _planned(file, loaded.path, moment, from_, days, household)
    if format_ is PlanFormat.json:
        typer.echo(
            json.dumps([_delivery_json(d) for d in deliveries], indent=2, ensure_ascii=False)
        )
    elif format_ is PlanFormat.ics:
        from scheduler.reports.calendar import plan_calendar

        sys.stdout.write(plan_calendar(file, deliveries, moment).to_ical().decode())
    else:
        _table(deliveries, file)


def _planned(
    file: RitualFile,
    path: str,
    moment: datetime,
    from_: str | None,
    days: int,
    households: list[str] | None,
) -> list[Delivery]:
    plan = Plan(file)
    deliveries: list[Delivery] = []
    for h in file.households:
        if households and h.id not in households:
            continue
        if from_ is None:
            first = moment.astimezone(plan.zone_of(h.id)).date()
        else:
            first = _first_day(from_, days)
        try:
            deliveries += plan.deliveries_between(first, days, [h.id])
        except TemplateProblem as exc:
            raise Usage(f"{path}: a message cannot be written: {exc}") from None
    deliveries.sort(
        key=lambda d: (d.due_at, d.occurrence.household, d.occurrence.ritual, d.partner)
    )
    return deliveries


@config_app.command("schema")
@handled
def config_schema(config: ConfigOption = None) -> None:
    """Print the JSON Schema of the ritual file (for editor completion)."""
    schema = RitualFile.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    typer.echo(json.dumps(schema, indent=2))


@config_app.command("split")
@handled
def config_split(
    file: Annotated[Path, typer.Argument(help="The ritual file.", show_default=False)],
    directory: Annotated[
        Path,
        typer.Argument(help="The ritual directory to make (new or empty).", show_default=False),
    ],
) -> None:
    """Turn one ritual file into a ritual directory: DIR/rituals.toml (rituals, decks,
    defaults) and DIR/households/ID.toml, one household per file. FILE is left as it is."""
    from config.directory import HOUSEHOLDS, RITUALS
    from config.loader import RitualFileError, decode
    from config.split import split_ritual_file

    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise Usage(
            f"tend: {directory} exists and is not an empty directory; give a new one "
            "(nothing was written)"
        )
    if file.is_dir():
        raise Usage(f"tend: {file} is a directory; give the ritual file to split")
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise Usage(f"tend: cannot read {file}: {exc.strerror or exc}") from None
    try:
        split = split_ritual_file(decode(raw, str(file)), name=str(file), today=now())
    except RitualFileError as exc:
        raise Usage(
            *exc.lines(), f"tend: {file} has errors: fix them first (nothing was written)"
        ) from None
    (directory / HOUSEHOLDS).mkdir(parents=True, exist_ok=True)
    (directory / RITUALS).write_text(split.rituals, encoding="utf-8")
    for household, text in split.households.items():
        (directory / HOUSEHOLDS / f"{household}.toml").write_text(text, encoding="utf-8")
    typer.echo(
        f"{directory}: wrote {RITUALS} and {_count(len(split.households), 'household file')} "
        f"in {HOUSEHOLDS}/; check it with: tend check --config {directory}"
    )
    if not split.cut:
        typer.echo(
            f"tend: note: the households were written from their data (as {file} has them "
            "inline, or laid out in a way the cut does not follow): comments in them are "
            "not kept",
            err=True,
        )


def _first_day(text: str, days: int) -> date:
    try:
        first = date.fromisoformat(text)
    except ValueError as exc:
        raise Usage(f"--from {text!r}: {exc} (write a date like 2027-11-05)") from None
    if first.year < FIRST_YEAR or (first + timedelta(days=days)).year > LAST_YEAR:
        raise Usage(f"--from {text!r}: Tend plans the years {FIRST_YEAR} to {LAST_YEAR}")
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
        "deck": occurrence.deck,
        "text": delivery.text,
    }


def _table(deliveries: Sequence[Delivery], file: RitualFile) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

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
    for column in ("ritual", "deck", "role", "to", "channel"):
        table.add_column(column)
    table.add_column("message", overflow="fold", ratio=1)
    last_day = None
    for delivery in deliveries:
        local = delivery.due_local
        day = f"{local:%a} {local:%d %b}"
        if last_day is not None and day != last_day:
            table.add_section()
        household = [delivery.occurrence.household] if several else []
        # Text, not str: Rich would read a str as markup and emoji codes ("[laugh]" vanishes,
        # ":heart:" turns into a heart), and the preview must show what is sent. Text is also
        # far cheaper to measure and draw.
        cells = (
            day if day != last_day else "",
            f"{local:%H:%M} {local:%Z}",
            *household,
            delivery.occurrence.ritual,
            delivery.occurrence.deck or "",
            delivery.role,
            names[(delivery.occurrence.household, delivery.partner)],
            delivery.channel,
            delivery.text,
        )
        table.add_row(*(Text(cell) for cell in cells))
        last_day = day
    console.print(table)


def _narrow(
    console: Console,
    deliveries: Sequence[Delivery],
    names: dict[tuple[str, str], str],
    several: bool,
) -> None:
    """The plan for an 80-column terminal: a heading per day, the message under each row
    (printed at once: a print per line costs Rich a render each)."""
    from rich.console import Group
    from rich.padding import Padding
    from rich.text import Text

    lines: list[Text | Padding] = []
    last_day = None
    for delivery in deliveries:
        local = delivery.due_local
        day = f"{local:%A %d %B %Y}"
        if day != last_day:
            lines.append(Text.assemble("\n", (day, "bold")))
            last_day = day
        occurrence = delivery.occurrence
        where = f"{occurrence.household} " if several else ""
        to = names[(occurrence.household, delivery.partner)]
        deck = f", deck {occurrence.deck}" if occurrence.deck else ""
        lines.append(
            Text.assemble(
                "  ",
                (f"{local:%H:%M %Z}", "cyan"),
                f"  {where}{occurrence.ritual} ({delivery.role}) to {to} by {delivery.channel}"
                f"{deck}",
            )
        )
        lines.append(Padding(Text(delivery.text), (0, 0, 0, 6)))
    console.print(Group(*lines))


def _local_text(instant: datetime, plan: Plan, household: str) -> str:
    local = instant.astimezone(plan.zone_of(household))
    return f"{local:%a} {local:%Y-%m-%d} {local:%H:%M} {local:%Z}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
