"""`finsentry base`: the catalogue of base encoders, fetched and converted once into the cache."""

from __future__ import annotations

import time

import typer
from rich.console import Console
from rich.table import Table

from finsentry.cli.options import (
    console,
)
from foundation.settings import get_settings

app = typer.Typer(
    help="Base encoders to fine-tune from: list the catalogue, fetch one.", no_args_is_help=True
)


@app.command("list")
def base_list() -> None:
    """Every catalogue encoder, and where it is ready on this machine."""
    from training.bases import CATALOGUE, prepared_folder

    cache = get_settings().cache_dir
    table = Table(title="base encoders")
    table.add_column("name", no_wrap=True)
    for column in ("language", "parameters", "size", "licence", "source", "prepared"):
        table.add_column(column)
    for base in CATALOGUE.values():
        folder = prepared_folder(base, cache)
        table.add_row(
            base.name,
            base.language,
            f"{base.parameters / 1e6:.1f}M",
            f"{base.size_mb:.0f} MB",
            base.licence,
            base.source,
            f"yes: {folder}" if folder else f"no (finsentry base fetch {base.name})",
        )
    Console().print(table)


@app.command("fetch")
def base_fetch(name: str) -> None:
    """Fetch, convert and check NAME once, so training can start from it."""
    from training.bases import BaseModelError, describe_base, find_base, prepare_base, unknown_base

    base = find_base(name)
    started = time.monotonic()
    try:
        if base is None:
            raise unknown_base(name)
        with console.status(f"preparing {base.name}") as status:
            folder = prepare_base(base, get_settings().cache_dir, progress=status.update)
    except BaseModelError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc
    difference = describe_base(folder).get("max_abs_diff")
    check = "" if difference is None else f", max abs difference to the ONNX graph {difference:.2g}"
    console.print(f"{base.name}: ready in {time.monotonic() - started:.0f} s{check}")
    print(folder)
