"""The ``tend`` command line, a family of commands per module:

- :mod:`.files`: ``tend check``, ``tend plan``, ``tend config schema`` (the ritual file);
- :mod:`.service`: ``tend run``, ``tend worker``, ``tend web`` (the service);
- :mod:`.partners`: ``tend send-test``, ``tend opt-in`` (a partner's channels);
- :mod:`.ledger`: ``tend db upgrade``, ``tend status``, ``tend streaks``, ``tend reply``,
  ``tend calendar-url``, ``tend page-url`` (the ledger).

The clock and the environment are read here, and passed down; errors become lines and exit
codes in one place (:func:`tend.cli.common.handled`).
"""

from __future__ import annotations

import typer

from tend.cli import files, ledger, partners, service

__all__ = ["app", "main"]

app = typer.Typer(
    name="tend",
    help="Tend: rituals of connection for couples, on time, by SMS or email.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("check")(files.check)
app.command("plan")(files.plan_command)
app.add_typer(files.config_app, name="config")
app.add_typer(ledger.db_app, name="db")
app.command("worker")(service.worker)
app.command("web")(service.web)
app.command("run")(service.run)
app.command("send-test")(partners.send_test)
app.command("opt-in")(partners.opt_in)
app.command("status")(ledger.status)
app.command("streaks")(ledger.streaks)
app.command("reply")(ledger.reply)
app.command("calendar-url")(ledger.calendar_url)
app.command("page-url")(ledger.page_url)


def main() -> None:
    app()
