"""Models from labelled files: `train`, `eval`, `export`, `distill`, `soup`, and `simulate-nights` of
the learning loop."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from finsentry.cli.options import DataFiles, LabelColumns, console, label_columns, print_reports
from foundation.settings import get_settings

Int8MaxDrop = Annotated[
    float,
    typer.Option(
        help="Points of accuracy or macro-F1 (any head) an int8 export may lose and still be served"
    ),
]


@label_columns()
def train(
    data: DataFiles,
    out: Annotated[Path, typer.Option(help="Bundle folder to write")],
    columns: LabelColumns,
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
    class_weights: Annotated[
        bool, typer.Option(help="Weigh rare classes up in the single-label losses (square-root damped)")
    ] = True,
    layer_decay: Annotated[
        float, typer.Option(help="Learning rate x this per encoder layer going down (1: no decay)")
    ] = 1.0,
    language: Annotated[
        str | None, typer.Option(help="Language the bundle serves (en, zh); default: the base's")
    ] = None,
    int8_max_drop: Int8MaxDrop = 0.5,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON")] = False,
) -> None:
    """Fine-tune the topic + sentiment model and write a bundle (weights, ONNX, int8, metrics)."""
    from training.bases import describe_base, resolve_base_model
    from training.data import deduplicate, split
    from training.train import TrainConfig
    from training.train import train as run_train

    examples, conflicts = deduplicate(columns.load(data))
    if valid:
        valid_set = columns.load(valid)
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
        class_weights=class_weights,
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
        int8_max_drop=int8_max_drop / 100,
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


@label_columns()
def distill(
    teacher: Annotated[Path, typer.Option(help="The bundle to distil (its labels, tokenizer and layers)")],
    layers: Annotated[int, typer.Option(help="Encoder layers of the student")],
    data: DataFiles,
    out: Annotated[Path, typer.Option(help="Bundle folder to write the student to")],
    valid: Annotated[list[str], typer.Option(help="Validation file(s): best epoch, thresholds, gates")],
    columns: LabelColumns,
    pick: Annotated[
        str, typer.Option(help="Teacher layers to keep: spread (ends at the top one) or first")
    ] = "spread",
    epochs: int = 4,
    lr: float = 1e-4,
    temperature: Annotated[float, typer.Option(help="Softening of the teacher's logits")] = 2.0,
    alpha: Annotated[float, typer.Option(help="Weight of the teacher's soft targets vs the labels")] = 0.7,
    max_drop: Annotated[
        float,
        typer.Option(help="Points below the teacher (any head, any figure) a servable student may fall"),
    ] = 3.0,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many optimiser steps")] = None,
    int8_max_drop: Int8MaxDrop = 0.5,
    seed: Annotated[int, typer.Option(help="Batch order and dropout; another seed, another student")] = 13,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON")] = False,
) -> None:
    """Distil a bundle into a student with fewer layers, or as many (self-distillation), on the teacher's
    logits and the labels."""
    from training.data import deduplicate
    from training.distill import DistillConfig, DistillError
    from training.distill import distill as run_distill

    config = DistillConfig(
        teacher=teacher,
        out=out,
        layers=layers,
        pick=pick,
        epochs=epochs,
        lr=lr,
        temperature=temperature,
        alpha=alpha,
        max_drop=max_drop / 100,
        max_steps=max_steps,
        int8_max_drop=int8_max_drop / 100,
        seed=seed,
        progress=not as_json,
    )
    try:
        train_set, _ = deduplicate(columns.load(data))
        result = run_distill(train_set, columns.load(valid), config)
    except DistillError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if as_json:
        print(json.dumps(result.metrics, indent=2))
        return
    print_reports(result.metrics["teacher_valid"], "teacher, validation")
    print_reports(result.metrics["valid"], f"student ({layers} layers), validation")
    bundle = result.bundle
    verdict = (
        f"serving {bundle.served}"
        if bundle.servable
        else f"NOT servable: {bundle.manifest['not_servable_because']}"
    )
    console.print(
        f"student {bundle.version} → {out} ({verdict}); {result.seconds / 60:.1f} min,"
        f" peak RSS {result.peak_rss_mib:.0f} MiB"
    )


@label_columns()
def evaluate(
    data: DataFiles,
    columns: LabelColumns,
    model: Annotated[Path | None, typer.Option(help="Bundle folder")] = None,
    models: Annotated[
        str | None,
        typer.Option(help="A language mix: en=DIR,zh=DIR; each text is scored by its script's bundle"),
    ] = None,
    backend: Annotated[str, typer.Option(help="auto, onnx-int8, onnx-fp32 or torch")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as JSON")] = False,
) -> None:
    """Score a labelled file with a bundle's served model (or a language mix with one bundle per
    language): report and confusion matrix per head."""
    from training.evaluate import evaluate_bundle, evaluate_languages

    if (model is None) == (models is None):
        raise typer.BadParameter("give --model BUNDLE or --models en=DIR,zh=DIR")
    examples = columns.load(data)
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
    assert model is not None  # noqa: S101 - narrows a type; no check rests on it
    reports = evaluate_bundle(model, examples, backend=backend, progress=not as_json)
    if as_json:
        print(json.dumps(reports, indent=2, ensure_ascii=False))
        return
    print_reports(reports, ", ".join(Path(p).name for p in data))
    if "unk_rate" in reports:
        console.print(f"[UNK] rate: {reports['unk_rate']:.3f}")


@label_columns()
def export(
    model: Annotated[Path, typer.Option(help="Bundle folder to export again")],
    data: Annotated[list[str], typer.Option(help="Validation file(s) to gate the int8 candidates on")],
    columns: LabelColumns,
    int8_max_drop: Int8MaxDrop = 0.5,
) -> None:
    """Export a bundle's weights to ONNX fp32 and int8 again and gate int8 on labelled rows.

    Without label columns the gate falls back to top-class agreement with fp32 on the texts.
    """
    from inference.bundle import Bundle
    from training.export import reexport
    from training.quantize import GateData, labelled_rows

    examples = columns.load(data)
    bundle = Bundle.open(model)
    rows = labelled_rows(examples, bundle.topic_labels, bundle.sentiment_labels, bundle.topic_thresholds)
    gate = GateData(texts=rows.texts, labelled=rows, max_drop=int8_max_drop / 100)
    bundle = reexport(model, gate)
    print_export(bundle.manifest["export"])
    console.print(f"serving {bundle.served}: {bundle.manifest['export']['served_because']}")


def print_export(report: dict) -> None:
    """fp32 and every int8 candidate: speed, figures per head, drop against fp32, gate verdict."""
    table = Table(title=f"int8 candidates (gate: {report['gate']['by']})")
    for column in ("candidate", "texts/s", "vs fp32", "figures", "worst drop", "agreement", "gate"):
        table.add_column(column, justify="left" if column in ("candidate", "figures", "gate") else "right")
    fp32 = report["fp32"]
    table.add_row(
        "fp32", f"{fp32['texts_per_s']:.0f}", "1.00x", _figures(fp32["figures"]), "", "", "reference"
    )
    for method, c in report["candidates"].items():
        if "texts_per_s" not in c:
            table.add_row(method, "", "", "", "", "", "; ".join(c["failures"]))
            continue
        agrees = min(c["top1_agreement"].values())
        verdict = "passed" if c["passed"] else "; ".join(c["failures"])
        table.add_row(
            method + (" (kept)" if method == report["int8_method"] else ""),
            f"{c['texts_per_s']:.0f}",
            f"{c['texts_per_s'] / fp32['texts_per_s']:.2f}x",
            _figures(c["figures"]),
            f"{100 * c['worst_drop']:.2f} pt",
            f"{agrees:.1%}",
            verdict,
        )
    console.print(table)


def _figures(figures: dict[str, dict[str, float]]) -> str:
    return "  ".join(
        f"{head} " + "/".join(f"{value:.3f}" for value in values.values()) for head, values in figures.items()
    )


@label_columns(multi_label=False)
def simulate_nights(
    data: Annotated[list[str], typer.Option(help="Training file(s); topic:/sentiment: prefixes")],
    valid: Annotated[list[str], typer.Option(help="Validation file(s) to score every model on")],
    home: Annotated[Path, typer.Option(help="A fresh folder for this run's database and registry")],
    columns: LabelColumns,
    epochs: Annotated[int, typer.Option(help="Epochs of each night")] = 1,
    first_epochs: Annotated[int, typer.Option(help="Epochs of the first model, from the base")] = 2,
    max_steps: Annotated[int | None, typer.Option(help="Cap the optimiser steps of a night")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the nights as JSON")] = False,
) -> None:
    """Replay the learning loop on a data set: seed half, three nights of labels, one shuffled night."""
    from dataclasses import asdict

    from finsentry.nights import NightRow, simulate

    examples = columns.load(data)
    valid_rows = columns.load(valid)
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


@label_columns()
def soup(
    bundle: Annotated[
        list[Path], typer.Option(help="A bundle to average; repeat (runs fine-tuned from one base encoder)")
    ],
    data: DataFiles,
    out: Annotated[Path, typer.Option(help="Bundle folder to write the soup to")],
    valid: Annotated[list[str], typer.Option(help="Validation file(s): the greedy choice and the gates")],
    columns: LabelColumns,
    int8_max_drop: Int8MaxDrop = 0.5,
) -> None:
    """Average the weights of bundles fine-tuned from one base (greedy soup: best first, each kept
    only if the validation score holds); --data samples the int8 calibration."""
    from training.soup import SoupError
    from training.soup import soup as run_soup

    try:
        result = run_soup(bundle, columns.load(data), columns.load(valid), out, int8_max_drop / 100)
    except SoupError as exc:
        raise typer.BadParameter(str(exc)) from exc
    table = Table(title="ingredients, best first (validation)")
    for column in ("bundle", "topic acc / macro-F1", "sentiment acc / macro-F1", "mean macro-F1", "kept"):
        table.add_column(column)
    for ing in result.metrics["ingredients"]:
        table.add_row(ing["path"], *_soup_row(ing["valid"]), "yes" if ing["kept"] else "no")
    table.add_row("[bold]soup[/bold]", *_soup_row(result.metrics["valid"]), "")
    console.print(table)
    console.print(
        f"soup {result.bundle.version} → {out} (serving {result.bundle.served});"
        f" {result.seconds / 60:.1f} min"
    )


def _soup_row(report: dict) -> list[str]:
    heads = [
        f"{report[h]['accuracy']:.3f} / {report[h]['macro_f1']:.3f}"
        if "accuracy" in report.get(h, {})
        else "-"
        for h in ("topic", "sentiment")
    ]
    return [*heads, f"{report['score']:.3f}"]
