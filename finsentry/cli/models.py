"""Models from labelled files: `train`, `eval`, `export`, and `simulate-nights` of the learning loop."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from finsentry.cli.options import (
    DataFiles,
    SentimentCol,
    SentimentMap,
    SkipBadLabels,
    TextCol,
    TopicCol,
    TopicMap,
    TopicSep,
    console,
    load_sets,
    print_reports,
)
from foundation.settings import get_settings


def train(
    data: DataFiles,
    out: Annotated[Path, typer.Option(help="Bundle folder to write")],
    text_col: TextCol = "text",
    topic_col: TopicCol = None,
    sentiment_col: SentimentCol = None,
    topic_map: TopicMap = None,
    sentiment_map: SentimentMap = None,
    topic_sep: TopicSep = None,
    skip_bad_labels: SkipBadLabels = False,
    valid: Annotated[
        list[str] | None, typer.Option(help="Validation file(s), same prefixes; else 80/10/10")
    ] = None,
    base_model: Annotated[
        str | None,
        typer.Option(
            help="Base encoder: a catalogue name (finsentry base list) or a local Hugging Face folder"
        ),
    ] = None,
    epochs: int = 5,
    batch_size: int = 32,
    grad_accum: int = 1,
    lr: float = 8e-5,
    max_length: int = 64,
    patience: int = 2,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many optimiser steps")] = None,
    bf16: Annotated[
        bool | None, typer.Option("--bf16/--no-bf16", help="bf16 autocast (default: if fast)")
    ] = None,
    extend_vocab: Annotated[
        bool, typer.Option(help="Add the corpus's unknown characters to the vocabulary")
    ] = False,
    label_smoothing: Annotated[float, typer.Option(help="Label smoothing of the single-label heads")] = 0.0,
    layer_decay: Annotated[
        float, typer.Option(help="Learning rate x this per encoder layer going down (1: no decay)")
    ] = 1.0,
    language: Annotated[
        str | None, typer.Option(help="Language the bundle serves (en, zh); default: the base's")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON")] = False,
) -> None:
    """Fine-tune the topic + sentiment model and write a bundle (weights, ONNX, int8, metrics)."""
    from training.bases import describe_base, resolve_base_model
    from training.data import deduplicate, split
    from training.train import TrainConfig
    from training.train import train as run_train

    columns = (text_col, topic_col, sentiment_col, topic_map, sentiment_map, topic_sep, skip_bad_labels)
    examples, conflicts = deduplicate(load_sets(data, *columns))
    if valid:
        valid_set = load_sets(valid, *columns)
        train_set, test_set = examples, []
    else:
        train_set, valid_set, test_set = split(examples)
    console.print(
        f"rows: train {len(train_set)}, valid {len(valid_set)}, test {len(test_set)}"
        f" ({conflicts} texts with conflicting labels dropped their conflicting label)"
    )
    base_folder = resolve_base_model(base_model, get_settings().cache_dir)
    base = describe_base(base_folder)
    config = TrainConfig(
        base_model=base_folder,
        base=base,
        language=language or base.get("language"),
        label_smoothing=label_smoothing,
        layer_decay=layer_decay,
        out=out,
        epochs=epochs,
        batch_size=batch_size,
        grad_accum=grad_accum,
        lr=lr,
        max_length=max_length,
        patience=patience,
        max_steps=max_steps,
        bf16=bf16,
        extend_vocab=extend_vocab,
        progress=not as_json,
    )
    result = run_train(train_set, valid_set, test_set, config)
    if as_json:
        print(json.dumps(result.metrics, indent=2))
        return
    print_reports(result.metrics["valid"], "validation")
    console.print(
        f"bundle {result.bundle.version} → {out} (serving {result.bundle.served});"
        f" {result.seconds / 60:.1f} min, peak RSS {result.peak_rss_mib:.0f} MiB"
    )


def evaluate(
    data: DataFiles,
    model: Annotated[Path | None, typer.Option(help="Bundle folder")] = None,
    models: Annotated[
        str | None,
        typer.Option(help="A language mix: en=DIR,zh=DIR; each text is scored by its script's bundle"),
    ] = None,
    text_col: TextCol = "text",
    topic_col: TopicCol = None,
    sentiment_col: SentimentCol = None,
    topic_map: TopicMap = None,
    sentiment_map: SentimentMap = None,
    topic_sep: TopicSep = None,
    skip_bad_labels: SkipBadLabels = False,
    backend: Annotated[str, typer.Option(help="auto, onnx-int8, onnx-fp32 or torch")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON")] = False,
) -> None:
    """Score a labelled file with a bundle's served model (or a language mix with one bundle per
    language): report and confusion matrix per head."""
    from training.evaluate import evaluate_bundle, evaluate_languages

    if (model is None) == (models is None):
        raise typer.BadParameter("give --model BUNDLE or --models en=DIR,zh=DIR")
    examples = load_sets(
        data, text_col, topic_col, sentiment_col, topic_map, sentiment_map, topic_sep, skip_bad_labels
    )
    if models is not None:
        folders = get_settings().model_copy(update={"models": models}).language_models
        mixed = evaluate_languages(folders, examples, backend=backend, progress=not as_json)
        if as_json:
            print(json.dumps(mixed, indent=2, ensure_ascii=False))
            return
        for language, report in mixed["languages"].items():
            print_reports(report, f"{language}: {report['model_version']}")
        if "sentiment_accuracy_all" in mixed:
            console.print(
                f"sentiment over the whole mix: accuracy {mixed['sentiment_accuracy_all']:.3f}"
                f" on {mixed['sentiment_rows_all']} rows"
            )
        return
    assert model is not None
    reports = evaluate_bundle(model, examples, backend=backend, progress=not as_json)
    if as_json:
        print(json.dumps(reports, indent=2, ensure_ascii=False))
        return
    print_reports(reports, ", ".join(Path(p).name for p in data))
    if "unk_rate" in reports:
        console.print(f"[UNK] rate: {reports['unk_rate']:.3f}")


def export(
    model: Annotated[Path, typer.Option(help="Bundle folder to export again")],
    data: Annotated[list[Path], typer.Option(help="File(s) with real texts to check the exports on")],
    text_col: TextCol = "text",
    rows: Annotated[int, typer.Option(help="Texts to check the exports on")] = 2_000,
) -> None:
    """Export a bundle's weights to ONNX fp32 and int8 again, with the agreement checks on real text."""
    from training.data import read_rows
    from training.export import reexport

    texts = [str(row[text_col]) for path in data for row in read_rows(path) if row.get(text_col)]
    bundle = reexport(model, texts[:: max(1, len(texts) // rows)][:rows])
    console.print(json.dumps(bundle.manifest["export"], indent=2))
    console.print(f"serving {bundle.served}")


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

    from finsentry.nights import NightRow, simulate

    examples = load_sets(data, text_col, topic_col, sentiment_col, topic_map, sentiment_map)
    valid_rows = load_sets(valid, text_col, topic_col, sentiment_col, topic_map, sentiment_map)
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
