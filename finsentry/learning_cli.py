"""`finsentry label ...`, `finsentry model ...` and `finsentry trainer`: labels in, models out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from finsentry.settings import get_settings

if TYPE_CHECKING:
    from training.registry import ModelInfo

console = Console(stderr=True)
label_app = typer.Typer(help="Labelled samples: import them, count them.", no_args_is_help=True)
model_app = typer.Typer(help="The model registry: list, register, promote, roll back.", no_args_is_help=True)


@label_app.command("import")
def label_import(
    data: Annotated[list[str], typer.Argument(help="CSV/JSONL/JSON file(s); topic:/sentiment: prefixes")],
    text_col: Annotated[str, typer.Option(help="Column (or JSON key) with the text")] = "text",
    topic_col: Annotated[str | None, typer.Option(help="Column with the topic label")] = None,
    sentiment_col: Annotated[str | None, typer.Option(help="Column with the sentiment label")] = None,
    topic_map: Annotated[str | None, typer.Option(help="0=Analyst Update,... or a TSV file")] = None,
    sentiment_map: Annotated[str | None, typer.Option(help="e.g. 0=negative,1=positive,2=neutral")] = None,
    by: Annotated[str, typer.Option(help="Who labelled these")] = "import",
    source: Annotated[str | None, typer.Option(help="Where the texts come from")] = None,
) -> None:
    """Store labelled samples (deduplicated by normalised text; the newest label of a text wins)."""
    from finsentry.cli import _load_sets
    from finsentry.wiring import learning
    from labels.store import examples_to_labels

    examples = _load_sets(data, text_col, topic_col, sentiment_col, topic_map, sentiment_map)
    parts = learning(get_settings(), announce=False)
    result = parts.labels.add(examples_to_labels(examples, by, "import", source))
    counts = parts.labels.counts()
    console.print(
        f"{len(examples)} rows: {result.inserted} new, {result.updated} relabelled,"
        f" {result.unchanged} unchanged, {result.repeated} repeated; store: {counts['total']} samples,"
        f" {counts['frozen']} in the frozen evaluation set"
    )


@model_app.command("list")
def model_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Every model with its status, parent and frozen-set scores."""
    from finsentry.wiring import learning

    models = learning(get_settings(), announce=False).registry.models()
    if as_json:
        print(json.dumps([_model_dict(m) for m in models], indent=2, default=str))
        return
    table = Table("version", "status", "parent", "topic F1", "sentiment F1", "new labels", "decision")
    for m in models:
        frozen = m.metrics.get("frozen", {})
        table.add_row(
            m.version,
            m.status,
            m.parent or "",
            _f1(frozen.get("topic")),
            _f1(frozen.get("sentiment")),
            str(m.data.get("new_labels", "")),
            m.decision,
        )
    Console().print(table)


@model_app.command("register")
def model_register(
    bundle: Annotated[Path, typer.Argument(help="A bundle folder, e.g. from `finsentry train`")],
    champion: Annotated[bool, typer.Option(help="Serve it now")] = True,
) -> None:
    """Copy a bundle into the registry (and make it the champion)."""
    from finsentry.wiring import learning

    parts = learning(get_settings())
    # Everything in the store now counts as seen: the next night trains on what arrives after this.
    stamp = parts.labels.newest_label_time()
    model = parts.registry.register(
        bundle,
        "champion" if champion else "challenger",
        data={"trained_through": stamp.isoformat() if stamp else None, "registered_from": str(bundle)},
        decision="registered by hand",
    )
    console.print(f"{model.version}: {model.status} ({model.bundle_path})")


@model_app.command("promote")
def model_promote(version: str) -> None:
    """Serve VERSION now; workers switch to it."""
    from finsentry.wiring import learning

    model = learning(get_settings()).registry.promote(version)
    console.print(f"{model.version} is the champion")


@model_app.command("rollback")
def model_rollback() -> None:
    """Serve the previous champion again."""
    from finsentry.wiring import learning

    model = learning(get_settings()).registry.rollback()
    console.print(f"rolled back: {model.version} is the champion")


def trainer(
    now: Annotated[bool, typer.Option("--now", help="Run one night now and exit")] = False,
    force: Annotated[bool, typer.Option(help="With --now: train even with few new labels")] = False,
    max_steps: Annotated[int | None, typer.Option(help="Cap the optimiser steps of a night")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="With --now: print the result as JSON")] = False,
) -> None:
    """Run the nightly fine-tuning on its schedule (FINSENTRY_TRAIN_CRON), or once with --now."""
    from finsentry.trainer import run_night, run_scheduler

    settings = get_settings()
    if not now:
        run_scheduler(settings)
        return
    result = run_night(settings, force=force, **({"max_steps": max_steps} if max_steps else {}))
    if as_json:
        print(
            json.dumps(
                {
                    "status": result.status,
                    "version": result.version,
                    "detail": result.detail,
                    "metrics": result.metrics,
                },
                indent=2,
            )
        )
    else:
        console.print(f"{result.status}: {result.detail}", f"({result.version})" if result.version else "")
    if result.status == "failed":
        raise typer.Exit(1)


def _f1(report: dict | None) -> str:
    return f"{report['macro_f1']:.4f}" if report else ""


def _model_dict(model: ModelInfo) -> dict:
    from dataclasses import asdict

    return asdict(model)


def simulate_nights(
    data: Annotated[list[str], typer.Option(help="Training file(s); topic:/sentiment: prefixes")],
    valid: Annotated[list[str], typer.Option(help="Validation file(s) to score every model on")],
    home: Annotated[Path, typer.Option(help="A fresh folder for this run's database and registry")],
    text_col: Annotated[str, typer.Option(help="Column (or JSON key) with the text")] = "text",
    topic_col: Annotated[str | None, typer.Option(help="Column with the topic label")] = None,
    sentiment_col: Annotated[str | None, typer.Option(help="Column with the sentiment label")] = None,
    topic_map: Annotated[str | None, typer.Option(help="0=Analyst Update,... or a TSV file")] = None,
    sentiment_map: Annotated[str | None, typer.Option(help="e.g. 0=negative,1=positive,2=neutral")] = None,
    epochs: Annotated[int, typer.Option(help="Epochs of each night")] = 1,
    first_epochs: Annotated[int, typer.Option(help="Epochs of the first model, from the base")] = 2,
    max_steps: Annotated[int | None, typer.Option(help="Cap the optimiser steps of a night")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the nights as JSON")] = False,
) -> None:
    """Replay the learning loop on a data set: seed half, three nights of labels, one shuffled night."""
    from dataclasses import asdict

    from finsentry.cli import _load_sets
    from finsentry.nights import NightRow, simulate

    examples = _load_sets(data, text_col, topic_col, sentiment_col, topic_map, sentiment_map)
    valid_rows = _load_sets(valid, text_col, topic_col, sentiment_col, topic_map, sentiment_map)
    valid_sets = {
        "topic": [ex for ex in valid_rows if ex.topic is not None],
        "sentiment": [ex for ex in valid_rows if ex.sentiment is not None],
    }
    valid_sets = {head: rows for head, rows in valid_sets.items() if rows}
    settings = get_settings().model_copy(update={"home": home, "database_url": "", "model_dir": None})
    console.print(
        f"{len(examples)} training rows; valid: {', '.join(f'{h} {len(r)}' for h, r in valid_sets.items())}"
    )

    def show(row: NightRow) -> None:
        console.print(f"[bold]{row.night}[/]: {row.status} {row.version or ''} {_valid_line(row.valid)}")
        console.print(f"  {row.decision}")

    overrides = {"epochs": epochs} | ({"max_steps": max_steps} if max_steps else {})
    rows = simulate(settings, examples, valid_sets, first_epochs, on_night=show, **overrides)
    if as_json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
        return
    table = Table("night", "new labels", "status", "version", *(f"{h} acc / F1" for h in valid_sets))
    for r in rows:
        figures = [
            f"{r.valid[h]['accuracy']:.3f} / {r.valid[h]['macro_f1']:.3f}" if h in r.valid else ""
            for h in valid_sets
        ]
        table.add_row(r.night, str(r.new_labels), r.status, r.version or "", *figures)
    Console().print(table)


def _valid_line(valid: dict) -> str:
    return " ".join(f"{h} acc {v['accuracy']:.3f} F1 {v['macro_f1']:.3f}" for h, v in valid.items())


def api(
    host: Annotated[str | None, typer.Option(help="Bind address (FINSENTRY_API_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (FINSENTRY_API_PORT)")] = None,
) -> None:
    """Serve the HTTP API (writes need FINSENTRY_API_TOKEN as a bearer token; OpenAPI at /docs)."""
    import uvicorn

    from api import create_app
    from finsentry.wiring import learning

    settings = get_settings()
    if settings.api_token is None:
        raise typer.BadParameter("set FINSENTRY_API_TOKEN: writes need a bearer token")
    app = create_app(learning(settings), settings.api_token.get_secret_value())
    uvicorn.run(app, host=host or settings.api_host, port=port or settings.api_port, log_config=None)
