"""Commands about the ledger: ``tend db upgrade``, ``tend status``, ``tend streaks``,
``tend reply``, ``tend calendar-url`` and ``tend page-url``."""

from __future__ import annotations

import json
import logging
import sys
import uuid
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from tend.cli.common import (
    ConfigOption,
    HouseholdOption,
    Usage,
    handled,
    ledger_for,
    load_file,
    now,
    open_ledger,
    safe_url,
)
from tend.cli.common import settings as read_settings
from tend.cli.service import logging_setup

if TYPE_CHECKING:  # the ledger's reports and the web load when a command runs
    from pathlib import Path

    from rich.console import Console

    from config.model import RitualFile
    from config.settings import Settings
    from notifiers.links import Links
    from scheduler.ledger import Ledger
    from scheduler.reports.history import RitualHistory, State
    from scheduler.reports.status import LedgerStatus
    from scheduler.reports.streaks import SeriesStreak

__all__ = ["calendar_url", "db_app", "db_upgrade", "page_url", "reply", "status", "streaks"]

db_app = typer.Typer(help="The ledger database.", no_args_is_help=True)


@db_app.command("upgrade")
@handled
def db_upgrade(config: ConfigOption = None) -> None:
    """Run the ledger's migrations up to the newest (Procfile `release`)."""
    settings = read_settings()
    logging_setup()
    migrations = logging.getLogger("alembic.runtime.migration")
    migrations.setLevel(logging.WARNING)
    ledger = open_ledger(settings)
    before = ledger.current_revision()
    migrations.setLevel(logging.INFO)
    ledger.upgrade()
    migrations.setLevel(logging.WARNING)
    after = ledger.current_revision()
    typer.echo(
        f"database at revision {after}"
        + (f" (was {before})" if before != after else " (no change)")
    )


@handled
def status(
    config: ConfigOption = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Next deliveries to list.")] = 10,
    household: Annotated[
        str | None,
        typer.Option("--household", help="Only this household's deliveries.", show_default=False),
    ] = None,
) -> None:
    """Next due deliveries (in UTC and on the recipient's clock), the workers' heartbeats,
    counts by status."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from scheduler.reports.status import due_text, ledger_status

    settings = read_settings()
    ledger = open_ledger(settings)
    if ledger.missing_sqlite_file():
        raise Usage(
            f"tend: no ledger at {ledger.sqlite_path} yet: start `tend run` (or `tend db upgrade`)"
        )
    report = ledger_status(ledger, now(), limit=limit, household=household)
    if household is not None and household not in (known := ledger.reports.household_ids()):
        raise Usage(
            f"tend: the ledger has no household {household!r} "
            f"(it has: {', '.join(known) or 'none yet'})"
        )
    # Piped (a script, a log), Rich would cut the table to 80 columns.
    console = Console(width=None if sys.stdout.isatty() else 160)
    console.print(f"[bold]Ledger[/bold] {safe_url(settings)}", highlight=False)
    _workers(console, report)
    if report.problems:
        console.print(
            "Ritual file problems, as the planner last read the files (each file named runs "
            "on its last good version meanwhile):",
            highlight=False,
        )
        for line in report.problems:
            console.print(f"  {line}", highlight=False, markup=False)
    counts = ", ".join(f"{n} {s}" for s, n in sorted(report.counts.items())) or "none"
    whose = f" ({household})" if household is not None else ""
    console.print(f"Deliveries{whose}: {counts}", highlight=False)
    if report.next_due:
        table = Table(title="Next due", box=box.SIMPLE_HEAD, pad_edge=False)
        for column in ("due", "household", "ritual", "to", "role", "channel", "status"):
            table.add_column(column, no_wrap=True)
        for row in report.next_due:
            table.add_row(
                due_text(row.next_attempt_at, row.timezone),
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


def _workers(console: Console, report: LedgerStatus) -> None:
    """The workers' lines: each one's last heartbeat (or stop), and which one plans."""
    from tend.web.health import HEARTBEAT_STALE_SECONDS

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


class StreakFormat(StrEnum):
    table = "table"
    json = "json"
    svg = "svg"


#: ``tend streaks --history``: a character per occurrence, a different one per state, so
#: the picture reads without colour too.
GLYPHS: dict[State, str] = {
    "both": "■",
    "one": "▪",
    "freeze": "◇",
    "paused": "‖",
    "missed": "·",
    "failed": "\u00d7",
    "open": "○",
}


@handled
def streaks(
    household: Annotated[
        str | None,
        typer.Option("--household", help="Only this household.", show_default=False),
    ] = None,
    format_: Annotated[
        StreakFormat,
        typer.Option(
            "--format",
            help="table or json; svg: the history heatmap of one household, as SVG.",
        ),
    ] = StreakFormat.table,
    history: Annotated[
        bool,
        typer.Option(
            "--history",
            help="The last 12 months, a character per occurrence (with --format json: as JSON).",
        ),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Current and longest streaks, per household and ritual (per partner for `to = "each"`);
    with --history or --format svg, the history heatmap."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    from rituals.streaks import weeks_text
    from scheduler.reports.streaks import household_streaks

    settings, loaded = load_file(config, household=household)
    file = loaded.file
    known = [h.id for h in file.households]
    if household is not None and household not in known:
        raise Usage(f"tend: unknown household {household!r} (known: {', '.join(known)})")
    ledger = ledger_for(settings)
    if history or format_ is StreakFormat.svg:
        _history(ledger, file, household, format_)
        return
    moment = now()
    found: list[SeriesStreak] = []
    with ledger.transaction() as tx:
        for h in file.households:
            if household is None or h.id == household:
                found += household_streaks(tx, file, h.id, moment)
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
        counted = weeks_text if s.streak.unit == "weeks" else str
        rate = "-" if s.streak.rate is None else f"{s.streak.rate:.0%}"
        table.add_row(
            s.household,
            s.ritual.id,
            s.recipient or "both",
            counted(s.streak.current),
            counted(s.streak.longest),
            rate,
            f"{s.streak.score:.0%}",
        )
    console.print(table)


def _history(
    ledger: Ledger, file: RitualFile, household: str | None, format_: StreakFormat
) -> None:
    """``tend streaks --history`` (and ``--format svg``): the heatmap of the last 12 months."""
    from rich.console import Console
    from rich.text import Text

    from scheduler.reports.heatmap import COLOURS, heatmap_svg
    from scheduler.reports.history import LABELS, STATES, household_history

    chosen = [h.id for h in file.households if household is None or h.id == household]
    if format_ is StreakFormat.svg and len(chosen) != 1:
        raise Usage(
            "tend: --format svg draws one household: name it with --household "
            f"(known: {', '.join(chosen)})"
        )
    moment = now()
    found: list[tuple[str, tuple[RitualHistory, ...]]] = []
    with ledger.transaction() as tx:
        for h in chosen:
            found.append((h, household_history(tx, file, h, moment)))
    if format_ is StreakFormat.svg:
        h, rows = found[0]
        zone = next(x for x in file.households if x.id == h).zones(file.timezone)[0]
        today = moment.astimezone(zone).date()
        typer.echo(heatmap_svg(rows, today=today, title=f"History of {h}"))
        return
    if format_ is StreakFormat.json:
        typer.echo(
            json.dumps(
                [
                    {
                        "household": h,
                        "ritual": r.ritual,
                        "title": r.title,
                        "recipient": r.recipient,
                        "weekly": r.weekly,
                        "cells": [
                            {"day": c.day.isoformat(), "state": c.state, "note": c.note}
                            for c in r.cells
                        ],
                    }
                    for h, rows in found
                    for r in rows
                ],
                indent=2,
                ensure_ascii=False,
            )
        )
        return
    # The width the terminal (or COLUMNS) gives; week groups wrap at it.
    console = Console(highlight=False)
    # The legend, each state's glyph and label kept on one line.
    legend: list[Text] = [Text()]
    for state in STATES:
        item = Text(GLYPHS[state], style=COLOURS[state]).append(f" {LABELS[state]}")
        if legend[-1] and len(legend[-1]) + 2 + len(item) > console.width:
            legend.append(Text())
        if legend[-1]:
            legend[-1].append("  ")
        legend[-1].append_text(item)
    for h, rows in found:
        console.print(Text(f"History of {h}, the last 12 months", style="bold"))
        if not any(r.cells for r in rows):
            console.print("  Nothing yet: no occurrence was due.")
        for r in rows:
            console.print(Text(f"  {r.title}", style="bold"))
            line = Text("  ")
            week = None
            for cell in r.cells:
                this = cell.day.isocalendar()[:2]
                if week is not None and this != week and not r.weekly:
                    line.append(" ")  # a week's occurrences together
                week = this
                line.append(GLYPHS[cell.state], style=COLOURS[cell.state])
            console.print(line if r.cells else Text("  (none yet)"))
    for line in legend:
        console.print(line)


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


@handled
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
    from notifiers.links import Links
    from scheduler.acts.replies import handle_reply

    settings, loaded = load_file(config)
    ledger = ledger_for(settings)
    logging_setup()
    answer = handle_reply(
        ledger,
        loaded.file,
        sender=sender,
        body=text,
        provider_id=f"cli-{uuid.uuid4().hex}",
        now=now(),
        source="cli",
        links=Links.from_settings(settings),
    )
    if answer.text:
        typer.echo(answer.text)
    elif answer.command == "stop":
        typer.echo("(no answer: Twilio answers STOP itself)")
    else:
        typer.echo(f"(no answer: {answer.command})")


@handled
def calendar_url(
    household: HouseholdOption,
    partner: Annotated[
        str | None,
        typer.Option(
            "--partner",
            help="A partner's own feed: the shared rituals and their own nudges.",
            show_default=False,
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Print the household's private iCalendar feed URL (subscribe to it in a calendar app):
    what both partners share, or with --partner that and the partner's own nudges.

    Whoever has the URL can read those rituals. A new TEND_SECRET_KEY voids it."""
    settings = read_settings()
    links = _signed_links(settings, "calendar-url", "the feed's URL")
    _household_partner(config, settings, household, partner)
    typer.echo(links.calendar_url(household, partner))


def _signed_links(settings: Settings, command: str, what: str) -> Links:
    """The deployment's signed links; exit 2 without a public URL and a secret key."""
    from notifiers.links import Links

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
        raise Usage(
            f"tend: {command} needs {' and '.join(missing)} set: {what} is signed "
            "with the secret key, under the public base URL of `tend web`"
        )
    return links


def _household_partner(
    config: Path | None, settings: Settings, household: str, partner: str | None
) -> None:
    """Exit 2 unless the ritual file has `household` (and `partner` in it)."""
    _settings_again, loaded = load_file(config, settings_=settings, household=household)
    found = {h.id: h for h in loaded.file.households}
    if household not in found:
        raise Usage(f"tend: unknown household {household!r} (known: {', '.join(found)})")
    partners = [p.id for p in found[household].partners]
    if partner is not None and partner not in partners:
        raise Usage(
            f"tend: {household} has no partner {partner!r} (its partners: {', '.join(partners)})"
        )


@handled
def page_url(
    household: HouseholdOption,
    partner: Annotated[
        str | None,
        typer.Option(
            "--partner",
            help="A partner's own page: their nudges too, and DONE and SKIP buttons.",
            show_default=False,
        ),
    ] = None,
    rotate: Annotated[
        bool,
        typer.Option("--rotate", help="Revoke the page's earlier URLs and print a new one."),
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Print the couple's private page URL: the history heatmap, streaks, what is coming,
    and (with --partner) that partner's DONE and SKIP buttons.

    Whoever has the URL sees the page (a partner's URL can press its buttons). --rotate
    revokes every earlier URL of that page; a new TEND_SECRET_KEY revokes them all."""
    settings = read_settings()
    links = _signed_links(settings, "page-url", "the page's URL")
    _household_partner(config, settings, household, partner)
    ledger = ledger_for(settings)
    if rotate:
        generation = ledger.pages.rotate(household, partner, now())
    else:
        generation = ledger.pages.generation(household, partner)
    typer.echo(links.page_url(household, partner, generation))


def _ago(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"
