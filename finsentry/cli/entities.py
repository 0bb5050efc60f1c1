"""`finsentry entities`: how well the watchlist finds the companies a text names."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from finsentry.cli.options import console
from foundation.settings import get_settings

app = typer.Typer(help="Company matching: measure the watchlist on labelled texts.", no_args_is_help=True)


@app.command("eval")
def entities_eval(
    file: Annotated[Path, typer.Option("--file", help='JSON lines: {"text": ..., "companies": ["id", ...]}')],
    watchlist: Annotated[
        Path | None, typer.Option(help="Watchlist YAML or CSV; default: FINSENTRY_WATCHLIST")
    ] = None,
    worst: Annotated[int, typer.Option(min=0, help="How many worst-offending companies to list")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON report")] = False,
) -> None:
    """Precision and recall of the matcher (micro, over text-company pairs), and the companies it gets
    wrong most often, with examples. Exit 2 on bad input."""
    from inference.entities import EntityMatcher, WatchlistError, load_watchlist
    from inference.entity_eval import LabelledFileError, evaluate, read_labelled

    path = watchlist or get_settings().watchlist
    try:
        if path is None:
            raise OSError("no watchlist: give --watchlist or set FINSENTRY_WATCHLIST")
        matcher = EntityMatcher(load_watchlist(path))
        result = evaluate(matcher, read_labelled(file))
    except (OSError, WatchlistError, LabelledFileError) as exc:
        console.print(f"[red]{exc}[/]", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from exc
    if as_json:
        print(json.dumps(result.as_dict(worst) | {"watchlist": str(path), "file": str(file)}, indent=2))
        return
    summary = Table("texts", "companies", "found right", "found wrong", "missed", "precision", "recall")
    summary.add_row(
        f"{result.texts:,}",
        f"{len(matcher.companies):,} ({result.labelled_companies:,} labelled)",
        f"{result.true_positives:,}",
        f"{result.false_positives:,}",
        f"{result.false_negatives:,}",
        _share(result.precision),
        _share(result.recall),
    )
    _wide().print(summary)
    if result.unknown_ids:
        console.print(f"[yellow]{result.unknown_ids} labelled ids are not in the watchlist: not counted[/]")
    offenders = result.worst(worst)
    if offenders:
        table = Table("company", "right", "wrong", "missed", "precision", "recall", "example", title="worst")
        for score in offenders:
            example = (score.wrong or score.missed)[0]
            table.add_row(
                score.id,
                str(score.true_positives),
                str(score.false_positives),
                str(score.false_negatives),
                _share(score.as_dict()["precision"]),
                _share(score.as_dict()["recall"]),
                ("wrong: " if score.wrong else "missed: ") + example[:80],
            )
        _wide().print(table)


def _wide() -> Console:
    """A pipe or a file gets 80 columns by default, too few for the examples."""
    terminal = Console()
    return terminal if terminal.is_terminal else Console(width=160)


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
