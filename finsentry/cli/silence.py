"""`finsentry silence`: hold alerts back with matchers and an expiry."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.table import Table

from finsentry.cli.options import (
    console,
)
from foundation.settings import get_settings

app = typer.Typer(help="Hold alerts back: silences with matchers and an expiry.", no_args_is_help=True)


@app.command("add")
def silence_add(
    matcher: Annotated[
        list[str], typer.Option(help="NAME=VALUE over rule, scope, scope_key, severity, labels")
    ],
    duration: Annotated[str, typer.Option(help="How long, e.g. 30m, 2h, 1d")] = "2h",
    by: Annotated[str, typer.Option(help="Who silences")] = os.environ.get("USER", "unknown"),
    comment: Annotated[str, typer.Option(help="Why")] = "",
) -> None:
    """Silence the alerts that match every matcher, for a while."""
    from datetime import timedelta

    from alerts.rules import parse_duration
    from alerts.silences import add_silence, parse_matchers
    from foundation.db import open_database

    try:
        matchers, seconds = parse_matchers(matcher), parse_duration(duration)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    engine = open_database(get_settings().effective_database_url)
    silence_id = add_silence(engine, matchers, timedelta(seconds=seconds), by, comment)
    print(silence_id)


@app.command("list")
def silence_list() -> None:
    """Active and upcoming silences."""
    from alerts.silences import active_silences
    from foundation.db import open_database

    table = Table(title="silences")
    for column in ("id", "matchers", "ends (UTC)", "by", "comment"):
        table.add_column(column)
    for s in active_silences(open_database(get_settings().effective_database_url)):
        matchers = ", ".join(f"{k}={v}" for k, v in s.matchers.items())
        table.add_row(s.id, matchers, s.ends_at.strftime("%Y-%m-%d %H:%M"), s.created_by, s.comment)
    console.print(table)


@app.command("expire")
def silence_expire(silence_id: str) -> None:
    """End a silence now."""
    from alerts.silences import expire_silence
    from foundation.db import open_database

    if not expire_silence(open_database(get_settings().effective_database_url), silence_id):
        console.print(f"[red]no silence {silence_id}[/]")
        raise typer.Exit(1)
